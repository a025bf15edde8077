"""Sweep files: every bad input is one clear line naming the key, before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.errors import SweepError
from orchestrator.spec.sweep import load_sweep, parse_sweep
from stages.catalog import relu_total

BASE = {"sweep": {"model": "resnet20", "dataset": "digits", "budgets": [1000]}}


def _doc(**sections: dict) -> dict:
    doc = {k: dict(v) for k, v in BASE.items()}
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    return doc


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"sweep": {"modle": "x"}}, "[sweep] modle: unknown key"),
        ({"stage3": {"tua": 2.0}}, "[stage3] tua: unknown key"),
        ({"stage9": {}}, "[stage9]: unknown section"),
        (
            {"sweep": {"model": "resnet99"}},
            "[sweep] model: must be one of: resnet18, resnet20, vgg16_bn, wrn22_8 (got 'resnet99')",
        ),
        ({"sweep": {"dataset": "svhn"}}, "[sweep] dataset: must be one of: digits, synthetic, "),
        (
            {"sweep": {"budgets": [10**9]}},
            "[sweep] budgets: budget 1000000000 exceeds the model's 11776 ReLUs",
        ),
        ({"sweep": {"budgets": [-1]}}, "[sweep] budgets: budget -1 is below 0 ReLUs"),
        (
            {"stage2": {"method": "magic"}},
            "[stage2] method: must be one of: taylor-ema, activation-ema, ",
        ),
        (
            {"stage2": {"method": "snl", "granularity": "channel"}},
            "[stage2] granularity: snl searches one alpha per position",
        ),
        ({"stage2": {"freeze": 1.0}}, "[stage2] freeze: must be in [0, 1) (got 1.0)"),
        ({"stage2": {"snl_alpha_lr": 0.0}}, "[stage2] snl_alpha_lr: must be > 0"),
        ({"stage2": {"snl_growth": 0.5}}, "[stage2] snl_growth: must be >= 1"),
        (
            {"stage1": {"pruning": "random"}},
            "[stage1] pruning: must be one of: oneshot, iterative (got 'random')",
        ),
        ({"stage1": {"prune_rounds": 0}}, "[stage1] prune_rounds: must be >= 1 (got 0)"),
        ({"sweep": {"budgets": [-0.5]}}, "[sweep] budgets: budget -0.5 is neither"),
        ({"sweep": {"budgets": []}}, "[sweep] budgets: empty list"),
        ({"stage3": {"tau": -1.0}}, "[stage3] tau: must be > 0 (got -1.0)"),
        ({"stage3": {"tau": [2.0, 0.0]}}, "[stage3] tau: must be > 0 (got 0.0)"),
        ({"stage3": {"tau": []}}, "[stage3] tau: empty list, so the grid is empty"),
        (
            {"stage2": {"allocation": "random"}},
            "[stage2] allocation: must be one of: sensitivity, ",
        ),
        ({"sweep": {"dataset": "cifar10"}}, "[sweep] data_root: cifar10 needs the folder"),
        (
            {"sweep": {"dataset": "cifar10", "data_root": "/no/such/folder"}},
            "[sweep] data_root: folder /no/such/folder does not exist",
        ),
        ({"resources": {"cpu": 1}}, "[resources] cpu: unknown key"),
        (
            {"search": {"mode": "random"}},
            "[search] mode: must be one of: grid, optuna, optuna-pareto (got 'random')",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_key(sections: dict, needle: str) -> None:
    with pytest.raises(SweepError) as info:
        parse_sweep(_doc(**sections))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_digits_without_scikit_learn_is_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if the demo extra were absent
    with pytest.raises(SweepError) as info:
        parse_sweep(_doc())
    line = str(info.value)
    assert "[sweep] dataset: digits needs scikit-learn: pip install 'senet-sweep[demo]'" in line
    assert "\n" not in line
    parse_sweep(_doc(sweep={"dataset": "synthetic"}))  # other datasets do not need it


def test_a_stage_resource_table_overrides_the_common_one_key_by_key() -> None:
    res = parse_sweep(
        _doc(
            resources={
                "cpus": 2,
                "gpus": 0.25,
                "stage1": {"gpus": 1},
                "stage3": {"cpus": 0.5, "gpus": 0.5},
            }
        )
    ).resources
    got = [(res.share(s).cpus, res.share(s).gpus) for s in (1, 2, 3)]
    assert got == [(2.0, 1.0), (2.0, 0.25), (0.5, 0.5)]
    plain = parse_sweep(_doc(resources={"cpus": 3})).resources
    assert {(plain.share(s).cpus, plain.share(s).gpus) for s in (1, 2, 3)} == {(3.0, 0.0)}


def test_fraction_budgets_resolve_against_the_computed_relu_count() -> None:
    sweep = parse_sweep(_doc(sweep={"budgets": [0.5, 1000, 1000.0]}))
    total = relu_total("resnet20", "digits")
    assert sweep.relu_total == total
    assert sweep.budgets == (round(total / 2), 1000)  # duplicates collapse


def test_lists_are_grid_axes() -> None:
    sweep = parse_sweep(
        _doc(
            stage3={"tau": [1.0, 2.0, 4.0], "beta": [0.0, 1000.0]},
            stage2={"granularity": ["pixel", "channel"]},
        )
    )
    assert len(sweep.stage3) == 6
    assert {c.tau for c in sweep.stage3} == {1.0, 2.0, 4.0}
    assert len(sweep.stage2) == 2


def test_augment_is_a_per_stage_switch_and_an_axis() -> None:
    sweep = parse_sweep(_doc(stage2={"augment": False}, stage3={"augment": [True, False]}))
    assert [c.augment for c in sweep.stage2] == [False]
    assert sorted(c.augment for c in sweep.stage3) == [False, True]
    assert parse_sweep(_doc()).stage3[0].augment  # the note's recipe: augmented


def test_optim_keys_reach_the_optimiser_config() -> None:
    sweep = parse_sweep(_doc(stage3={"epochs": 7, "lr": 0.5, "milestones": [0.5]}))
    assert sweep.stage3[0].optim.epochs == 7
    assert sweep.stage3[0].optim.lr == 0.5
    assert sweep.stage3[0].optim.milestones == (0.5,)


def test_shipped_sweep_files_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file in sweeps/ is valid (its data folder is created empty, as data_root must exist)."""
    import tomllib

    root = Path(__file__).resolve().parents[3] / "sweeps"
    monkeypatch.chdir(tmp_path)
    files = sorted(root.glob("*.toml"))
    assert len(files) >= 5
    for path in files:
        data_root = tomllib.loads(path.read_text())["sweep"].get("data_root")
        if data_root:
            (tmp_path / data_root).mkdir(parents=True, exist_ok=True)
        sweep = load_sweep(path, workdir=tmp_path / "work")
        assert sweep.stage3 and (sweep.budgets or sweep.search.mode == "optuna-pareto")


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="no such sweep file"):
        load_sweep(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\n")
    with pytest.raises(SweepError, match="not valid TOML"):
        load_sweep(bad)
