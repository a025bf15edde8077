"""Stage attempts that end without an artifact, as `senet status` shows them: a trial ASHA
stopped early is `stopped` (never pending, never resumed) and leaves no checkpoint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support import write_optuna_sweep

from orchestrator.records.read import read_records
from orchestrator.run.driver import run_sweep
from orchestrator.run.status import local_status, progress_path
from orchestrator.spec.sweep import load_sweep
from stages.store import Store

ASHA = "[search.asha]\ngrace_period = 1\nreduction_factor = 2"


def test_an_asha_stopped_trial_is_shown_stopped_and_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny synthetic trials all reach the same accuracy, which ASHA never stops: its
    decision is made for it (the first stage-3 trial at epoch 1, through the scheduler Tune
    really calls); the rest of the path is the real one."""
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.search.asha import PerBudgetASHA

    decide = PerBudgetASHA.on_trial_result
    chosen: list[str] = []

    def stop_first(self: PerBudgetASHA, controller: Any, trial: Any, result: dict) -> str:
        action = decide(self, controller, trial, result)
        if trial.trial_id in self.routed and result.get("epoch") == 1 and not chosen:
            chosen.append(trial.trial_id)
            self.stopped.add(trial.trial_id)
            return TrialScheduler.STOP
        return action

    monkeypatch.setattr(PerBudgetASHA, "on_trial_result", stop_first)
    work = tmp_path / "work"
    path = write_optuna_sweep(
        tmp_path / "s.toml", work, trials=3, budgets=[3000], epochs=3, search_extra=ASHA
    )
    summary = run_sweep(load_sweep(path), printer=lambda _: None)
    assert not summary.failed and not summary.interrupted, summary
    rows = read_records(work, sweep="opt", stage=3).to_pylist()
    stopped = [r for r in rows if r["status"] == "stopped"]
    assert len(stopped) == 1 and len(rows) == 3, rows
    store = Store.of_workdir(work)
    for r in stopped:
        assert not store.checkpoint(3, r["key"]).exists()
        assert not progress_path(work, r["key"]).exists()
    lines = local_status(work)
    text = "\n".join(lines)
    assert lines[0] == f"sweep opt in {work}: finished", text
    assert "stage3: 2 done, 0 pending, 1 stopped" in text
    shown = re.findall(r"stopped stage3 .*: stopped by ASHA at epoch 1/3 \(val 0\.\d{4}\)", text)
    assert len(shown) == 1 and stopped[0]["epochs"] == 1, text
    assert "resumes" not in text and "interrupted" not in text and "left" not in text


def test_a_failure_is_the_last_attempts_exception_in_one_short_line() -> None:
    """Ray's error file of a stage that failed twice: the record's `error` is the second
    attempt's own exception, one line, at most 200 characters."""
    from orchestrator.run.attempts import ERROR_CHARS, error_summary

    def attempt(n: int, message: str) -> str:
        return (
            f"Failure # {n}\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
            'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
            f"RuntimeError: {message}\n"
        )

    text = (
        attempt(1, "first")
        + attempt(2, "second " + "x" * 500)
        + "ray.exceptions.RayTaskError: wrapped\n"
    )
    line = error_summary(text)
    assert line.startswith("RuntimeError: second xxx") and "first" not in line
    assert "\n" not in line and len(line) == ERROR_CHARS == 200
