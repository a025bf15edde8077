"""The [search] section of the Optuna modes: every bad setting is one line naming its key."""

from __future__ import annotations

import pytest

from orchestrator.errors import SweepError
from orchestrator.spec.sweep import parse_sweep

BASE = {"sweep": {"model": "resnet20", "dataset": "digits", "budgets": [1000]}}


@pytest.mark.parametrize(
    ("search", "needle"),
    [
        ({"mode": "optuna"}, "[search.space]: missing"),
        (
            {"mode": "optuna", "space": {"budget": {"low": 10, "high": 20}}},
            "[search.space] budget: cannot be sampled (the budget is sampled only in mode optuna-pareto)",
        ),
        (
            {"mode": "optuna", "space": {"tau": {"low": 0.0, "high": 2.0}}},
            "[search.space] tau: low: must be > 0 (got 0.0)",
        ),
        ({"mode": "optuna", "space": {"tau": {"low": 3.0, "high": 2.0}}}, "low < high"),
        (
            {"mode": "optuna", "trials": 0, "space": {"tau": [1.0, 2.0]}},
            "[search] trials: must be >= 1 (got 0)",
        ),
        (
            {"mode": "optuna-pareto", "space": {"tau": [1.0]}},
            "[search.space] budget: mode optuna-pareto samples the budget",
        ),
        (
            {"mode": "optuna-pareto", "asha": {}, "space": {"budget": [10, 20]}},
            "[search] asha: early stopping needs one objective",
        ),
        (
            {"mode": "optuna-pareto", "space": {"budget": {"low": 10, "high": 10**9}}},
            "exceeds the model's 11776 ReLUs",
        ),
        (  # inf passed `> 0` and crashed Optuna: OverflowError: Range exceeds valid bounds
            {"mode": "optuna", "space": {"tau": {"low": 1.0, "high": float("inf")}}},
            "[search.space] tau: high: must be a finite number (got inf)",
        ),
        (
            {"mode": "optuna", "space": {"lr": {"low": float("nan"), "high": 0.1}}},
            "[search.space] lr: low: must be a finite number",
        ),
        (
            {"mode": "optuna", "space": {"gamma": [0.1, float("inf")]}},
            "[search.space] gamma: choices: must be a finite number (got inf)",
        ),
        (
            {"mode": "optuna-pareto", "space": {"budget": {"low": 10, "high": float("inf")}}},
            "[search.space] budget: high: must be a finite number (got inf)",
        ),
        (
            {"mode": "optuna", "sampler": "cmaes", "space": {"tau": [1.0]}},
            "[search] sampler: must be one of: tpe, nsga2, random (got 'cmaes')",
        ),
    ],
)
def test_optuna_settings_errors_name_the_key(search: dict, needle: str) -> None:
    with pytest.raises(SweepError) as info:
        parse_sweep({**BASE, "search": search})
    assert needle in str(info.value) and "\n" not in str(info.value)
