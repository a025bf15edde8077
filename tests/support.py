"""Helpers shared by tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

TINY = """\
[sweep]
name = "{name}"
model = "resnet20"
dataset = "synthetic"
seeds = [0]
budgets = {budgets}
limit = 48
workdir = "{workdir}"

[stage1]
epochs = {epochs}
batch_size = 16

[stage2]
epochs = {epochs}
batch_size = 16

[stage3]
epochs = {epochs}
batch_size = 16
tau = {taus}

[resources]
cpus = 1
max_concurrent = 2
retries = {retries}
"""


def write_sweep(
    path: Path,
    workdir: Path,
    name: str = "tiny",
    budgets: list[int] | None = None,
    taus: list[float] | None = None,
    epochs: int = 1,
    retries: int = 0,
) -> Path:
    """A sweep of resnet20 on 48 synthetic 16x16 images: seconds per stage on a CPU."""
    path.write_text(
        TINY.format(
            name=name,
            budgets=budgets or [3000, 6000],
            taus=taus or [2.0, 4.0],
            epochs=epochs,
            retries=retries,
            workdir=workdir,
        )
    )
    return path


OPTUNA = """\
[sweep]
name = "{name}"
model = "resnet20"
dataset = "synthetic"
budgets = {budgets}
limit = 48
workdir = "{workdir}"

[stage1]
epochs = 1
batch_size = 16

[stage2]
epochs = 1
batch_size = 16

[stage3]
epochs = {epochs}
batch_size = 16

[search]
mode = "{mode}"
trials = {trials}
seed = 3
{search_extra}

[search.space]
tau = {{low = 1.0, high = 8.0, log = true}}
beta = {{choices = [0.0, 1000.0]}}
{space_extra}

[resources]
max_concurrent = 2
retries = 0
"""


def write_optuna_sweep(
    path: Path,
    workdir: Path,
    name: str = "opt",
    mode: str = "optuna",
    trials: int = 3,
    budgets: list[int] | None = None,
    epochs: int = 2,
    search_extra: str = "",
    space_extra: str = "",
) -> Path:
    """A tiny Optuna sweep (per-budget, or Pareto with a sampled budget)."""
    path.write_text(
        OPTUNA.format(
            name=name,
            mode=mode,
            trials=trials,
            budgets=budgets if budgets is not None else [3000, 6000],
            workdir=workdir,
            epochs=epochs,
            search_extra=search_extra,
            space_extra=space_extra,
        )
    )
    return path
