"""One count of what a sweep executes, in every mode: `senet validate`, `senet run`'s lines
and `senet status` agree, the Optuna trials not sampled yet included."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import write_optuna_sweep, write_sweep

from orchestrator.cli.main import main
from orchestrator.run.counts import sweep_counts
from orchestrator.run.driver import run_sweep
from orchestrator.run.status import local_status
from orchestrator.spec.sweep import load_sweep

_STAGE = re.compile(r"^stage(\d): (.*)$")
_COUNT = re.compile(r"(\d+) (done|running|pending|stopped|failed|blocked)")


def _status_counts(lines: list[str]) -> dict[int, tuple[int, int]]:
    """stage -> (executions in all, done) as `senet status` prints them."""
    out = {}
    for line in lines:
        if m := _STAGE.match(line):
            counts = {k: int(v) for v, k in _COUNT.findall(m.group(2))}
            out[int(m.group(1))] = (sum(counts.values()), counts.get("done", 0))
    return out


@pytest.mark.parametrize("mode", ["grid", "optuna"])
def test_status_counts_what_validate_counts_from_the_start(tmp_path: Path, mode: str) -> None:
    """At the run's first trial `senet status` counts what `senet validate` counted (in
    Optuna mode: the trials not sampled yet as pending), and the totals hold at every
    later event."""
    work = tmp_path / "work"
    if mode == "grid":
        path = write_sweep(tmp_path / "s.toml", work, budgets=[3000], taus=[2.0, 4.0])
    else:
        path = write_optuna_sweep(tmp_path / "s.toml", work, trials=2, budgets=[3000], epochs=1)
    sweep = load_sweep(path)
    planned = {n: (c.total, c.done) for n, c in sweep_counts(sweep).items() if c.total}
    seen: list[tuple[str, dict[int, tuple[int, int]], list[str]]] = []

    def listener(kind: str, node: Any, result: dict[str, Any] | None) -> None:
        lines = local_status(work)
        seen.append((kind, _status_counts(lines), lines))

    lines: list[str] = []
    summary = run_sweep(sweep, printer=lines.append, listeners=[listener])
    assert summary.ok, summary
    assert planned == ({1: (1, 0), 2: (1, 0), 3: (2, 0)})
    kind, first, text = seen[0]
    assert kind == "started" and first == planned, text
    if mode == "optuna":
        assert "stage3: 0 done, 0 pending (2 not sampled yet)" not in text  # they are pending
        assert "stage3: 0 done, 2 pending (2 not sampled yet)" in text
        assert "(2 of them stage-3 trials Optuna samples as it runs)" in lines[0]
    totals = {n: t for n, (t, _) in planned.items()}
    for kind, counts, text in seen:
        assert {n: t for n, (t, _) in counts.items()} == totals, (kind, text)
    assert _status_counts(local_status(work)) == {n: (t, t) for n, t in totals.items()}


def test_pareto_counts_stage2_as_an_upper_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each unsampled trial may draw a budget not drawn before: at most one stage 2 per
    budget choice, never more than the trials, said as a bound."""
    space = "budget = {choices = [2000, 8000]}"
    path = write_optuna_sweep(
        tmp_path / "p.toml", tmp_path / "work", mode="optuna-pareto", trials=5, budgets=[],
        space_extra=space,
    )  # fmt: skip
    assert main(["validate", str(path), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["stage2"] == {"total": 2, "done": 0, "upper_bound": True}
    assert counts["stage3"] == {"total": 5, "done": 0}
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stage2: at most 2 runs (a budget drawn again reuses its stage 2), 0 done" in out
    one = write_optuna_sweep(
        tmp_path / "one.toml", tmp_path / "work", mode="optuna-pareto", trials=1, budgets=[],
        space_extra=space,
    )  # fmt: skip
    assert sweep_counts(load_sweep(one))[2].total == 1  # one trial draws one budget
