"""The Optuna studies of a workdir, in one journal file (<workdir>/optuna/journal.log).

The search (source.py) samples into these studies through Optuna's ask and tell, so
rerunning the command continues the same study: trial numbers go on, finished trials count
toward the quota, and trials a killed run left RUNNING are marked FAIL first (journal storage
has no heartbeat). Optuna itself is imported only when a function here runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class OpenedStudy:
    study: Any  # optuna.Study
    finished: int  # trials COMPLETE or PRUNED: they count toward the quota
    stale: int  # trials a killed run left RUNNING, now marked FAIL


def open_study(
    st: Any, name: str, directions: list[str], sampler: Callable[[int], Any]
) -> OpenedStudy:
    """Create or continue the study `name`, reading its trials once: those a killed run left
    RUNNING are marked FAIL (journal storage has no heartbeat), the finished ones counted, and
    the sampler built for the study's length (`sampler(n)`: a continued study must not replay
    its first run's random draws)."""
    import optuna

    study = optuna.create_study(
        storage=st,
        study_name=name,
        directions=directions,
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    trials = study.get_trials(deepcopy=False)
    study.sampler = sampler(len(trials))
    state = optuna.trial.TrialState
    stale = [t for t in trials if t.state == state.RUNNING]
    for t in stale:
        study.tell(t.number, state=state.FAIL)
    finished = sum(t.state in (state.COMPLETE, state.PRUNED) for t in trials)
    return OpenedStudy(study, finished, len(stale))
