"""What `senet submit` asks Slurm for: one dataclass that is the single home of each option's
flag, default, help and rule. The command line is built from it, and the same rule refuses a
bad value whether it came from the command line or from code."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_script_text(what: str, value: str | os.PathLike[str]) -> None:
    """Refuse a value that goes into the generated sbatch script (or names its files) if it has
    a control character: a newline there ends the `#SBATCH` line and starts a shell command
    the job runs on the cluster. The value is shown escaped, so the message stays one line."""
    text = os.fspath(value)
    bad = _CONTROL.search(text)
    if bad:
        raise UserError(
            f"{what} {text!r} has a control character ({bad.group()!r}); it would break the "
            "generated Slurm script: use a name without one"
        )


def _option(
    default: Any, flag: str, help: str, minimum: int | None = None, metavar: str = "N"
) -> Any:
    """A request field with its command-line flag, help and lower bound (None: free text)."""
    meta = {"flag": flag, "help": help, "minimum": minimum, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SlurmRequest:
    """What one `senet submit` asks Slurm for; `check()` holds the rules, before any sbatch."""

    nodes: int = _option(1, "--nodes", "Slurm nodes", 1)
    cpus_per_node: int = _option(1, "--cpus-per-node", "CPUs per node for Ray", 1)
    gpus_per_node: int = _option(0, "--gpus-per-node", "GPUs per node for Ray", 0)
    partition: str | None = _option(None, "--partition", "Slurm partition", metavar="NAME")
    time_min: int = _option(60, "--time", "time limit in minutes", 1, "MINUTES")
    account: str | None = _option(None, "--account", "Slurm account", metavar="NAME")
    qos: str | None = _option(None, "--qos", "Slurm quality of service", metavar="NAME")
    mem: str | None = _option(None, "--mem", "memory per node, e.g. 64G", metavar="SIZE")
    # USR2 this long before the time limit: time for Tune to stop and the job to requeue
    signal_delay_s: int = _option(
        120,
        "--signal-delay",
        "seconds before the time limit at which the job stops and requeues",
        1,
        "SECONDS",
    )
    # submitit's own default is 3; preemptions do not count
    max_requeues: int = _option(
        10,
        "--max-requeues",
        "times the job requeues at its time limit, each time resuming the sweep; after that it "
        "stops and `senet submit` again goes on",
        0,
    )
    # >1 runs several Ray nodes per Slurm node: the tests' several-node cluster on one box
    raylets_per_node: int = _option(1, "--raylets-per-node", argparse.SUPPRESS, 1)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """One flag per field, its default shown in the help (or the cluster's, when unset)."""
        for f in dataclasses.fields(SlurmRequest):
            text = f.metadata["help"]
            if text != argparse.SUPPRESS:
                text += f" ({'the cluster default' if f.default is None else f.default})"
            kind = str if f.metadata["minimum"] is None else int
            parser.add_argument(
                f.metadata["flag"],
                dest=f.name,
                type=kind,
                default=f.default,
                metavar=f.metadata["metavar"],
                help=text,
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SlurmRequest:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def check(self) -> None:
        for f in dataclasses.fields(self):
            value, flag, low = getattr(self, f.name), f.metadata["flag"], f.metadata["minimum"]
            if low is not None and value < low:
                raise UserError(f"{flag} must be >= {low}, got {value}")
            if low is None and value is not None:
                check_script_text(flag, value)
        if self.time_min * 60 < self.signal_delay_s + 60:
            # Slurm sends the warning up to 30 s (its check period) before warn time.
            raise UserError(
                f"--signal-delay {self.signal_delay_s} leaves the job no time to run within "
                f"--time {self.time_min} (Slurm may signal up to 30 s early); use a longer --time "
                "or a shorter --signal-delay"
            )
        if self.cpus_per_node % self.raylets_per_node:
            raise UserError("--cpus-per-node must be a multiple of --raylets-per-node")
