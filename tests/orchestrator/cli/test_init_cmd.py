"""orchestrator.cli.init_cmd: `senet init` writes a shipped sweep file to edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.spec.shipped import shipped_sweeps


def test_init_writes_the_demo_here_and_validate_accepts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    written = tmp_path / "demo.toml"
    assert written.read_text() == shipped_sweeps()["demo"].read_text()
    assert "wrote demo.toml" in capsys.readouterr().out
    assert main(["validate", "demo.toml"]) == 0
    assert "stage3: 6 runs, 0 done" in capsys.readouterr().out


def test_init_names_a_file_or_a_folder_and_never_overwrites_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine.toml"
    assert main(["init", "optuna-distill", str(target)]) == 0
    assert target.read_text() == shipped_sweeps()["optuna-distill"].read_text()
    assert main(["init", "demo", str(tmp_path)]) == 0 and (tmp_path / "demo.toml").is_file()
    capsys.readouterr()
    assert main(["init", "demo", str(target)]) == 2
    assert f"{target} exists; give another PATH, or --force" in capsys.readouterr().err
    assert main(["init", "demo", str(target), "--force"]) == 0
    assert target.read_text() == shipped_sweeps()["demo"].read_text()


def test_init_list_and_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(shipped_sweeps())
    assert main(["init", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shipped sweep 'nope'; choose one of: " in err
