"""The Ray Tune trainable: one trial = one stage execution.

Runs in a Ray worker. It calls the stage through `stages.pipeline.execute` (which skips work
whose artifact already exists), forwards every epoch to Tune, and writes the Parquet record
right after the artifact is committed; the driver re-derives any record a crash left out.

What every trial of one `senet run` shares (the CLI's options among it) travels as one typed
TrialSpec, handed to the trainable by `tune.with_parameters`; the Tune config of a trial holds
only what differs per trial (orchestrator.plan.dag.trial_config): its plan node and the node's
provenance extras (the Optuna trial).

Its module imports nothing heavy (no torch, no plan): a new trial actor imports this module
before Tune counts it as started, and with reuse_actors Tune hands a finished trial's actor to
a staged trial in place of one still starting. An actor whose start outlasts a stage therefore
never starts, and a sweep of short stages runs one trial at a time (bench/scale.py, docs/benchmarks.md).
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.records.provenance import build_provenance


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one `senet run` gets: where to work, who runs it, and how."""

    store: Path  # the workdir's content-addressed store
    workdir: Path  # records go to <workdir>/results
    sweep: str
    run_id: str
    code_version: str
    cpus: float  # [resources] cpus: torch gets floor(CPUs Ray gave the trial) threads
    device: str  # `senet run --device`: "auto" | "cpu" | "cuda" | "cuda:N"; per trial: trial_device

    @staticmethod
    def trial_device(device: str, gpus: float) -> str:
        """`--device auto` on trials that ask no GPU is the CPU: a GPU Ray did not give the
        trial belongs to another."""
        return device if gpus > 0 or device != "auto" else "cpu"

    def provenance(self, ray_trial_id: str | None, extras: dict[str, Any]) -> dict[str, Any]:
        """The provenance of one of this run's stage executions; `extras` are its node's
        (optuna_study, optuna_trial) from the search."""
        return build_provenance(self.sweep, self.run_id, self.code_version, ray_trial_id, **extras)


class TrialProgress:
    """The execution's progress file (orchestrator.run.status), so that `senet status` sees
    from the workdir alone what runs, at which epoch and how fast: written at the start and
    after every epoch, removed once the stage commits."""

    def __init__(self, spec: TrialSpec, node: dict[str, Any], trial_id: str | None) -> None:
        from orchestrator.run.status import progress_path

        self.path = progress_path(spec.workdir, node["key"])
        self.tick = time.monotonic()
        self.measured = [0, 0.0]  # epochs timed in this process, their seconds
        self.data: dict[str, Any] = {
            "stage": node["stage"],
            "key": node["key"],
            "run_id": spec.run_id,
            "trial_id": trial_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "epoch": 0,
            "epochs": node["config"]["optim"]["epochs"],
        }
        self._write()

    def epoch(self, row: dict[str, Any]) -> None:
        now = time.monotonic()
        seconds, self.tick = now - self.tick, now
        self.measured = [self.measured[0] + 1, self.measured[1] + seconds]
        self.data.update(epoch=row.get("epoch"), epochs=row.get("epochs"), epoch_s=seconds)
        self.data.update(val_acc=row.get("val_acc"))
        self._write()

    def done(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        from orchestrator.run.status import write_json

        write_json(self.path, {**self.data, "measured": self.measured, "updated": time.time()})


def granted_resources(cpus: float) -> dict[str, float]:
    """What Ray gave this trial, {"CPU": c, "GPU": g}: its stage's share of [resources]
    (`cpus` where Ray reports no CPU)."""
    import ray

    got = ray.get_runtime_context().get_assigned_resources()
    return {"CPU": float(got.get("CPU", cpus)), "GPU": float(got.get("GPU", 0.0))}


def stage_trainable(config: dict[str, Any], spec: TrialSpec) -> None:
    import torch
    from ray import tune

    from orchestrator.plan.dag import config_extras, config_node
    from orchestrator.records.write import write_committed
    from orchestrator.run.status import progress_path, read_json, write_json
    from orchestrator.search.asha import ASHA_METRIC
    from stages.artifacts import read_meta
    from stages.config import config_from_dict
    from stages.invariants import InvariantError
    from stages.pipeline import execute

    node = config_node(config)
    assert node is not None, "a DagSearcher config always carries its node"
    stage = int(node["stage"])
    granted = granted_resources(spec.cpus)
    torch.set_num_threads(max(1, int(math.floor(granted["CPU"]))))
    device = TrialSpec.trial_device(spec.device, granted["GPU"])
    provenance = spec.provenance(tune.get_context().get_trial_id(), config_extras(config))
    provenance["resources"] = granted  # in meta.json: what this stage ran with

    refused = progress_path(spec.workdir, node["key"]).with_suffix(".refused")
    earlier = read_json(refused)
    if earlier is not None and earlier.get("run_id") == spec.run_id:
        # This run's earlier attempt broke an invariant: that repeats, so do not recompute it.
        raise InvariantError(f"{earlier.get('reason')} (not retried)")
    progress = TrialProgress(spec, node, tune.get_context().get_trial_id())

    def on_epoch(row: dict[str, Any]) -> None:
        progress.epoch(row)
        metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        if stage == 3:
            metrics[ASHA_METRIC] = metrics["val_acc"]
        tune.report({"stage": stage, "key": node["key"], **metrics})

    try:
        result = execute(
            stage,
            config_from_dict(stage, node["config"]),
            spec.store,
            node["key"],
            node.get("stage1_key"),
            node.get("stage2_key"),
            on_epoch,
            device,
            provenance,
        )
    except InvariantError as e:
        write_json(refused, {"run_id": spec.run_id, "reason": str(e)})  # for a retry (above)
        progress.done()
        raise
    meta = read_meta(Path(result.artifact))
    assert meta is not None
    write_committed(spec.workdir, spec.sweep, stage, meta, result.artifact)
    progress.done()
    refused.unlink(missing_ok=True)
    final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    tune.report({"stage": stage, "key": node["key"], "stage_done": 1, **final})
