"""The Ray Tune trainable: one trial = one stage execution.

Runs in a Ray worker. It calls the stage through `stages.pipeline.execute` (which skips work
whose artifact already exists), forwards every epoch to Tune, and writes the Parquet record
right after the artifact is committed; the driver re-derives any record a crash left out.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def stage_trainable(config: dict[str, Any]) -> None:
    import torch
    from ray import tune

    from orchestrator.records.schema import row_from_meta
    from orchestrator.records.write import write_record
    from orchestrator.search.asha import ASHA_METRIC
    from stages.artifacts import read_meta
    from stages.config import config_from_dict
    from stages.pipeline import execute

    node = config["node"]
    stage = int(node["stage"])
    threads = max(1, int(math.floor(float(config.get("cpus", 1)))))
    torch.set_num_threads(threads)
    provenance = {
        "sweep": config["sweep"],
        "run_id": config["run_id"],
        "ray_trial_id": tune.get_context().get_trial_id(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "code_version": config.get("code_version"),
        **config.get("provenance", {}),
    }

    def on_epoch(row: dict[str, Any]) -> None:
        metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        if stage == 3:
            metrics[ASHA_METRIC] = metrics["val_acc"]
        tune.report({"stage": stage, "key": node["key"], **metrics})

    store = Path(config["store"])
    result = execute(
        stage,
        config_from_dict(stage, node["config"]),
        store,
        node["key"],
        node.get("stage1_key"),
        node.get("stage2_key"),
        on_epoch,
        config.get("device", "auto"),
        provenance,
    )
    meta = read_meta(Path(result.artifact))
    assert meta is not None
    write_record(
        Path(config["workdir"]),
        config["sweep"],
        stage,
        row_from_meta(meta, config["sweep"], result.artifact),
    )
    final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    tune.report({"stage": stage, "key": node["key"], "stage_done": 1, **final})
