"""Scheduling cost at scale, measured in one run (a benchmark, not a test).

Two parts:
  scheduler  Ray-free: the DAG searcher over synthetic plans of 10^3, 10^4 and 10^5 nodes,
             played like Tune (2 trials in flight): ms per suggest + complete, and memory per
             planned execution (tracemalloc) of a real plan and of the searcher over it.
  sweep      `senet run` on a fresh local Ray over N executions of one short, fixed stage
             (stage 3, 1 epoch of resnet20 on 48 synthetic 16x16 images: about 1 s on a CPU),
             N - 2 stage-3 settings below one stage 1 and one stage 2. Prints overhead per
             execution (trial wall - stage compute), scheduler ms per trial (time inside the
             searcher's suggest + on_trial_complete), driver memory growth per execution (RSS),
             and wall / ideal, ideal = sum of stage compute / concurrency.
  tune       the floor under `sweep`: Ray Tune alone, on a fresh local Ray, over N trials of
             a function trainable that only sleeps `--sleep` seconds (the stage's compute),
             with the sweep's concurrency (2) and actor reuse, from a minimal Searcher. What
             Tune costs per trial on this machine, before any of senet's own work.
Targets: scheduler cost flat in N; wall / ideal <= 1.2x at 2,000 executions; driver memory
growth under 10 KB per execution.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The repo root before tests/: tests/orchestrator (no __init__.py) would otherwise shadow the
# orchestrator package as a namespace package.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import write_sweep  # noqa: E402

from orchestrator.plan.dag import DagSearcher  # noqa: E402
from orchestrator.plan.plan import Node, build_plan  # noqa: E402
from orchestrator.spec.sweep import parse_sweep  # noqa: E402

DONE = {"stage_done": 1, "val_acc": 0.5, "relu_count": 1000}


def synthetic_nodes(n: int) -> list[Node]:
    """About n nodes shaped like a plan: one stage 1, n // 100 stage 2s, 99 stage 3s each."""
    nodes = [Node(1, "s", None)]
    for b in range(max(1, n // 100)):
        nodes.append(Node(2, f"b{b}", None, "s"))
        nodes.extend(Node(3, f"b{b}t{t}", None, "s", f"b{b}") for t in range(99))
    return nodes


def scheduler_ms(n: int, store: Path, in_flight: int = 2) -> tuple[float, int]:
    """ms per suggest + on_trial_complete over a whole sweep of about n nodes."""
    searcher = DagSearcher(synthetic_nodes(n), set(), store)
    running: list[str] = []
    trials = 0
    t0 = time.perf_counter()
    while True:
        while len(running) < in_flight and isinstance(searcher.suggest(f"t{trials}"), dict):
            running.append(f"t{trials}")
            trials += 1
        if not running:
            break
        searcher.on_trial_complete(running.pop(0), DONE)
    return (time.perf_counter() - t0) * 1000 / trials, trials


def plan_memory(n3: int) -> tuple[int, float, float]:
    """Bytes per planned execution of a real plan (stage-3 grid of n3 settings below ten
    budgets) and of a DagSearcher over it."""
    budgets = [1000 * (i + 1) for i in range(10)]
    doc = {
        "sweep": {"model": "resnet20", "dataset": "synthetic", "budgets": budgets},
        "stage3": {"tau": [1.0 + i / 1000 for i in range(n3 // 10)]},
        "resources": {"max_executions": 2 * n3},
    }
    sweep = parse_sweep(doc)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    plan = build_plan(sweep)
    mid = tracemalloc.get_traced_memory()[0]
    with tempfile.TemporaryDirectory() as tmp:
        searcher = DagSearcher(list(plan.nodes.values()), set(), Path(tmp))
        after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(plan.nodes)
    del searcher
    return n, (mid - before) / n, (after - mid) / n


def scheduler_part() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10**3, 10**4, 10**5):
            ms, trials = scheduler_ms(n, Path(tmp))
            print(f"scheduler, {trials:>7,} nodes: {ms:7.4f} ms per suggest + complete")
    for n3 in (10**4, 10**5):
        n, plan_b, searcher_b = plan_memory(n3)
        print(
            f"memory, {n:>7,} planned nodes: plan {plan_b:6.0f} B per node, "
            f"searcher {searcher_b:5.0f} B per node"
        )


def growth_per_item(memory: list[int]) -> float:
    """Bytes of RSS growth per item, after the first few (Ray's and torch's first imports)."""
    warm = min(10, len(memory) // 4)
    return (memory[-1] - memory[warm]) / max(1, len(memory) - 1 - warm)


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def time_searcher() -> list[float]:
    """Wrap the searcher's two calls from Tune with a clock: seconds spent inside them."""
    inside = [0.0]
    for name in ("suggest", "on_trial_complete"):
        method = getattr(DagSearcher, name)

        def timed(self: Any, *a: Any, _m: Any = method, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return _m(self, *a, **k)
            finally:
                inside[0] += time.perf_counter() - t

        setattr(DagSearcher, name, timed)
    return inside


def memory_by_file(first: Any, last: Any, top: int = 8) -> None:
    """Where the driver's heap grew between two tracemalloc snapshots, per package file."""
    diffs = last.compare_to(first, "filename")
    for d in sorted(diffs, key=lambda d: -d.size_diff)[:top]:
        name = str(d.traceback[0].filename).split("site-packages/")[-1]
        print(f"  {d.size_diff / 1024:9.1f} KB  {d.count_diff:+7d} blocks  {name}")


def sweep_part(n: int, inside: list[float], trace: bool = False) -> None:
    from orchestrator.run.driver import run_sweep
    from orchestrator.spec.sweep import load_sweep
    from stages.artifacts import artifact_dir, read_meta

    with tempfile.TemporaryDirectory() as tmp:
        taus = [1.0 + i / 100 for i in range(n - 2)]
        path = write_sweep(Path(tmp) / "scale.toml", Path(tmp) / "work", "scale", [3000], taus)
        sweep = load_sweep(path)
        started: dict[str, float] = {}
        finished: dict[str, float] = {}
        memory: list[int] = []
        workers: set[int] = set()  # the trial actors' processes that ran a stage

        snapshots: list[Any] = []

        def listen(event: str, node: Any, _result: dict[str, Any] | None) -> None:
            # wall-clock time, to compare with the stage's own started_at / finished_at
            (started if event == "started" else finished)[node.key] = time.time()
            if event == "done":
                workers.add(int((_result or {}).get("pid", 0)))
                memory.append(rss())
                if trace and len(memory) in (min(10, n // 4), n):
                    snapshots.append(tracemalloc.take_snapshot())

        if trace:
            tracemalloc.start()

        t0 = time.perf_counter()
        summary = run_sweep(sweep, printer=lambda _l: None, listeners=[listen])
        wall = time.perf_counter() - t0
        assert summary.ok, summary
        store = sweep.workdir / "store"
        rows = []
        for key, t_start in started.items():
            stage = next(s for s in (1, 2, 3) if artifact_dir(store, s, key).exists())
            meta = read_meta(artifact_dir(store, stage, key))
            assert meta is not None
            # (trial wall, stage compute, suggested -> stage start, stage end -> Tune's done)
            before = float(meta["started_at"]) - t_start
            after = finished[key] - float(meta["finished_at"])
            rows.append((finished[key] - t_start, float(meta["wall_s"]), before, after))

    if trace:
        tracemalloc.stop()
        done = len(memory) - min(10, n // 4)
        print(f"driver heap growth by file over the last {done} executions (tracemalloc):")
        memory_by_file(snapshots[0], snapshots[-1])
    span = max(finished.values()) - min(started.values())
    overhead = [r[0] - r[1] for r in rows]
    compute = [r[1] for r in rows]
    ideal = sum(compute) / sweep.resources.max_concurrent
    in_flight = sum(r[0] for r in rows) / span  # trials (suggested, not done) at once, on average
    busy = sum(compute) / span  # stages computing at once, on average
    growth = growth_per_item(memory)
    print(
        f"executions: {len(rows)}, concurrency {sweep.resources.max_concurrent}, "
        f"in {len(workers)} trial worker processes"
    )
    print(f"median stage compute:          {statistics.median(compute):7.2f} s")
    print(f"median overhead per execution: {statistics.median(overhead):7.2f} s")
    print(f"mean overhead per execution:   {statistics.mean(overhead):7.2f} s")
    print(
        f"  of it, median: suggested -> stage start {statistics.median(r[2] for r in rows):.2f} s, "
        f"stage end -> done {statistics.median(r[3] for r in rows):.2f} s"
    )
    print(f"trials in flight at once:      {in_flight:7.2f} (stages computing {busy:.2f})")
    print(f"scheduler per trial:           {inside[0] * 1000 / len(rows):7.3f} ms")
    print(f"driver RSS growth:             {growth / 1024:7.1f} KB per execution")
    print(f"wall (incl. Ray start):        {wall:7.1f} s; trials first to last {span:.1f} s")
    print(f"ideal (compute / concurrency): {ideal:7.1f} s")
    print(f"wall / ideal:                  {wall / ideal:7.2f}x (trials only {span / ideal:.2f}x)")


def sleeper(config: dict[str, Any]) -> None:
    from ray import tune

    start = time.time()
    time.sleep(config["sleep"])
    tune.report({"started_at": start, "finished_at": time.time()})  # Tune adds the pid


def tune_part(n: int, sleep: float, concurrency: int = 2) -> None:
    """Tune's own per-trial cost: the sweep part's shape with nothing of senet's in it."""
    import ray
    from ray import tune
    from ray.tune.search import Searcher

    from orchestrator.run.driver import connect

    suggested: dict[str, float] = {}
    completed: dict[str, dict[str, Any]] = {}
    memory: list[int] = []

    class Plain(Searcher):
        def __init__(self) -> None:
            super().__init__(metric="finished_at", mode="max")
            self.left = n

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if self.left == 0:
                return Searcher.FINISHED
            self.left -= 1
            suggested[trial_id] = time.time()
            return {"sleep": sleep}

        def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
            completed[trial_id] = {**(result or {}), "done": time.time()}
            memory.append(rss())

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        connect(None)  # a fresh local Ray, as `senet run` starts one
        try:
            tune.Tuner(
                tune.with_resources(sleeper, {"cpu": 1}),
                tune_config=tune.TuneConfig(
                    search_alg=Plain(),
                    num_samples=-1,
                    max_concurrent_trials=concurrency,
                    reuse_actors=True,
                ),  # fmt: skip
                run_config=tune.RunConfig(storage_path=tmp, verbose=0),
            ).fit()
        finally:
            ray.shutdown()
        wall = time.perf_counter() - t0
    rows = [(suggested[t], r) for t, r in completed.items() if "started_at" in r]
    span = max(r["done"] for _, r in rows) - min(s for s, _ in rows)
    ideal = len(rows) * sleep / concurrency
    pids = len({r["pid"] for _, r in rows})
    # a slot's idle time: from a trial's completion to the next suggestion after it
    starts = sorted(suggested.values())
    idle = [next((t for t in starts if t >= r["done"]), r["done"]) - r["done"] for _, r in rows]
    print(
        f"trials: {len(rows)} of {sleep:.2f} s, concurrency {concurrency}, {pids} worker processes"
    )
    print(
        f"median overhead per trial:     {statistics.median(r['done'] - s - sleep for s, r in rows):7.2f} s"
    )
    print(f"  of it, median: suggested -> start {statistics.median(r['started_at'] - s for s, r in rows):.2f} s, "
          f"end -> complete {statistics.median(r['done'] - r['finished_at'] for _, r in rows):.2f} s")  # fmt: skip
    growth = growth_per_item(memory)
    print(f"median completion -> next suggestion: {statistics.median(idle):.2f} s")
    print(f"driver RSS growth:             {growth / 1024:7.1f} KB per trial")
    print(f"wall (incl. Ray start):        {wall:7.1f} s; trials first to last {span:.1f} s")
    print(f"wall / ideal:                  {wall / ideal:7.2f}x (trials only {span / ideal:.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--part", choices=("scheduler", "sweep", "tune", "both"), default="both")
    ap.add_argument("--sleep", type=float, default=0.45, help="tune: seconds per trial")
    ap.add_argument("-n", type=int, nargs="+", default=[100, 1000, 2000], help="sweep sizes")
    ap.add_argument(
        "--trace-memory",
        action="store_true",
        help="attribute the driver's heap growth to files (tracemalloc; slows the sweep)",
    )
    args = ap.parse_args()
    if args.part in ("scheduler", "both"):
        scheduler_part()
    if args.part in ("sweep", "both"):
        inside = time_searcher()
        for n in args.n:
            print(f"--- sweep of {n} executions")
            inside[0] = 0.0
            sweep_part(n, inside, args.trace_memory)
    if args.part == "tune":
        for n in args.n:
            print(f"--- Tune alone, {n} trials")
            tune_part(n, args.sleep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
