"""The demo sweep as one Slurm job on 1 and on N hosts of the local multi-host Slurm
(`bash slurm/local-cluster.sh up --nodes 3`): how long from `senet submit` until the job
runs, until the Ray head answers and until every host's Ray node has joined, and the sweep's
wall time. Each line of `senet submit --wait` is timestamped as it arrives.

    .venv/bin/python bench/multihost.py --nodes 1 3

The hosts share this machine's cores, so N hosts do not bring N times the compute: the
figures say what the orchestration costs, not what a real cluster gains.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = {
    "job running": "Starting with JobEnvironment",
    "Ray head up": "Ray head at",
    "all Ray nodes joined": "Ray: ",
    "sweep finished": "ran ",
}


def one(nodes: int, workdir: Path, overrides: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "orchestrator.cli", "submit", str(ROOT / "sweeps" / "demo.toml")]
    cmd += [*overrides, "--workdir", str(workdir), "--nodes", str(nodes), "--wait"]
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    ) as p:
        assert p.stdout is not None
        for line in p.stdout:
            for name, mark in MARKS.items():
                if name not in seen and mark in line:
                    seen[name] = time.monotonic() - t0
    seen["submit --wait returned"] = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"senet submit --nodes {nodes} failed ({p.returncode})")
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the demo sweep")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(
        dir="/tmp/pytest-of-root" if Path("/tmp/pytest-of-root").is_dir() else None
    ) as tmp:
        for n in args.nodes:
            rows[n] = one(n, Path(tmp) / f"work{n}", args.overrides)
    names = [*MARKS, "submit --wait returned"]
    print("| seconds after `senet submit` | " + " | ".join(f"{n} host(s)" for n in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in names:
        print(
            f"| {name} | "
            + " | ".join(f"{r.get(name, float('nan')):.1f}" for r in rows.values())
            + " |"
        )


if __name__ == "__main__":
    main()
