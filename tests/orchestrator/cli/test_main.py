"""orchestrator.cli.main: `senet` answers at once. The commands that only read files (every
`--help`, validate, status, results) must not import torch or Ray: those cost seconds before
the first line. Checked on the modules a fresh interpreter actually loaded, never on time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import subprocess_env, write_sweep, write_test_record

from orchestrator.cli.main import build_parser
from orchestrator.plan.plan import build_plan
from orchestrator.run.status import write_plan
from orchestrator.spec.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "ray", "optuna", "sklearn", "matplotlib", "submitit")
# Runs `main(argv)` in a fresh interpreter and writes its exit status and which of the
# top-level packages named in argv[2] (comma-separated) it loaded to the file argv[1].
PROBE = """\
import json, sys
from orchestrator.cli.main import main
out, heavy, argv = sys.argv[1], set(sys.argv[2].split(",")), sys.argv[3:]
try:
    rc = main(argv)
except SystemExit as e:
    rc = e.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
json.dump({"rc": rc, "loaded": loaded}, open(out, "w"))
"""


def _loaded(tmp_path: Path, *argv: str) -> tuple[int, list[str]]:
    out = tmp_path / "probe.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(out), ",".join(HEAVY), *argv],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    got = json.loads(out.read_text())
    return got["rc"], got["loaded"]


def _commands() -> list[str]:
    sub = next(a for a in build_parser(None)._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in _commands())])
def test_help_imports_neither_torch_nor_ray(tmp_path: Path, argv: list[str]) -> None:
    rc, loaded = _loaded(tmp_path, *argv)
    assert rc == 0 and loaded == [], f"senet {' '.join(argv)} loaded {loaded}"


@pytest.fixture
def tiny_run(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny sweep file, its plan as `senet run` writes it, and a record, with no stage run."""
    work = tmp_path / "work"
    sweep_path = write_sweep(tmp_path / "tiny.toml", work)
    plan = build_plan(load_sweep(sweep_path))
    write_plan(work, "tiny", "r1", plan.nodes.values(), 2)
    write_test_record(work, "tiny", 1, next(iter(plan.nodes)), val_acc=0.5, test_acc=0.5)
    return sweep_path, work


@pytest.mark.parametrize("command", ["validate", "status", "results"])
def test_reading_commands_import_neither_torch_nor_ray(
    tmp_path: Path, tiny_run: tuple[Path, Path], command: str
) -> None:
    sweep_path, work = tiny_run
    target = sweep_path if command == "validate" else work
    rc, loaded = _loaded(tmp_path, command, str(target))
    assert rc == 0, f"senet {command} {target} exited {rc}"
    assert not {"torch", "ray"} & set(loaded), f"senet {command} loaded {loaded}"


def test_the_probe_sees_torch_where_a_command_needs_it(tmp_path: Path) -> None:
    """relu-count traces a model: the probe must report torch, or the tests above prove nothing."""
    rc, loaded = _loaded(tmp_path, "relu-count", "resnet20")
    assert rc == 0 and "torch" in loaded
