"""`senet pipeline`: one budget through the three stages in this process, printing progress."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from stages.catalog import ALLOCATIONS, DATASETS, GRANULARITIES, INITS, METHODS, PRUNINGS
from stages.config import Stage1Config, Stage2Config, Stage3Config


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
    p.add_argument("--pruning", default=d1.pruning, help=f"{' | '.join(PRUNINGS)} (oneshot)")
    p.add_argument("--no-stem", action="store_true", help="stem ReLU kept and not counted (SNL)")
    p.add_argument("--allocation", default=d2.allocation, help=" | ".join(ALLOCATIONS))
    p.add_argument("--granularity", default=d2.granularity, help=" | ".join(GRANULARITIES))
    p.add_argument("--method", default=d2.method, help=" | ".join(METHODS))
    p.add_argument("--init", default=d2.init, help=f"stage-2 student: {' | '.join(INITS)}")
    p.add_argument("--tau", type=float, default=d3.tau, help="distillation temperature (4)")
    p.add_argument("--gamma", type=float, default=d3.gamma, help="stage-3 CE weight (0.1)")
    p.add_argument("--alpha", type=float, default=d3.alpha, help="stage-3 KL weight (0.9)")
    p.add_argument("--beta", type=float, default=d3.beta, help="stage-3 alignment weight (1000)")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="stages 2 and 3 train on the images as they are (no crops or flips)",
    )
    p.add_argument("--workdir", default="runs/pipeline", help="artifact store (runs/pipeline)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


# (section, key) of the sweep schema -> the option that set it, to name it in a refusal
_OPTIONS = {
    ("sweep", "model"): "--model",
    ("sweep", "dataset"): "--dataset",
    ("sweep", "data_root"): "--data-root",
    ("sweep", "budgets"): "--budget",
    ("sweep", "seeds"): "--seed",
    ("sweep", "limit"): "--limit",
    ("sweep", "workdir"): "--workdir",
    ("stage1", "density"): "--density",
    ("stage1", "pruning"): "--pruning",
    ("stage2", "allocation"): "--allocation",
    ("stage2", "granularity"): "--granularity",
    ("stage2", "method"): "--method",
    ("stage2", "init"): "--init",
    **{(f"stage{n}", "batch_size"): "--batch-size" for n in (1, 2, 3)},
    **{(f"stage{n}", "tau"): "--tau" for n in (2, 3)},
    **{("stage3", k): f"--{k}" for k in ("gamma", "alpha", "beta")},
}


def _number(text: str) -> int | float | str:
    """--budget as the sweep file would hold it: an int is a count, a float maybe a fraction."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def configs(args: argparse.Namespace) -> tuple[Stage1Config, Stage2Config, Stage3Config]:
    """Stage configs from the command line, checked by the sweep schema like a sweep file's
    (budget resolved against the model's ReLU count); a refusal names the option."""
    from orchestrator.spec import schema
    from orchestrator.spec.sweep import parse_sweep

    stage: dict[str, dict[str, Any]] = {"stage1": {}, "stage2": {}, "stage3": {}}
    epochs = {}
    for n in (1, 2, 3):
        given = getattr(args, f"stage{n}_epochs")
        flag = f"--stage{n}-epochs" if given is not None else "--epochs"
        value = given if given is not None else args.epochs
        if value is not None:
            stage[f"stage{n}"]["epochs"] = value
            epochs[(f"stage{n}", "epochs")] = flag
        stage[f"stage{n}"]["batch_size"] = args.batch_size
    stage["stage1"] |= {"density": args.density, "pruning": args.pruning}
    stage["stage2"] |= {
        "allocation": args.allocation,
        "granularity": args.granularity,
        "method": args.method,
        "init": args.init,
        "tau": args.tau,
        "augment": not args.no_augment,
    }
    stage["stage3"] |= {
        "tau": args.tau,
        "gamma": args.gamma,
        "alpha": args.alpha,
        "beta": args.beta,
        "augment": not args.no_augment,
    }
    top: dict[str, Any] = {
        "name": "pipeline",
        "model": args.model,
        "dataset": args.dataset,
        "budgets": [_number(args.budget)],
        "seeds": [args.seed],
        "include_stem": not args.no_stem,
        "workdir": str(args.workdir),
    }
    top |= {
        k: v for k, v in (("data_root", args.data_root), ("limit", args.limit)) if v is not None
    }
    try:
        sweep = parse_sweep({"sweep": top, **stage}, workdir=Path(args.workdir), find_data=False)
    except schema.SchemaError as e:
        option = {**_OPTIONS, **epochs}.get((e.section, e.key), f"[{e.section}] {e.key}")
        got = "" if e.value is schema.UNSET else f" (got {schema.show(e.value)})"
        raise UserError(f"{option}: {e.problem}{got}") from None
    s2 = dataclasses.replace(sweep.stage2[0], budget=sweep.budgets[0])
    return sweep.stage1[0], s2, sweep.stage3[0]


def _progress(row: dict[str, Any]) -> None:
    extra = f"  hamming {row['hamming']:.4f}" if "hamming" in row else ""
    print(
        f"stage {row['stage']}  epoch {row['epoch']:>3}/{row['epochs']}  loss {row['loss']:.4f}  "
        f"val_acc {row['val_acc']:.4f}{extra}",
        flush=True,
    )


def cmd_pipeline(args: argparse.Namespace) -> int:
    from orchestrator.spec.schema import workdir_problem
    from stages.data import DataNotFoundError
    from stages.pipeline import run_pipeline
    from stages.train import device_problem

    if problem := device_problem(args.device):
        raise UserError(f"--device: {problem}")
    s1, s2, s3 = configs(args)
    if problem := workdir_problem(Path(args.workdir), write=True):
        raise UserError(f"--workdir: {problem}")
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
