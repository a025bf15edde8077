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
