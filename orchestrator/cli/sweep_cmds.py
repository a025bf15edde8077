"""`senet validate` and `senet run`: the sweep commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UserError

if TYPE_CHECKING:  # the commands import the library when they run: `senet --help` stays fast
    from orchestrator.plan.plan import Plan
    from orchestrator.spec.sweep import Sweep

OVERRIDES_HELP = (
    "Hydra-style overrides of the file's settings, checked by the same rules: dotted keys, "
    "TOML values, e.g. stage3.tau=[2.0,4.0] sweep.budgets=[0.05,0.1] stage1.epochs=2"
)


def add_overrides(p: argparse.ArgumentParser) -> None:
    """KEY=VALUE positionals after the sweep file (run, validate, submit)."""
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a sweep file and print its plan",
        description="Check a sweep file (one line naming the key and the problem if it is wrong) "
        "and print how many stage-1, stage-2 and stage-3 runs it needs and how many are done.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML), e.g. sweeps/demo.toml")
    add_overrides(p)
    p.add_argument("--workdir", type=Path, default=None, help="override the file's workdir")
    p.add_argument(
        "--json", action="store_true", help='print {"stage1": {"total": n, "done": k}, ...}'
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="a dry run: every planned stage execution, one line each in plan order (stage, "
        "key, parent, done or todo, the settings that differ from the defaults)",
    )
    p.set_defaults(func=cmd_validate)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a sweep on Ray Tune (resumes where it stopped)",
        description="Run every stage execution of a sweep as Ray Tune trials: stage 1 once per "
        "seed, stage 2 once per budget, stage 3 once per distillation setting; nothing already "
        "in the workdir's store runs again. Interrupt it at any time (Ctrl-C, kill -9) and run "
        "the same command to resume. Ends with a results table and the Parquet dataset's path.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML), e.g. sweeps/demo.toml")
    add_overrides(p)
    p.add_argument("--workdir", type=Path, default=None, help="override the file's workdir")
    p.add_argument(
        "--address",
        default=None,
        help="join this Ray cluster (host:port) instead of starting a local one; "
        "RAY_ADDRESS is used when set",
    )
    p.add_argument(
        "--device", default="auto", help="auto | cpu | cuda (trials with gpus > 0 use CUDA)"
    )
    # A Slurm job's driver (orchestrator.slurm.node) waits for every task's Ray node first.
    p.add_argument("--expect-nodes", type=int, default=1, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)


def _load(args: argparse.Namespace, write: bool = False) -> Sweep:
    """The checked sweep; its workdir must be a folder (and, with `write`, one this process
    can write: `senet run` creates it), refused in one line before Ray starts."""
    from orchestrator.spec.schema import workdir_problem
    from orchestrator.spec.sweep import load_or_fail

    if args.workdir is not None and (problem := workdir_problem(args.workdir)):
        raise UserError(f"--workdir: {problem}")
    sweep = load_or_fail(args.sweep, args.workdir, args.overrides)
    if write and (problem := workdir_problem(sweep.workdir, write=True)):
        where = "--workdir" if args.workdir is not None else f"{args.sweep}: [sweep] workdir"
        raise UserError(f"{where}: {problem}")
    return sweep


def cmd_validate(args: argparse.Namespace) -> int:
    from orchestrator.run.counts import sweep_counts
    from orchestrator.run.status import plan_summary

    sweep = _load(args)
    if args.list:
        from orchestrator.plan.plan import build_plan

        for line in plan_lines(build_plan(sweep, [] if sweep.search.optuna else None)):
            print(line)
        return 0
    if args.json:
        print(json.dumps(plan_summary(sweep)))
        return 0
    print(
        f"sweep {sweep.name}: {sweep.model} on {sweep.dataset} ({sweep.relu_total:,} ReLUs), workdir {sweep.workdir}"
    )
    print(
        f"budgets: {', '.join(f'{b:,}' for b in sweep.budgets)}; seeds: {', '.join(map(str, sweep.seeds))}; search: {sweep.search.mode}"
    )
    for stage, counts in sweep_counts(sweep).items():
        print(f"stage{stage}: {counts.text()}")
    return 0


def plan_lines(plan: Plan) -> list[str]:
    """`validate --list`: per planned execution, in plan order (parents first), its stage,
    key, parent, whether the store has it, and the config values that differ from the
    stage's defaults (`optim.lr=0.1`). In the Optuna modes stage 3 is sampled as it runs."""
    from stages.config import STAGE_CONFIGS

    done = plan.done_keys()
    lines = []
    for node in plan.nodes.values():
        default = _flat(STAGE_CONFIGS[node.stage]())
        changed = [f"{k}={v}" for k, v in _flat(node.config).items() if default.get(k) != v]
        parent = node.parent_key
        state = "done" if node.key in done else "todo"
        lines.append(
            f"stage{node.stage} {node.key} parent {parent or '-'} {state} {' '.join(changed)}".rstrip()
        )
    optuna = plan.sweep.search.optuna
    if optuna is not None:
        lines.append(
            f"stage3: sampled by Optuna as the sweep runs ({optuna.trials} trials per study)"
        )
    return lines


def _flat(config: object) -> dict[str, object]:
    """A config as dotted keys and JSON-ish values (`optim.milestones=[0.5,0.75]`)."""
    from stages.artifacts import jsonable

    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = json.dumps(value, separators=(",", ":"))

    walk("", jsonable(config))
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.analysis.report import print_failures, print_results
    from orchestrator.run.driver import ConnectError, run_sweep
    from stages.train import device_problem

    if problem := device_problem(args.device):
        raise UserError(f"--device: {problem}")
    sweep = _load(args, write=True)

    def printer(line: str) -> None:
        print(line, flush=True)

    try:
        summary = run_sweep(
            sweep, args.address, printer, args.device, expect_nodes=args.expect_nodes
        )
    except ConnectError as e:
        raise UserError(str(e)) from None
    print_results(sweep, printer)
    ran = ", ".join(f"stage{s} {n}" for s, n in summary.executed.items())
    printer(
        f"ran {sum(summary.executed.values())} stage executions ({ran}) in {summary.wall_s:.1f} s"
    )
    if summary.failed:
        print_failures(sweep, summary.run_id, len(summary.skipped), printer)
        return 1
    if summary.interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
