"""The trial spec: what `senet run`'s options become on their way to the stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run.trial import TrialSpec


@pytest.mark.parametrize(
    ("device", "gpus", "trial_device"),
    [
        ("auto", 0, "cpu"),  # a GPU Ray did not give the trial is another trial's
        ("auto", 0.25, "auto"),
        ("cuda", 0, "cuda"),  # asked for by name: passed on, the stage says if it is missing
        ("cpu", 1, "cpu"),
        ("cuda:1", 1, "cuda:1"),
    ],
)
def test_trial_device(device: str, gpus: float, trial_device: str) -> None:
    assert TrialSpec.trial_device(device, gpus) == trial_device


def _spec() -> TrialSpec:
    return TrialSpec(Path("/w/store"), Path("/w"), "sw", "run-1", "abc", 1.0, "cpu")


def test_provenance_names_the_run_the_trial_and_the_optuna_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    prov = _spec().provenance("trial_1", {"optuna_study": "sw-budget3000", "optuna_trial": 5})
    assert prov == {
        "sweep": "sw",
        "run_id": "run-1",
        "code_version": "abc",
        "ray_trial_id": "trial_1",
        "slurm_job_id": "99",
        "optuna_study": "sw-budget3000",
        "optuna_trial": 5,
    }


def test_an_extra_the_records_have_no_column_for_is_refused() -> None:
    with pytest.raises(TypeError, match="tau"):
        _spec().provenance("trial_1", {"tau": 4.0})


def test_the_spec_is_frozen() -> None:
    spec = _spec()
    with pytest.raises(AttributeError):
        spec.device = "cuda"  # type: ignore[misc]


def test_the_trial_module_imports_neither_torch_nor_the_plan() -> None:
    """A new trial actor imports this module before it counts as started; torch's seconds there
    would let a short stage's actor lose its start (orchestrator.plan.start_order)."""
    import subprocess
    import sys

    code = "import sys, orchestrator.run.trial; print(sorted({'torch', 'orchestrator.plan.plan'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
