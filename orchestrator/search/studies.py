"""The Optuna studies of a workdir, in one journal file (<workdir>/optuna/journal.log).

Ray Tune's OptunaSearch samples into these studies, so rerunning the command continues the
same study: trial numbers go on, finished trials count toward the quota, and trials a killed
run left RUNNING are marked FAIL first (journal storage has no heartbeat). Optuna itself is
imported only when a function here runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.spec.optuna_settings import OptunaSettings


def journal_path(workdir: Path) -> Path:
    return Path(workdir) / "optuna" / "journal.log"


def storage(workdir: Path) -> Any:
    """The workdir's journal storage (one file for every study of the workdir)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def study_names(
    sweep_name: str, settings: OptunaSettings, budgets: tuple[int, ...]
) -> dict[int | None, str]:
    """budget -> study name (per-budget mode), or {None: name} for the Pareto study."""
    if settings.mode == "optuna-pareto":
        return {None: f"{sweep_name}-pareto"}
    return {b: f"{sweep_name}-budget{b}" for b in budgets}


def finished_counts(workdir: Path, names: list[str]) -> dict[str, int]:
    """Trials of each study that finished (COMPLETE or PRUNED); 0 for a study not started."""
    import optuna

    if not journal_path(workdir).exists():
        return dict.fromkeys(names, 0)
    st = storage(workdir)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    out = {}
    existing = {s.study_name for s in st.get_all_studies()}
    for name in names:
        if name not in existing:
            out[name] = 0
            continue
        study = optuna.load_study(study_name=name, storage=st)
        out[name] = len(study.get_trials(deepcopy=False, states=done))
    return out


def fail_stale_running(st: Any, name: str) -> int:
    """Mark trials left RUNNING by a killed run as FAIL (journal storage has no heartbeat)."""
    import optuna

    if name not in {s.study_name for s in st.get_all_studies()}:
        return 0
    study = optuna.load_study(study_name=name, storage=st)
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        st.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    return len(stale)


def study_length(st: Any, name: str) -> int:
    """How many trials a study holds, in any state (0 if it does not exist yet)."""
    import optuna

    if name not in {s.study_name for s in st.get_all_studies()}:
        return 0
    return len(optuna.load_study(study_name=name, storage=st).get_trials(deepcopy=False))
