"""How much of a sweep is planned and done: in the Optuna modes, the studies' trial quota."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_optuna_sweep


def test_validate_counts_the_trial_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from orchestrator.cli.main import main

    path = write_optuna_sweep(tmp_path / "v.toml", tmp_path / "work", trials=5)
    assert main(["validate", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["stage2"] == {"total": 2, "done": 0}
    assert plan["stage3"] == {"total": 10, "done": 0}  # 5 trials x 2 budgets


def _progress_dir(work: Path) -> Path:
    """A run's progress files, damaged as a hand edit or a torn copy might leave them: one
    good node and five malformed ones; progress files of the wrong shape."""
    import json

    folder = work / "progress"
    folder.mkdir(parents=True)
    nodes = [
        {"key": "aa", "stage": 1, "parents": [], "epochs": 2, "labels": {}},
        {"key": "bb", "stage": "x"},
        {"key": 5, "stage": 2},
        {"key": "../../victim", "stage": 2},
        "not a node",
        {"key": "cc", "stage": 2, "parents": "aa", "labels": [1], "epochs": "3"},
    ]
    plan = {"sweep": "s", "run_id": 7, "concurrency": "x", "nodes": nodes}
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "aa.json").write_text(
        json.dumps({"epoch": "x", "measured": [1, "x"], "failed": "boom", "updated": "now"})
    )
    (folder / "cc.json").write_text("[1, 2]")
    return folder


@pytest.mark.parametrize("held", [False, True])
def test_status_reads_malformed_progress_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: bool
) -> None:
    """A malformed progress/plan.json or progress file gave `senet status` a traceback."""
    import contextlib

    from orchestrator.cli.main import main
    from orchestrator.run.lock import workdir_lock

    work = tmp_path / "work"
    _progress_dir(work)
    with workdir_lock(work) if held else contextlib.nullcontext():
        assert main(["status", str(work)]) == 0
    out = capsys.readouterr().out
    assert f"sweep s in {work}: {'running' if held else 'not running'}" in out
    assert "stage1: 0 done" in out and "stage2: 0 done, 1 pending" in out
    assert f"warning: 4 malformed nodes in {work / 'progress' / 'plan.json'} left out" in out


def test_verify_sets_malformed_progress_files_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli.main import main

    work = tmp_path / "work"
    folder = _progress_dir(work)
    assert main(["verify", str(work)]) == 1
    out = capsys.readouterr().out
    for name in ("plan.json", "aa.json", "cc.json"):
        assert f"damaged: {folder / name}: " in out
    assert not list(folder.glob("*.json"))
    assert len(list((work / "store" / "quarantine").iterdir())) == 3
    assert main(["verify", str(work)]) == 0
