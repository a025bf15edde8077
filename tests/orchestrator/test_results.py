"""`senet results` on hand-made records: no Ray, no training, a second or two in all."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest

from orchestrator import plot as P
from orchestrator import results as R
from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.records import write_record
from orchestrator.reference import REFERENCES

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _rec(workdir: Path, sweep: str, stage: int, key: str, **kw: object) -> None:
    row = {
        "schema_version": 1,
        "key": key,
        "model": "resnet18",
        "dataset": "cifar100",
        "seed": 0,
        "allocation": "sensitivity",
        "status": "completed",
        "started_at": T0,
        "finished_at": T0 + dt.timedelta(minutes=5),
    } | kw
    write_record(workdir, sweep, stage, row)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """Two sweeps; budget 50k of sweep `a` has a trap: the best test_acc is not the best val."""
    w = tmp_path / "work"
    _rec(w, "a", 1, "a1", val_acc=0.80, test_acc=0.79)
    _rec(w, "a", 2, "a2", budget=50000, relu_count=50000, val_acc=0.60, test_acc=0.59)
    stage3 = [
        # key, budget, relu_count, val, test, tau, status
        ("a3x", 50000, 49000, 0.70, 0.99, 2.0, "completed"),  # best test, not best val
        ("a3y", 50000, 49500, 0.72, 0.70, 4.0, "completed"),
        ("a3z", 50000, 48000, 0.72, 0.71, 8.0, "reused"),  # same val, fewer ReLUs: wins
        ("a3w", 100000, 99000, 0.76, 0.75, 4.0, "completed"),
        ("a3f", 100000, None, None, None, 16.0, "failed"),
        ("a3s", 50000, 47000, 0.90, 0.90, 1.0, "stopped"),  # ASHA-stopped: never ranked
    ]
    for key, budget, count, val, test, tau, status in stage3:
        _rec(
            w,
            "a",
            3,
            key,
            budget=budget,
            relu_count=count,
            val_acc=val,
            test_acc=test,
            tau=tau,
            gamma=0.1,
            alpha=0.9,
            beta=1000.0,
            status=status,
            relu_per_layer=None if count is None else [count // 2, count - count // 2],
        )
    _rec(
        w,
        "b",
        3,
        "b3a",
        budget=50000,
        relu_count=50000,
        val_acc=0.65,
        test_acc=0.64,
        tau=4.0,
        allocation="uniform",
    )
    return w


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["results", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- pareto_front ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([], []),
        ([(5.0, 0.5)], [0]),
        ([(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)], [0, 1, 2]),  # a staircase: all on it
        ([(1.0, 0.7), (2.0, 0.6), (3.0, 0.5)], [0]),  # the first dominates the rest
        ([(1.0, 0.5), (1.0, 0.5), (2.0, 0.4)], [0, 1]),  # exact duplicates both kept
        ([(2.0, 0.5), (2.0, 0.6)], [1]),  # same x, lower y: dominated
        ([(1.0, 0.6), (2.0, 0.6)], [0]),  # same y, more x: dominated
        ([(3.0, 0.9), (1.0, 0.2), (2.0, 0.2), (2.0, 0.95)], [1, 3]),  # order-independent
        ([(1.0, 0.5), (2.0, float("nan")), (3.0, 0.8)], [0, 2]),  # NaN never kept
    ],
)
def test_pareto_front(points: list[tuple[float, float]], front: list[int]) -> None:
    assert R.pareto_front(points) == front


def test_pareto_front_matches_the_definition_on_random_points() -> None:
    import random

    rnd = random.Random(1)
    points = [(float(rnd.randint(1, 8)), float(rnd.randint(1, 8))) for _ in range(60)]

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)

    assert R.pareto_front(points) == [i for i, p in enumerate(points) if not dominated(p)]


# --- --where ---------------------------------------------------------------------------


def _table() -> pa.Table:
    rows = [
        {"sweep": "a", "budget": 20000, "tau": 2.0, "status": "completed", "key": "0123"},
        {"sweep": "a", "budget": 50000, "tau": 4.0, "status": "failed", "key": "k2"},
        {"sweep": "b", "budget": 90000, "tau": 8.0, "status": "completed", "key": "k3"},
        {"sweep": "b", "budget": None, "tau": None, "status": "completed", "key": "k4"},
    ]
    schema = pa.schema([(n, R._TYPES[n]) for n in rows[0]])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize(
    ("where", "keys"),
    [
        ("budget<=50000", ["0123", "k2"]),
        ("budget < 50000", ["0123"]),
        ("tau>2", ["k2", "k3"]),
        ("tau>=2.0", ["0123", "k2", "k3"]),
        ("status=completed", ["0123", "k3", "k4"]),
        ('status=="failed"', ["k2"]),
        ("sweep!='a'", ["k3", "k4"]),
        ("budget<=50000 and status=completed", ["0123"]),
        ("budget>1 AND tau<8 and sweep=a", ["0123", "k2"]),
        ("key=0123", ["0123"]),  # a string column compares strings: no 123 == 0123
        ("budget=50000.0", ["k2"]),
    ],
)
def test_where_filters(where: str, keys: list[str]) -> None:
    assert R.filter_table(_table(), where)["key"].to_pylist() == keys


def test_where_unknown_column_is_one_line_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(UserError) as e:
        R.parse_where("budget<5 and bugdet>3")
    msg = str(e.value)
    assert "'bugdet'" in msg and "valid columns:" in msg and "val_acc" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("where", "quoted"),
    [
        ("budget<<5", "'budget<<5'"),
        ("tau>2 and budget", "'budget'"),
        ("tau>2 or tau<1", "'or tau<1'"),
        ("tau 2", "'tau 2'"),
        ("tau>2 and", "ends with 'and'"),
        ("", "empty"),
        ("budget<=abc", "not a number"),
        ("relu_per_layer=3", "list column"),
        ("started_at>yesterday", "ISO"),
    ],
)
def test_where_malformed_clause_is_quoted(where: str, quoted: str) -> None:
    with pytest.raises(UserError, match="--where") as e:
        R.parse_where(where)
    assert quoted in str(e.value) and "\n" not in str(e.value)


def test_where_compares_timestamps() -> None:
    rows = [{"key": "old", "started_at": T0}, {"key": "new", "started_at": T0.replace(day=9)}]
    schema = pa.schema([("key", pa.string()), ("started_at", R._TYPES["started_at"])])
    table = pa.Table.from_pylist(rows, schema=schema)
    assert R.filter_table(table, "started_at>=2025-03-05")["key"].to_pylist() == ["new"]


# --- selection and output --------------------------------------------------------------


def test_best_per_budget_selects_by_val_acc_never_test_acc(work: Path) -> None:
    rows = R.finished(R.load(work, stage=3)).to_pylist()
    best = {(r["sweep"], r["budget"]): r["key"] for r in R.best_per_budget(rows)}
    # a3x has the best test_acc; a3y and a3z tie on val_acc and a3z has fewer ReLUs.
    assert best == {("a", 50000): "a3z", ("a", 100000): "a3w", ("b", 50000): "b3a"}


def test_best_per_budget_tie_on_everything_goes_to_the_lower_key() -> None:
    rows = [{"sweep": "s", "budget": 1, "relu_count": 5, "val_acc": 0.5, "key": k} for k in "qbz"]
    assert [r["key"] for r in R.best_per_budget(rows)] == ["b"]


def test_pareto_rows_keep_datasets_apart() -> None:
    rows = [
        {"dataset": "c10", "model": "m", "relu_count": 10, "val_acc": 0.9, "key": "big"},
        {"dataset": "c100", "model": "m", "relu_count": 20, "val_acc": 0.6, "key": "other"},
        {"dataset": "c10", "model": "m", "relu_count": 20, "val_acc": 0.8, "key": "beaten"},
    ]
    assert sorted(r["key"] for r in R.pareto_rows(rows)) == ["big", "other"]


def test_default_table_shows_every_stage(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(work))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == list(R.TABLE_COLUMNS)
    assert lines[-1] == "9 records"
    assert {line.split()[1] for line in lines[1:-2]} == {"1", "2", "3"}


def test_csv_parses_back_with_the_right_rows(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(work), "--best-per-budget", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(R.ALL_COLUMNS)  # csv holds every column by default
    assert [r["key"] for r in rows] == ["a3z", "a3w", "b3a"]
    assert float(rows[0]["val_acc"]) == 0.72 and rows[0]["status"] == "reused"
    assert json.loads(rows[0]["relu_per_layer"]) == [24000, 24000]
    assert dt.datetime.fromisoformat(rows[0]["started_at"]) == T0


def test_json_parses_back_with_lists_and_iso_times(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, str(work), "--sweep", "a", "--pareto", "--format", "json", "--where", "tau<=8"
    )
    assert code == 0
    rows = json.loads(out)
    # a3z (48k, .72) and a3w (99k, .76) make the front; a3x and a3y lose to a3z.
    assert [r["key"] for r in rows] == ["a3z", "a3w"]
    assert rows[0]["relu_per_layer"] == [24000, 24000]
    assert rows[0]["started_at"] == T0.isoformat() and rows[0]["stage"] == 3


def test_columns_override_and_unknown_column(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(work), "--stage", "2", "--columns", "key,relu_count")
    assert code == 0 and out.splitlines()[:2] == ["key  relu_count", "a2        50000"]
    code, _, err = _run(capsys, str(work), "--columns", "key,nope")
    assert code == 2 and "'nope'" in err and len(err.splitlines()) == 1


def test_where_errors_exit_2_with_one_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(work), "--where", "colour=red")
    assert code == 2 and out == ""
    assert err.startswith("senet results: error: unknown column 'colour'")
    assert len(err.splitlines()) == 1


def test_empty_results_say_so_and_exit_0(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(work), "--where", "budget>1000000")
    assert code == 0 and "no records match" in out and "budget>1000000" in out
    code, out, _ = _run(capsys, str(work), "--sweep", "nope")
    assert code == 0 and "sweeps present: a, b" in out
    code, out, err = _run(capsys, str(work), "--sweep", "nope", "--format", "json")
    assert code == 0 and json.loads(out) == [] and "no records match" in err
    code, out, _ = _run(capsys, str(work), "--sweep", "nope", "--format", "csv")
    assert code == 0 and next(csv.reader(io.StringIO(out))) == list(R.ALL_COLUMNS)


def test_missing_results_folder_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, str(tmp_path / "nowhere"))
    assert code == 2
    assert f"no records under {tmp_path / 'nowhere' / 'results'}; run `senet run SWEEP`" in err


# --- plot ------------------------------------------------------------------------------


def _assert_png_with_content(path: Path) -> None:
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400
    assert float(image[..., :3].std()) > 0.02  # not a blank canvas


def test_plot_writes_a_png(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "out" / "front.png"
    code, out, _ = _run(capsys, str(work), "--plot", str(png))
    assert code == 0 and out.strip() == f"wrote {png}"
    _assert_png_with_content(png)


def test_plot_with_reference(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "ref.png"
    code, _, _ = _run(
        capsys, str(work), "--sweep", "a", "--plot", str(png), "--reference", "cifar100-resnet18"
    )
    assert code == 0
    _assert_png_with_content(png)


def test_plot_series_split_by_allocation_within_one_sweep() -> None:
    rows = [
        {"sweep": "s", "allocation": "uniform"},
        {"sweep": "s", "allocation": "sensitivity"},
        {"sweep": "s", "allocation": "uniform"},
    ]
    assert {k: len(v) for k, v in P.series(rows).items()} == {"sensitivity": 1, "uniform": 2}
    rows.append({"sweep": "t", "allocation": "uniform"})
    assert list(P.series(rows)) == ["s", "t"]


def test_plot_with_nothing_to_plot_is_an_error(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "none.png"
    code, _, err = _run(capsys, str(work), "--plot", str(png), "--where", "budget>1000000")
    assert code == 2 and "nothing to plot" in err and not png.exists()
    # stage 1 has no ReLU count: nothing a log axis could show
    code, _, err = _run(capsys, str(work), "--plot", str(png), "--stage", "1")
    assert code == 2 and "nothing to plot" in err


def test_reference_errors(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, str(work), "--plot", str(tmp_path / "x.png"), "--reference", "x")
    assert code == 2 and "unknown --reference 'x'" in err
    assert all(name in err for name in REFERENCES)
    code, _, err = _run(capsys, str(work), "--reference", "cifar100-resnet18")
    assert code == 2 and "--plot" in err
    code, _, err = _run(capsys, str(work), "--plot", str(tmp_path / "plot.txt"))
    assert code == 2 and "name the file .png" in err and len(err.splitlines()) == 1


def test_reference_tables_hold_the_published_points() -> None:
    assert REFERENCES["cifar100-resnet18"]["SENet"] == [(24_600, 70.59), (49_600, 75.28)]
    assert len(REFERENCES["cifar100-resnet18"]["SNL"]) == 4
    assert set(REFERENCES) == {
        "cifar100-resnet18",
        "cifar10-resnet18",
        "tinyimagenet-resnet18",
        "cifar100-wrn22_8",
    }
