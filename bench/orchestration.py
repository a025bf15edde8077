"""Orchestration overhead of `senet run`, measured in one run (a benchmark, not a test).

A sweep whose stages each do a fixed, small amount of work (1 epoch on 64 synthetic 16x16
images, resnet20) runs on a fresh local Ray. For every stage execution:
    overhead = trial wall time (searcher hands it to Tune -> Tune reports it complete)
               - stage compute time (the stage's own wall_s, stored in its artifact)
and for the sweep: wall time / (sum of stage compute times / concurrency).
Target on a 2-core machine: median overhead per stage execution <= 1 s
(Ray's own benchmark: about 0.14 s per trial on 16 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The repo root before tests/: tests/orchestrator (the tests' mirror of the package, no
# __init__.py) would otherwise shadow the orchestrator package as a namespace package.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import write_sweep  # noqa: E402

from orchestrator.run.driver import run_sweep  # noqa: E402
from orchestrator.spec.sweep import load_sweep  # noqa: E402
from stages.artifacts import artifact_dir, read_meta  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--budgets", type=int, default=4, help="stage-2 runs (4)")
    ap.add_argument("--taus", type=int, default=4, help="stage-3 runs per budget (4)")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        budgets = [2000 * (i + 1) for i in range(args.budgets)]
        taus = [float(t + 1) for t in range(args.taus)]
        path = write_sweep(
            Path(tmp) / "bench.toml", Path(tmp) / "work", "bench", budgets, taus, args.epochs
        )
        sweep = load_sweep(path)
        started: dict[str, float] = {}
        finished: dict[str, float] = {}

        def listen(event: str, node: Any, _result: dict[str, Any] | None) -> None:
            (started if event == "started" else finished)[node.key] = time.perf_counter()

        t0 = time.perf_counter()
        summary = run_sweep(sweep, printer=lambda _l: None, listeners=[listen])
        wall = time.perf_counter() - t0
        assert summary.ok, summary
        span = max(finished.values()) - min(started.values())
        store = sweep.workdir / "store"
        rows = []
        for key, t_start in started.items():
            stage = next(s for s in (1, 2, 3) if artifact_dir(store, s, key).exists())
            meta = read_meta(artifact_dir(store, stage, key))
            assert meta is not None
            rows.append((stage, finished[key] - t_start, float(meta["wall_s"])))

    overhead = [trial - compute for _, trial, compute in rows]
    compute_sum = sum(c for _, _, c in rows)
    concurrency = sweep.resources.max_concurrent
    ideal = compute_sum / concurrency
    print(
        f"stage executions: {len(rows)} (stage1 1, stage2 {args.budgets}, stage3 {args.budgets * args.taus}), concurrency {concurrency}"
    )
    print(f"median stage compute time:         {statistics.median(c for _, _, c in rows):6.2f} s")
    print(f"median trial wall time:            {statistics.median(t for _, t, _ in rows):6.2f} s")
    print(
        f"median overhead per execution:     {statistics.median(overhead):6.2f} s  (target <= 1 s)"
    )
    print(f"max overhead per execution:        {max(overhead):6.2f} s")
    print(f"sweep wall time (incl. Ray start): {wall:6.2f} s")
    print(f"  of which trials (first to last): {span:6.2f} s")
    print(f"sum of compute / concurrency:      {ideal:6.2f} s")
    print(
        f"ratio wall / ideal:                {wall / ideal:6.2f}x  (trials only: {span / ideal:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
