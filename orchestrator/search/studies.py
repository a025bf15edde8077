"""The Optuna studies of a workdir, in one journal file (<workdir>/optuna/journal.log).

The search (source.py) samples into these studies through Optuna's ask and tell, so
rerunning the command continues the same study: trial numbers go on, finished trials count
toward the quota, and trials a killed run left RUNNING are marked FAIL first (journal storage
has no heartbeat). Optuna itself is imported only when a function here runs.

The journal is one JSON operation per line, appended. A run killed mid-write, a full disk or a
bad copy leaves a torn or garbled line, and Optuna then fails on every open (the next append
lands after a torn line and garbles it). Opened for a run, the journal heals: the operations
before the first bad line are kept, the file itself is quarantined (nothing lost) and a warning
says how many trials were kept; a journal whose operations do not replay is quarantined whole.
Read-only callers (`senet validate`) count from the whole lines without touching the file.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.spec.optuna_settings import OptunaSettings
from stages.artifacts import atomic_write_bytes
from stages.store import Store, quarantine


def journal_path(workdir: Path) -> Path:
    return Path(workdir) / "optuna" / "journal.log"


def _open(path: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _whole_lines(data: bytes) -> tuple[bytes, str | None]:
    """The journal's operations up to its first torn or garbled line, and what is wrong there
    (None: every line is a whole JSON operation)."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines[:-1]):
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            return b"".join(
                x + b"\n" for x in lines[:i]
            ), f"line {i + 1} is not a journal operation"
    if lines[-1]:
        return data[: len(data) - len(lines[-1])], f"line {len(lines)} is torn (no newline)"
    return data, None


def _replay(path: Path) -> tuple[Any, int]:
    """The journal storage at `path` and its finished (COMPLETE or PRUNED) trials in every
    study; raises where Optuna cannot replay it (AssertionError, KeyError, ...: whatever its
    replay meets)."""
    import optuna

    st = _open(path)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = sum(
        len(study.get_trials(deepcopy=False, states=done))
        for study in (
            optuna.load_study(study_name=s.study_name, storage=st) for s in st.get_all_studies()
        )
    )
    return st, trials


@contextlib.contextmanager
def _copy(data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="senet-journal-") as folder:
        path = Path(folder) / "journal.log"
        path.write_bytes(data)
        yield path


def _healthy(data: bytes) -> tuple[bytes, int]:
    """The longest healthy journal in `data` (its whole lines, or nothing where those do not
    replay) and its trials."""
    kept, _ = _whole_lines(data)
    with _copy(kept) as path:
        try:
            return kept, _replay(path)[1]
        except Exception:
            return b"", 0


def _checked(path: Path) -> tuple[Any, str | None]:
    """(the journal's storage, already replayed: Optuna reads it once; None where damaged,
    the problem or None)."""
    if not path.exists():
        return None, None
    problem = _whole_lines(path.read_bytes())[1]
    if problem is not None:
        return None, problem
    try:
        return _replay(path)[0], None
    except Exception:
        return None, "its operations do not replay in Optuna"


def journal_problem(workdir: Path) -> str | None:
    """What is wrong with the workdir's journal, or None (also when there is none). Reads
    only: `senet verify --dry-run` asks it."""
    return _checked(journal_path(workdir))[1]


def storage(workdir: Path) -> Any:
    """The workdir's journal storage (one file for every study of the workdir), healed first:
    a damaged journal keeps its healthy operations and the file is quarantined (one warning
    naming it, the damage and the finished trials kept). Call it under the workdir's lock: a
    writer in another process would lose its appends to the healed copy."""
    path = journal_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    st, problem = _checked(path)
    if problem is None:
        return st if st is not None else _open(path)
    kept, trials = _healthy(path.read_bytes())
    reason = f"{path}: damaged Optuna journal ({problem}); kept the {trials} finished trials"
    quarantine(path, reason, Store.of_workdir(workdir).quarantine_dir, "optuna-journal.log")
    if kept:
        atomic_write_bytes(path, kept)
    return _open(path)


@contextlib.contextmanager
def _readable(workdir: Path) -> Iterator[Any]:
    """The journal storage for reading without the lock: a damaged journal is read from a
    private copy of its healthy operations and left as it is."""
    path = journal_path(workdir)
    st, problem = _checked(path)
    if problem is None:
        yield st if st is not None else _open(path)
        return
    with _copy(_healthy(path.read_bytes())[0]) as copy:
        yield _open(copy)


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
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    out = {}
    with _readable(workdir) as st:
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
