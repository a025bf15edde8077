"""Command-line overrides: parsed as TOML values, set in the sweep document before the schema
checks it (so they obey exactly the file's rules), refused in one line naming the override,
and kept in the workdir under the run's id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import SweepError
from orchestrator.plan.plan import build_plan
from orchestrator.spec.overrides import (
    OverrideError,
    apply_overrides,
    parse_override,
    parse_overrides,
    record_overrides,
)
from orchestrator.spec.sweep import load_sweep

FILE = """\
[sweep]
model = "resnet20"
dataset = "digits"
budgets = [500]
workdir = "{workdir}"

[stage3]
tau = [2.0, 4.0]
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(FILE.format(workdir=tmp_path / "work"))
    return path


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("stage3.tau=[2.0,4.0]", ("stage3", "tau"), [2.0, 4.0]),
        ("sweep.budgets=[0.05, 0.1]", ("sweep", "budgets"), [0.05, 0.1]),
        ("stage1.epochs=2", ("stage1", "epochs"), 2),
        ("sweep.dataset=fashion-mnist", ("sweep", "dataset"), "fashion-mnist"),  # bare word
        ('sweep.name="a b"', ("sweep", "name"), "a b"),
        ("sweep.include_stem=false", ("sweep", "include_stem"), False),
        (
            "search.space.tau={low=1.0, high=8.0}",
            ("search", "space", "tau"),
            {"low": 1.0, "high": 8.0},
        ),
    ],
)
def test_an_override_is_a_dotted_key_and_a_toml_value(
    text: str, path: tuple, value: object
) -> None:
    o = parse_override(text)
    assert (o.path, o.value, o.text) == (path, value, text)
    assert type(o.value) is type(value)  # 2 stays an int, 2.0 a float: the schema tells them apart


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stage3.tau", "expected KEY=VALUE"),
        ("stage3.tau=", "no value"),
        ("stage3..tau=1", "must be dotted names"),
        ("stage3.tau=[2.0,", "not a TOML value"),
        ("stage3.tau=1\nx=2", "control character"),
    ],
)
def test_a_malformed_override_is_one_line_naming_it(text: str, problem: str) -> None:
    with pytest.raises(OverrideError) as e:
        parse_override(text)
    assert problem in str(e.value) and "\n" not in str(e.value)


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(OverrideError, match="stage3.tau is also set by stage3.tau=1"):
        parse_overrides(["stage3.tau=1", "stage1.epochs=2", "stage3.tau=2"])


def test_apply_replaces_values_creates_tables_and_leaves_the_document_alone() -> None:
    doc = {"sweep": {"budgets": [1]}, "stage3": {"tau": [2.0, 4.0]}}
    out = apply_overrides(doc, parse_overrides(["stage3.tau=8.0", "stage1.epochs=2"]))
    assert out == {"sweep": {"budgets": [1]}, "stage3": {"tau": 8.0}, "stage1": {"epochs": 2}}
    assert doc["stage3"]["tau"] == [2.0, 4.0] and "stage1" not in doc
    with pytest.raises(OverrideError, match="stage3.tau is a value"):
        apply_overrides(doc, parse_overrides(["stage3.tau.low=1"]))


def test_overrides_reach_the_sweep_as_an_edited_file_would(sweep_file: Path) -> None:
    given = ["stage3.tau=[1.0,3.0]", "stage1.epochs=2", "sweep.budgets=[0.05,0.1]"]
    sweep = load_sweep(sweep_file, overrides=given)
    edited = sweep_file.with_name("edited.toml")
    text = sweep_file.read_text().replace("tau = [2.0, 4.0]", "tau = [1.0, 3.0]")
    text = text.replace("budgets = [500]", "budgets = [0.05, 0.1]") + "[stage1]\nepochs = 2\n"
    edited.write_text(text)
    plain = load_sweep(edited)
    assert sweep.overrides == tuple(given) and plain.overrides == ()
    assert [c.tau for c in sweep.stage3] == [1.0, 3.0] and sweep.stage1[0].optim.epochs == 2
    assert sweep.budgets == plain.budgets == (589, 1178)  # fractions of 11,776 ReLUs
    assert list(build_plan(sweep).nodes) == list(build_plan(plain).nodes)  # same work, same keys
    assert "tau = [2.0, 4.0]" in sweep_file.read_text()  # the file is not touched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stage3.tau=-1", "override stage3.tau=-1: [stage3] tau: must be > 0 (got -1)"),
        ("stage1.epochs=2.5", "override stage1.epochs=2.5: [stage1] epochs: must be an integer"),
        ("stage3.foo=1", "override stage3.foo=1: [stage3] foo: unknown key; known keys: tau,"),
        ("foo.bar=1", "override foo.bar=1: [foo]: unknown section"),
        ("sweep.budgets=[1.0]", "override sweep.budgets=[1.0]: [sweep] budgets: budget 1.0 is"),
        ("search.asha.grace_period=0", "override search.asha.grace_period=0: [search] asha:"),
        ("stage1.epochs=[1,2]", "override stage1.epochs=[1,2]: [stage1] epochs: lists are not"),
    ],
)
def test_a_bad_override_is_refused_by_the_schema_naming_the_override(
    sweep_file: Path, override: str, message: str
) -> None:
    with pytest.raises(SweepError) as e:
        load_sweep(sweep_file, overrides=["stage1.lr=0.1", override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_problem_of_the_file_names_the_file_and_the_overrides_given(sweep_file: Path) -> None:
    with pytest.raises(SweepError) as e:
        load_sweep(sweep_file, overrides=["search.mode=optuna"])
    assert str(e.value).startswith(f"{sweep_file} with search.mode=optuna: [stage3]:")


def test_a_missing_key_can_come_from_an_override(tmp_path: Path) -> None:
    path = tmp_path / "partial.toml"
    path.write_text('[sweep]\nmodel = "resnet20"\ndataset = "digits"\n')
    with pytest.raises(SweepError, match=r"\[sweep\] budgets: missing"):
        load_sweep(path)
    assert load_sweep(path, overrides=["sweep.budgets=[100]"]).budgets == (100,)


def test_a_run_with_overrides_keeps_them_under_its_id(tmp_path: Path) -> None:
    assert record_overrides(tmp_path, "r1", None, []) is None
    assert not (tmp_path / "overrides").exists()
    path = record_overrides(tmp_path, "r2", tmp_path / "s.toml", ["stage3.tau=2.0"])
    assert path == tmp_path / "overrides" / "r2.json"
    entry = json.loads(path.read_text())
    assert entry["run_id"] == "r2" and entry["overrides"] == ["stage3.tau=2.0"]
    assert entry["sweep_file"] == str(tmp_path / "s.toml")
