"""[logging]: Weights & Biases and MLflow through Ray Tune's own logger callbacks. Tune
writes TensorBoard and CSV files of every trial anyway (under WORKDIR/tune); nothing here
logs by hand, it only maps the sweep file's tables onto Ray's callbacks."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from orchestrator.errors import UserError
from orchestrator.spec.sweep import Sweep

# [logging.NAME] -> (the package the callback needs, Ray's module, its callback class)
CALLBACKS: dict[str, tuple[str, str, str]] = {
    "wandb": ("wandb", "ray.air.integrations.wandb", "WandbLoggerCallback"),
    "mlflow": ("mlflow", "ray.air.integrations.mlflow", "MLflowLoggerCallback"),
}


def callback_specs(sweep: Sweep) -> list[tuple[str, str, dict[str, Any]]]:
    """(section, callback class, keyword arguments) per [logging.NAME] table; runs are
    grouped under the sweep's name unless the table names a group or experiment."""
    table = sweep.logging
    out: list[tuple[str, str, dict[str, Any]]] = []
    if table is None:
        return out
    if table.wandb is not None:
        kwargs = table.wandb.model_dump(exclude_none=True)
        kwargs.setdefault("group", sweep.name)
        out.append(("wandb", CALLBACKS["wandb"][2], kwargs))
    if table.mlflow is not None:
        kwargs = table.mlflow.model_dump(exclude_none=True)
        kwargs.setdefault("experiment_name", sweep.name)
        out.append(("mlflow", CALLBACKS["mlflow"][2], kwargs))
    return out


def missing_package(sweep: Sweep) -> str | None:
    """One line naming the file, the table and the pip command, for the first [logging]
    table whose package is not installed; None when all are (nothing is imported)."""
    for section, _, _ in callback_specs(sweep):
        package = CALLBACKS[section][0]
        if importlib.util.find_spec(package) is None:
            where = f"{sweep.path}: " if sweep.path else ""
            return f"{where}[logging.{section}]: the {package} package is not installed; pip install {package}"
    return None


def check_loggers(sweep: Sweep) -> None:
    """Refuse before Ray starts: Ray's own errors come only after it started, as tracebacks."""
    if problem := missing_package(sweep):
        raise UserError(problem)


def logger_callbacks(sweep: Sweep) -> list[Any]:
    """Ray Tune's callbacks for the sweep's [logging] tables, built from Ray's own classes."""
    callbacks = []
    for section, name, kwargs in callback_specs(sweep):
        module = importlib.import_module(CALLBACKS[section][1])
        callbacks.append(getattr(module, name)(**kwargs))
    return callbacks
