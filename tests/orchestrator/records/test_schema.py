"""What records say, through a real `senet run` on a local Ray and its Parquet read back: a
stage result that breaks an invariant is a `failed` record with its reason (never
`completed`, never selected); stage-3 records carry their stage-2 search settings and the
teacher's key; errors are plain text; records written before `stage1_key` still read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import write_sweep

from orchestrator.cli.main import main
from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.records.schema import SCHEMA, SCHEMA_VERSION, plain_text, row_without_artifact
from orchestrator.records.write import record_path
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import META, artifact_dir
from stages.pipeline import execute

SEARCH = {"allocation": "uniform", "granularity": "channel", "method": "scores", "init": "teacher"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, ray_cluster: None) -> tuple[Path, int, str]:
    """`senet run` of budgets 3000 and 6000 (one non-default stage-2 setting per field) on a
    store whose stage-1 artifact says its stem holds 100x its ReLUs (a damaged store, or one
    written by other code). Uniform allocation then gives the stem more than it has at 6000,
    so that search cannot meet its r_l; at 3000 it can. One retry is allowed: it must not
    search again."""
    tmp = tmp_path_factory.mktemp("records")
    path = write_sweep(tmp / "s.toml", tmp / "work", name="rec", taus=[4.0], retries=1)
    settings = "".join(f'{k} = "{v}"\n' for k, v in SEARCH.items())
    path.write_text(path.read_text().replace("[stage2]\n", "[stage2]\n" + settings))
    plan = build_plan(load_sweep(path))
    (n1,) = plan.stage(1)
    execute(1, n1.config, plan.store, n1.key, device="cpu")
    meta_path = artifact_dir(plan.store, 1, n1.key) / META
    meta1 = json.loads(meta_path.read_text())
    meta1["relu_total"] += 99 * meta1["layers"][0]["count"]
    meta1["layers"][0]["count"] *= 100
    meta_path.write_text(json.dumps(meta1))
    code = main(["run", str(path)])
    return tmp / "work", code, n1.key


def _rows(work: Path, stage: int) -> dict[int, dict]:
    return {r["budget"]: r for r in read_records(work, sweep="rec", stage=stage).to_pylist()}


def test_a_result_breaking_its_budget_is_a_failed_record_with_the_reason(
    run: tuple[Path, int, str],
) -> None:
    work, code, _ = run
    assert code == 1  # the sweep reports its failure
    bad = _rows(work, 2)[6000]
    assert bad["status"] == "failed" and bad["relu_count"] is None and bad["val_acc"] is None
    assert "InvariantError" in bad["error"] and "off their share" in bad["error"]
    assert "not committed" in bad["error"]
    assert "(not retried)" in bad["error"]  # the retry did not recompute what must repeat
    assert 6000 not in _rows(work, 3)  # its fine-tune was skipped, not run on a bad mask
    plan = build_plan(load_sweep(work.parent / "s.toml"))
    node = next(n for n in plan.stage(2) if n.labels["budget"] == 6000)
    assert not (artifact_dir(plan.store, 2, node.key) / META).exists()  # never done


@pytest.mark.parametrize("stage", ["2", "3"])
def test_best_per_budget_never_picks_the_failed_result(
    run: tuple[Path, int, str], capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    work, _, _ = run
    capsys.readouterr()
    argv = ["results", str(work), "--best-per-budget", "--stage", stage, "--format", "json"]
    assert main(argv) == 0
    picked = json.loads(capsys.readouterr().out)
    assert [(r["budget"], r["status"]) for r in picked] == [(3000, "completed")]


def test_stage3_records_carry_the_search_settings_and_the_teacher(
    run: tuple[Path, int, str],
) -> None:
    work, _, k1 = run
    s2, s3 = _rows(work, 2)[3000], _rows(work, 3)[3000]
    assert s3["status"] == "completed" and s3["parent_key"] == s2["key"]
    for column, value in SEARCH.items():
        assert s2[column] == value and s3[column] == value, column
    assert s2["stage1_key"] == s3["stage1_key"] == k1
    assert _rows(work, 2)[6000]["stage1_key"] == k1  # the failed record too
    assert {r["stage1_key"] for r in read_records(work, sweep="rec", stage=1).to_pylist()} == {k1}
    assert s3["schema_version"] == SCHEMA_VERSION
    assert s3["relu_count"] <= 3000 and sum(s3["relu_per_layer"]) == s3["relu_count"]


def test_plain_text_strips_terminal_codes_and_keeps_lines() -> None:
    coloured = (
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=7)\r\n"
        "\x1b]8;;file:///x.py\x07x.py\x1b]8;;\x07 line 3\n"
        "\x1b[1;31mInvariantError\x1b[0m: relu_count 9 > budget 4\x1b(B\x08\x00\tend"
    )
    assert plain_text(coloured) == (
        "ray::ImplicitFunc.train() (pid=7)\nx.py line 3\nInvariantError: relu_count 9 > budget 4\tend"
    )
    assert plain_text(None) is None
    assert plain_text("no codes\nat all") == "no codes\nat all"


def test_a_failed_row_holds_plain_text() -> None:
    node = {"stage": 2, "key": "k2", "config": {}, "stage1_key": "k1", "labels": {}}
    row = row_without_artifact(node, "m", "d", "failed", {}, "\x1b[31mBoom\x1b[0m: bad")
    assert row["error"] == "Boom: bad" and row["stage1_key"] == "k1"


def test_records_written_before_stage1_key_still_read(tmp_path: Path) -> None:
    """A version-2 file (no stage1_key column) beside a current one: both read, the old one
    with the new column empty."""
    old_schema = pa.schema([f for f in SCHEMA if f.name != "stage1_key"])
    old = {name: None for name in old_schema.names} | {"schema_version": 2, "key": "old"}
    path = record_path(tmp_path, "s", 3, "old")
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([old | {"val_acc": 0.5}], schema=old_schema), path)
    new = row_without_artifact(
        {"stage": 3, "key": "new", "config": {}, "stage1_key": "k1", "labels": {}},
        "m",
        "d",
        "failed",
        {},
    )
    pq.write_table(pa.Table.from_pylist([new], schema=SCHEMA), record_path(tmp_path, "s", 3, "new"))
    rows = {r["key"]: r for r in read_records(tmp_path).to_pylist()}
    assert (rows["old"]["schema_version"], rows["old"]["stage1_key"]) == (2, None)
    assert rows["old"]["val_acc"] == 0.5
    assert (rows["new"]["schema_version"], rows["new"]["stage1_key"]) == (SCHEMA_VERSION, "k1")
