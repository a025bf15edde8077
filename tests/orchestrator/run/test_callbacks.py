"""The status line's running-stage fragment and ETA, from a result dict real Ray Tune built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import write_sweep

from orchestrator.plan.dag import DagSearcher
from orchestrator.plan.plan import build_plan
from orchestrator.run.callbacks import Progress
from orchestrator.spec.sweep import load_sweep

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _tune_result(tmp_path: Path) -> dict[str, Any]:
    """One epoch's report as a Tune callback receives it (time_this_iter_s added by Tune)."""
    from ray import tune

    seen: list[dict[str, Any]] = []

    def epoch(config: dict[str, Any]) -> None:  # nested: pickled by value for the worker
        from ray import tune

        tune.report({"stage": 1, "key": "k", "epoch": 1, "epochs": 3, "val_acc": 0.5})

    class Keep(tune.Callback):
        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            seen.append(dict(result))

    tune.Tuner(
        epoch,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "tune"), callbacks=[Keep()], verbose=0
        ),
    ).fit()
    assert len(seen) == 1
    return seen[0]


def test_status_line_shows_the_running_stage_and_an_eta(tmp_path: Path) -> None:
    result = _tune_result(tmp_path)
    sweep = load_sweep(write_sweep(tmp_path / "s.toml", tmp_path / "work", epochs=3))
    plan = build_plan(sweep)
    searcher = DagSearcher(list(plan.nodes.values()), set(), plan.store)
    assert searcher.suggest("t1") is not None  # stage 1 starts: the only ready node
    lines: list[str] = []
    progress = Progress(
        searcher, lines.append, concurrency=2, workdir=sweep.workdir, run_id="r", sweep="tiny"
    )
    progress.status()
    assert lines[-1].endswith(
        "stage1 key=" + searcher.running["t1"] + "; ETA after the first measured epoch"
    )
    progress.result("t1", result)
    progress.status()
    seconds = result["time_this_iter_s"]
    fragment = f"stage1 key={searcher.running['t1']} epoch 1/3 {seconds:.1f} s/epoch val 0.5000"
    assert fragment in lines[-1]
    eta = progress.eta()
    assert eta is not None and eta.measured_epochs == 1 and eta.executions_left == 7
    # 2 epochs left of stage 1, then 2 stage 2s side by side, then 4 stage 3s two at a time.
    assert eta.seconds == pytest.approx(seconds * (2 + 3 + 3 + 3))
    assert lines[-1].endswith(eta.text())
    assert (sweep.workdir / "progress" / "plan.json").is_file()  # for `senet status`
