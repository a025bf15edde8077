"""The fidelity table: does SENet beat what it exists to beat, on real images?

Runs sweeps/fidelity-fashion-mnist.toml (ResNet-20 on Fashion-MNIST; budgets 1, 2, 5, 10 % of
its ReLUs; sensitivity / uniform / proportional allocation with the default mask search, and
SNL; 3 seeds) through the sweep machinery, then prints, per budget and method, the mean and
spread of stage-3 test accuracy next to:
- the ceiling: the all-ReLU teacher (stage 1);
- floor 1: the same network with zero ReLUs (budget 0, the linearised network), same recipe;
- floor 2: logistic regression on the pixels of the same training images (C picked on val).
Selection uses validation only (stages keep their best-validation epoch); test accuracy is only
reported. A budgeted model that does not clear both floors is flagged.

    python bench/fidelity.py                       # senet run on a local Ray, then the table
    python bench/fidelity.py --workers 8 --device cuda   # no Ray: a process pool (GPU box)
Rerunning reuses every finished stage (the store is content-addressed).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.plan.plan import Node, Plan, build_plan  # noqa: E402
from orchestrator.records.provenance import build_provenance  # noqa: E402
from orchestrator.records.read import read_records  # noqa: E402
from orchestrator.records.write import reconcile_records, write_committed  # noqa: E402
from orchestrator.spec.sweep import Sweep, load_sweep  # noqa: E402
from stages.artifacts import read_meta  # noqa: E402
from stages.config import Stage2Config  # noqa: E402
from stages.data import load_data  # noqa: E402

SWEEP = ROOT / "sweeps" / "fidelity-fashion-mnist.toml"


def _execute(job: tuple[dict[str, Any], str, str, str, str, int]) -> float:
    """One stage execution in a pool worker; returns its compute seconds (0 if it failed:
    its dependants then fail too, and the table counts what finished)."""
    import torch

    from stages.config import config_from_dict
    from stages.pipeline import execute

    node, name, store, workdir, device, threads = job
    torch.set_num_threads(threads)
    stage = int(node["stage"])
    cfg = config_from_dict(stage, node["config"])
    try:
        r = execute(
            stage, cfg, Path(store), node["key"], node["stage1_key"], node["stage2_key"],
            device=device, provenance=build_provenance(name, "bench-fidelity"),
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - reported, the rest of the table goes on
        print(f"stage {stage} {node['key']} failed: {type(e).__name__}: {e}", flush=True)
        return 0.0
    meta = read_meta(Path(r.artifact))
    assert meta is not None
    write_committed(Path(workdir), name, stage, meta, r.artifact)
    return float(meta["wall_s"])


def run_local(sweep: Sweep, plan: Plan, workers: int, device: str) -> None:
    """Stage by stage over a process pool: the executor seam for a machine without Ray.
    A multiprocessing Pool, whose exit terminates its workers: a killed or interrupted bench
    must not leave them training on (ProcessPoolExecutor's workers outlive a SIGTERM of their
    parent and were seen finishing their stages as orphans; main turns SIGTERM into an exit)."""
    threads = 1 if workers > 1 else 2
    with get_context("spawn").Pool(workers) as pool:
        for stage in (1, 2, 3):
            todo: list[Node] = [n for n in plan.stage(stage) if not plan.is_done(n)]
            t0 = time.perf_counter()
            jobs = [
                (n.to_dict(), sweep.name, str(plan.store), str(sweep.workdir), device, threads)
                for n in todo
            ]
            compute = sum(pool.map(_execute, jobs, chunksize=1))
            print(
                f"stage {stage}: {len(todo)} executions, {time.perf_counter() - t0:.0f} s wall, "
                f"{compute:.0f} s compute",
                flush=True,
            )


def logistic_floor(sweep: Sweep, seed: int) -> tuple[float, float]:
    """Logistic regression on the pixels of the seed's training images: (val, test) accuracy,
    the inverse regularisation C picked on validation. Minutes of CPU per seed, so it is kept
    in the workdir (fidelity-floors.json) under what it depends on and computed once."""
    data = sweep.stage1[0].data
    key = f"{sweep.dataset}|{data.limit}|{data.val_fraction}|{seed}"
    cache = Path(sweep.workdir) / "fidelity-floors.json"
    known: dict[str, list[float]] = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in known:
        known[key] = list(_fit_logistic(sweep, seed))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(cache)
    val, test = known[key]
    return val, test


def _fit_logistic(sweep: Sweep, seed: int) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    d = load_data(sweep.dataset, sweep.data_root, sweep.stage1[0].data.val_fraction, seed,
                  sweep.stage1[0].data.limit)  # fmt: skip

    def flat(split: Any) -> Any:
        return split.x.reshape(len(split), -1).float().numpy() / 255.0

    best = (-1.0, 0.0)
    for c in (0.01, 0.1, 1.0):
        with warnings.catch_warnings():  # lbfgs may stop at max_iter: still a fair floor
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=500).fit(flat(d.train), d.train.y.numpy())
        val = float(clf.score(flat(d.val), d.val.y.numpy()))
        if val > best[0]:
            best = (val, float(clf.score(flat(d.test), d.test.y.numpy())))
    return best


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    spread = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):.1f} ± {100 * spread:.1f}"


# Columns in this order when present: SENet's allocations (default search), then SNL.
COLUMNS = ("sensitivity", "uniform", "proportional", "snl")


def column(record: dict[str, Any]) -> str:
    """A stage-3 record's column: its allocation for SENet's default search, `snl` for SNL,
    `<method> <allocation>` for any other search (e.g. `alpha sensitivity`)."""
    if record["method"] == "snl":
        return "snl"
    if record["method"] in (None, Stage2Config().method) or record["budget"] == 0:
        return record["allocation"]
    return f"{record['method']} {record['allocation']}"


def table(sweep: Sweep, plan: Plan) -> str:
    """Mean ± std over the sweep's seeds per budget and column. A budgeted cell is flagged
    when on any seed it does not clear that seed's own floors (same split, same teacher):
    the pairing is what the margins need, as the floors move with the split."""
    # Stages another sweep computed into the same store (its teacher, say) get this sweep's
    # record first, as `senet run` does at its start and end; else the table misses them.
    reconcile_records(Path(sweep.workdir), sweep.name, Path(plan.store), plan.nodes.values())
    rows = read_records(sweep.workdir, sweep=sweep.name).to_pylist()
    seeds = list(sweep.seeds)
    # Only this sweep file's executions: a store shared with other recipes holds records of
    # the same sweep name under other keys (an earlier lr, say), which must not fill a cell.
    done = [r for r in rows if r["key"] in plan.nodes and r["status"] in ("completed", "reused")]
    teacher = {r["seed"]: r["test_acc"] for r in done if r["stage"] == 1}
    by: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)  # one value per seed
    for r in done:
        if r["stage"] == 3:
            by[(r["budget"], column(r))][r["seed"]] = r["test_acc"]
    linear = by.pop((0, "uniform"), {})
    logreg = {s: logistic_floor(sweep, s)[1] for s in seeds}
    floor = {s: max(linear.get(s, 0.0), logreg[s]) for s in seeds}
    margin = {k: {s: a - floor[s] for s, a in sorted(acc.items())} for k, acc in by.items()}
    present = {m for _, m in by}
    methods = [m for m in COLUMNS if m in present] + sorted(present - set(COLUMNS))
    out = [
        f"ceiling, all-ReLU teacher ({sweep.relu_total:,} ReLUs): {_ms(list(teacher.values()))} % test",
        f"floor 1, linearised network (budget 0), same recipe: {_ms(list(linear.values()))} %",
        f"floor 2, logistic regression on the pixels: {_ms(list(logreg.values()))} %",
        "",
        "| budget | ReLUs | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for b in sorted({b for b, _ in by}):
        cells = []
        for m in methods:
            acc = by.get((b, m), {})
            below = [s for s, d in margin.get((b, m), {}).items() if d <= 0]
            flag = f" (below a floor on seed {', '.join(map(str, below))})" if below else ""
            n = f" (n={len(acc)})" if acc and len(acc) < len(seeds) else ""
            cells.append(_ms(list(acc.values())) + n + flag)
        out.append(f"| {100 * b / sweep.relu_total:.0f} % | {b:,} | " + " | ".join(cells) + " |")
    out.append(f"(mean ± std of test accuracy, %, over seeds {seeds}; n marks a cell with fewer)")
    if methods:
        out += _per_seed(by, margin, methods, sweep.relu_total)
    return "\n".join(out)


def _per_seed(
    by: dict[tuple[int, str], dict[int, float]],
    margin: dict[tuple[int, str], dict[int, float]],
    methods: list[str],
    relu_total: int,
) -> list[str]:
    """The first column's margin over each seed's higher floor, then its lead over every
    other column, seed by seed on the seeds both have: the seeds share a split and a teacher,
    so these paired differences, not the means, say whether SENet comes out ahead."""
    first = methods[0]

    def pct(b: int) -> str:
        return f"{100 * b / relu_total:.0f} %"

    def points(d: dict[int, float]) -> str:
        return ", ".join(f"{100 * v:+.1f}" for v in d.values())

    lines = []
    margins = [f"{pct(b)}: {points(d)}" for (b, m), d in sorted(margin.items()) if m == first and b]
    if margins:
        lines.append(
            f"{first}, margin over the higher floor of each seed, points: " + "; ".join(margins)
        )
    for other in methods[1:]:
        leads = []
        for b in sorted({b for b, m in by if m == other and b}):
            mine, theirs = by.get((b, first), {}), by[(b, other)]
            common = {s: mine[s] - theirs[s] for s in sorted(mine) if s in theirs}
            if common:
                leads.append(f"{pct(b)}: {points(common)} (seeds {', '.join(map(str, common))})")
        if leads:
            lines.append(f"{first} minus {other}, points: " + "; ".join(leads))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sweep", type=Path, default=SWEEP, help="sweep file (%(default)s)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: the sweep's")
    ap.add_argument("--workers", type=int, default=0,
                    help="0: `senet run` on a local Ray; N: a pool of N processes, no Ray")  # fmt: skip
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--table-only", action="store_true", help="print the table from the records")
    ap.add_argument("--run-only", action="store_true", help="run the stages, print no table")
    args = ap.parse_args()
    sweep = load_sweep(args.sweep, args.workdir)
    plan = build_plan(sweep)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a Pool's exit stops its workers
    t0 = time.perf_counter()
    if not args.table_only:
        if args.workers:
            run_local(sweep, plan, args.workers, args.device)
        else:
            cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(args.sweep)]
            cmd += ["--device", args.device] + (
                ["--workdir", str(args.workdir)] if args.workdir else []
            )
            subprocess.run(cmd, check=False, cwd=ROOT)
    if not args.run_only:
        print(table(sweep, plan))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
