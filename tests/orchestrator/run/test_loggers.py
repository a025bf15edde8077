"""[logging]: the sweep file's tables mapped onto Ray Tune's own W&B and MLflow callbacks,
checked against the installed Ray's real signatures, and the one-line refusal before Ray
starts when a table's package is missing (wandb and mlflow are not installed here)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import UserError
from orchestrator.run.driver import run_sweep
from orchestrator.run.loggers import CALLBACKS, callback_specs, check_loggers, missing_package
from orchestrator.spec.sweep import load_sweep

BASE = '[sweep]\nname = "lg"\nmodel = "resnet20"\ndataset = "digits"\nbudgets = [1000]\n'
BOTH = (
    '[logging.wandb]\nproject = "senet"\nentity = "lab"\n'
    '[logging.mlflow]\ntracking_uri = "file:///tmp/mlruns"\ntags = {team = "pi"}\n'
)


def _sweep(tmp_path: Path, logging: str):
    path = tmp_path / "s.toml"
    path.write_text(BASE + f'workdir = "{tmp_path / "work"}"\n' + logging)
    return load_sweep(path)


def test_no_logging_table_means_no_callbacks(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, "")
    assert callback_specs(sweep) == [] and missing_package(sweep) is None
    check_loggers(sweep)  # nothing to refuse


def test_tables_map_to_ray_callbacks_grouped_by_the_sweep(tmp_path: Path) -> None:
    specs = callback_specs(_sweep(tmp_path, BOTH))
    assert specs == [
        ("wandb", "WandbLoggerCallback", {"project": "senet", "entity": "lab", "group": "lg"}),
        (
            "mlflow",
            "MLflowLoggerCallback",
            {
                "tracking_uri": "file:///tmp/mlruns",
                "tags": {"team": "pi"},
                "experiment_name": "lg",
            },
        ),
    ]
    given = '[logging.wandb]\nproject = "p"\ngroup = "g"\n[logging.mlflow]\nexperiment_name = "e"\n'
    specs = callback_specs(_sweep(tmp_path, given))
    assert [s[2] for s in specs] == [{"project": "p", "group": "g"}, {"experiment_name": "e"}]


def test_the_arguments_fit_the_installed_ray_classes(tmp_path: Path) -> None:
    """Ray's modules import without wandb/mlflow; binding the mapped arguments to the real
    __init__ signatures catches a renamed or mistyped argument."""
    full = BOTH.replace('entity = "lab"', 'entity = "lab"\ngroup = "g"\napi_key_file = "k"')
    for section, name, kwargs in callback_specs(_sweep(tmp_path, full)):
        cls = getattr(importlib.import_module(CALLBACKS[section][1]), name)
        params = inspect.signature(cls.__init__).parameters
        inspect.signature(cls.__init__).bind(None, **kwargs)
        named = {k for k in kwargs if k in params}
        # everything but wandb.init's own `entity` is one of Ray's named arguments
        assert set(kwargs) - named <= {"entity"}, (name, kwargs)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_missing_package_is_refused_in_one_line_before_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    up = ray.is_initialized()  # the session's shared Ray (conftest) may be up: then it stays
    sweep = _sweep(tmp_path, BOTH)
    with pytest.raises(UserError) as e:
        run_sweep(sweep)
    assert str(e.value) == (
        f"{sweep.path}: [logging.wandb]: the wandb package is not installed; pip install wandb"
    )
    assert ray.is_initialized() == up and not (tmp_path / "work").exists()
    code = main(["run", str(sweep.path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install wandb" in err
    assert ray.is_initialized() == up


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_mlflow_alone_names_mlflow(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, "[logging.mlflow]\n")
    assert missing_package(sweep) == (
        f"{sweep.path}: [logging.mlflow]: the mlflow package is not installed; pip install mlflow"
    )
