"""`senet export` on a real sweep: a tiny digits sweep run by `senet run` on a local Ray (its
budgets and temperatures given as overrides), then the best model per budget and named keys
exported and loaded back with stages/ alone: each reproduces its recorded test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.analysis.export import export_best_per_budget, export_keys
from orchestrator.analysis.selection import best_per_budget
from orchestrator.cli.main import main
from orchestrator.errors import UserError
from orchestrator.records.read import read_records
from stages.artifacts import WEIGHTS
from stages.data import load_data
from stages.export import INFO, load_exported

DIGITS = """\
[sweep]
name = "exp"
model = "resnet20"
dataset = "digits"
budgets = [1500]
limit = 100
workdir = "{workdir}"

[stage1]
epochs = 1
batch_size = 50

[stage2]
epochs = 1
batch_size = 50

[stage3]
epochs = 1
batch_size = 50

[resources]
max_concurrent = 2
retries = 0
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, ray_cluster: None) -> Path:
    """The sweep run once: 2 budgets (by override) x 2 temperatures (by override)."""
    tmp = tmp_path_factory.mktemp("export")
    path = tmp / "exp.toml"
    path.write_text(DIGITS.format(workdir=tmp / "work"))
    argv = [
        "run",
        str(path),
        "sweep.budgets=[1500,3000]",
        "--device",
        "cpu",
        "stage3.tau=[2.0,4.0]",
    ]
    assert main(argv) == 0
    return tmp / "work"


def _reproduced(folder: Path) -> tuple[float, dict]:
    e = load_exported(folder)
    d = e.info["data"]
    test = load_data(d["dataset"], d["root"], d["val_fraction"], d["seed"], d["limit"]).test
    return (e.predict(test.x) == test.y).double().mean().item(), e.info


def test_the_overrides_ran_and_are_kept_under_the_run_id(work: Path) -> None:
    rows = read_records(work, sweep="exp", stage=3).to_pylist()
    assert {(r["budget"], r["tau"]) for r in rows} == {
        (b, t) for b in (1500, 3000) for t in (2.0, 4.0)
    }
    (kept,) = (work / "overrides").glob("*.json")
    entry = json.loads(kept.read_text())
    assert entry["overrides"] == ["sweep.budgets=[1500,3000]", "stage3.tau=[2.0,4.0]"]
    assert {r["run_id"] for r in rows} == {entry["run_id"]} == {kept.stem}


def test_best_per_budget_exports_reproduce_their_test_accuracy(work: Path, tmp_path: Path) -> None:
    rows = read_records(work, sweep="exp", stage=3).to_pylist()
    best = {r["budget"]: r for r in best_per_budget(rows)}
    exports = export_best_per_budget(work, tmp_path)
    assert sorted(e.info["budget"] for e in exports) == [1500, 3000]
    for e in exports:
        chosen = best[e.info["budget"]]
        assert e.info["key"] == chosen["key"] and e.info["sweep"] == "exp"
        assert e.folder == tmp_path / f"budget{chosen['budget']}-{chosen['key']}"
        assert sorted(p.name for p in e.folder.iterdir()) == [INFO, WEIGHTS]
        acc, info = _reproduced(e.folder)
        assert acc == chosen["test_acc"] == info["test_acc"]
        assert info["val_acc"] == chosen["val_acc"] and info["relu_count"] == chosen["relu_count"]
        assert list(info["relu_layers"].values()) == chosen["relu_per_layer"]


def test_the_cli_exports_by_key_any_stage(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (r1,) = read_records(work, sweep="exp", stage=1).to_pylist()
    r2 = read_records(work, sweep="exp", stage=2).to_pylist()[0]
    assert main(["export", str(work), str(tmp_path), "--key", r1["key"], r2["key"]]) == 0
    assert "exported 2 models" in capsys.readouterr().out
    acc1, info1 = _reproduced(tmp_path / f"stage1-{r1['key']}")
    acc2, info2 = _reproduced(tmp_path / f"budget{r2['budget']}-{r2['key']}")
    assert (acc1, acc2) == (r1["test_acc"], r2["test_acc"])
    assert info1["relu_count"] == info1["relu_total"] and info2["relu_count"] == r2["budget"]


def test_an_unknown_key_or_sweep_is_one_line(work: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--key 00000000: no stage execution"):
        export_keys(work, tmp_path, ["00000000"])
    with pytest.raises(UserError, match="no finished stage-3 records of sweep nope"):
        export_best_per_budget(work, tmp_path, "nope")
