"""`senet pipeline`: one budget through the three stages in this process, printing progress."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.spec.budget import resolve_budget
from stages.allocation import ALLOCATIONS, BudgetError
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config, Stage3Config
from stages.data import DATASETS
from stages.partial_relu import GRANULARITIES
from stages.pruning import PRUNINGS
from stages.stage2 import INITS, METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    d1, d2, d3 = Stage1Config(), Stage2Config(), Stage3Config()
    p.add_argument("--model", default="resnet20", help="resnet18 | resnet20 | wrn22_8 | vgg16_bn")
    p.add_argument("--dataset", default="digits", help=" | ".join(DATASETS))
    p.add_argument("--data-root", default=None, help="folder with the dataset's official files")
    p.add_argument(
        "--budget",
        required=True,
        help="ReLU budget: a count (50000) or a fraction of the model's ReLUs (0.1)",
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs of every stage (shortcut)")
    p.add_argument("--stage1-epochs", type=int, default=None, help=f"({d1.optim.epochs})")
    p.add_argument("--stage2-epochs", type=int, default=None, help=f"({d2.optim.epochs})")
    p.add_argument("--stage3-epochs", type=int, default=None, help=f"({d3.optim.epochs})")
    p.add_argument("--batch-size", type=int, default=d1.optim.batch_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="at most this many training images")
    p.add_argument("--density", type=float, default=d1.density, help="pruning density (0.05)")
    p.add_argument(
        "--pruning", default=d1.pruning, choices=PRUNINGS, help="stage-1 pruning (oneshot)"
    )
    p.add_argument("--no-stem", action="store_true", help="stem ReLU kept and not counted (SNL)")
    p.add_argument("--allocation", default=d2.allocation, choices=ALLOCATIONS)
    p.add_argument("--granularity", default=d2.granularity, choices=GRANULARITIES)
    p.add_argument("--method", default=d2.method, choices=METHODS)
    p.add_argument("--init", default=d2.init, choices=INITS, help="stage-2 student (random)")
    p.add_argument("--tau", type=float, default=d3.tau, help="distillation temperature (4)")
    p.add_argument("--gamma", type=float, default=d3.gamma, help="stage-3 CE weight (0.1)")
    p.add_argument("--alpha", type=float, default=d3.alpha, help="stage-3 KL weight (0.9)")
    p.add_argument("--beta", type=float, default=d3.beta, help="stage-3 alignment weight (1000)")
    p.add_argument("--workdir", default="runs/pipeline", help="artifact store (runs/pipeline)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def _epochs(args: argparse.Namespace, stage: int, default: int) -> int:
    specific = getattr(args, f"stage{stage}_epochs")
    if specific is not None:
        return specific
    return args.epochs if args.epochs is not None else default


def configs(args: argparse.Namespace) -> tuple[Stage1Config, Stage2Config, Stage3Config]:
    """Stage configs from the command line (budget resolved against the model's ReLU count)."""
    from stages.models import MODELS
    from stages.pipeline import relu_total

    if args.model not in MODELS:
        raise UserError(f"--model: unknown model {args.model!r}; choose one of: {sorted(MODELS)}")
    if args.dataset not in DATASETS:
        raise UserError(f"--dataset: unknown dataset {args.dataset!r}; choose one of: {DATASETS}")
    if args.tau <= 0:
        raise UserError(f"--tau: the temperature must be > 0, got {args.tau}")
    try:
        budget = resolve_budget(args.budget, relu_total(args.model, args.dataset, not args.no_stem))
    except BudgetError as e:
        raise UserError(f"--budget: {e}") from None
    d1, d2, d3 = Stage1Config(), Stage2Config(), Stage3Config()

    def optim(o: OptimConfig, stage: int) -> OptimConfig:
        return dataclasses.replace(
            o, epochs=_epochs(args, stage, o.epochs), batch_size=args.batch_size
        )

    s1 = Stage1Config(
        model=args.model,
        data=DataConfig(args.dataset, args.data_root, limit=args.limit),
        seed=args.seed,
        optim=optim(d1.optim, 1),
        density=args.density,
        pruning=args.pruning,
        include_stem=not args.no_stem,
    )
    s2 = dataclasses.replace(
        d2,
        budget=budget,
        allocation=args.allocation,
        granularity=args.granularity,
        method=args.method,
        init=args.init,
        tau=args.tau,
        optim=optim(d2.optim, 2),
    )
    s3 = dataclasses.replace(
        d3,
        tau=args.tau,
        gamma=args.gamma,
        alpha=args.alpha,
        beta=args.beta,
        optim=optim(d3.optim, 3),
    )
    return s1, s2, s3


def _progress(row: dict[str, Any]) -> None:
    extra = f"  hamming {row['hamming']:.4f}" if "hamming" in row else ""
    print(
        f"stage {row['stage']}  epoch {row['epoch']:>3}/{row['epochs']}  loss {row['loss']:.4f}  "
        f"val_acc {row['val_acc']:.4f}{extra}",
        flush=True,
    )


def cmd_pipeline(args: argparse.Namespace) -> int:
    from stages.data import DataNotFoundError
    from stages.pipeline import run_pipeline

    s1, s2, s3 = configs(args)
    start = time.perf_counter()
    print(
        f"pipeline: {s1.model} on {s1.data.dataset}, budget {s2.budget} ReLUs, store {args.workdir}",
        flush=True,
    )
    try:
        results = run_pipeline(s1, s2, s3, Path(args.workdir), _progress, args.device)
    except DataNotFoundError as e:
        raise UserError(str(e)) from None
    for r in results:
        m = r.metrics
        print(
            f"stage {r.stage}  key {r.key}  relu_count {m['relu_count']}  "
            f"val_acc {m['val_acc']:.4f}  test_acc {m['test_acc']:.4f}  ({r.artifact})"
        )
    final = results[-1].metrics
    print(
        f"result: budget {s2.budget}  relu_count {final['relu_count']}  "
        f"val_acc {final['val_acc']:.4f}  test_acc {final['test_acc']:.4f}  "
        f"({time.perf_counter() - start:.1f} s)"
    )
    sys.stdout.flush()
    return 0
