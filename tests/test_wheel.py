"""The wheel works on its own: built from the source, installed (no -e) into a fresh venv
that cannot see the clone, `senet init`, `validate` and a tiny `run` from an empty folder
outside the clone, and the record's code_version is the package's version.

The fresh venv gets its dependencies by a .pth file naming this test venv's site-packages
rather than by installing torch and Ray again (minutes and GBs). A path listed in a .pth is
put on sys.path but its own .pth files are not run, so this venv's editable install of the
clone (a .pth hook) stays off: `orchestrator` can only come from the wheel, which the test
checks by where it was imported from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "orchestrator", "stages")
# The demo file cut to seconds: synthetic images, one budget, one epoch per stage.
TINY_RUN = [
    "sweep.dataset=synthetic",
    "sweep.limit=32",
    "sweep.budgets=[3000]",
    "stage1.epochs=1",
    "stage2.epochs=1",
    "stage3.epochs=1",
    "stage1.batch_size=16",
    "stage2.batch_size=16",
    "stage3.batch_size=16",
    "stage3.tau=[4.0]",
    "resources.max_concurrent=1",
]
CHECK = """\
import json, sys
from importlib.metadata import version
import orchestrator, pyarrow.dataset as ds
records = ds.dataset("runs/demo/results", format="parquet", partitioning="hive").to_table()
json.dump({"version": version("senet-sweep"), "module": orchestrator.__file__,
           "code_versions": sorted(set(records.column("code_version").to_pylist())),
           "stages": sorted(records.column("stage").to_pylist())}, sys.stdout)
"""


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    out = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, (
        f"{' '.join(map(str, cmd))}: {out.stdout[-3000:]}{out.stderr[-3000:]}"
    )
    return out.stdout


@pytest.mark.slow
def test_the_wheel_alone_inits_validates_and_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    src, dist, venv, user = (tmp_path / n for n in ("src", "dist", "venv", "user"))
    src.mkdir()
    for name in SOURCE:  # a copy, so the build leaves nothing in the clone
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src], tmp_path, env)
    (wheel,) = dist.glob("senet_sweep-*.whl")

    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, env
        ).strip()
    )
    (site / "senet-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = [*pip, "--python", python, "install", "--quiet", "--no-index", "--no-deps"]
    # --ignore-installed: this venv's editable senet-sweep is visible through the .pth, and
    # must neither satisfy the requirement nor be uninstalled.
    _run([*install, "--ignore-installed", "-c", ROOT / "constraints.txt", wheel], tmp_path, env)
    _run([*pip, "--python", python, "check"], tmp_path, env)  # every dependency's range holds

    user.mkdir()
    senet = venv / "bin" / "senet"
    assert "wrote demo.toml" in _run([senet, "init"], user, env)
    assert "stage3: 6 runs, 0 done" in _run([senet, "validate", "demo.toml"], user, env)
    ran = _run([senet, "run", "demo.toml", *TINY_RUN, "--device", "cpu"], user, env)
    assert "starting a local Ray (" in ran and "waiting for it to answer" in ran  # says why
    got = json.loads(_run([python, "-c", CHECK], user, env))
    assert Path(got["module"]).is_relative_to(site), got["module"]  # the wheel, not the clone
    assert got["stages"] == [1, 2, 3]
    assert got["code_versions"] == [got["version"]]  # no git describe of a foreign repository
