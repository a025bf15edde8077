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
