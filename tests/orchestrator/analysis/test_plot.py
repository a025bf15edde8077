"""The accuracy-vs-ReLU plot: a real PNG with content, series per sweep or allocation, and
one-line errors when there is nothing to plot. The figure's own objects (axis labels, ticks,
legend and axes boxes, the warning title) are read back from real records' plots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from support import write_test_record

from orchestrator.analysis import plot as P
from orchestrator.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["results", *argv])
    out, err = capsys.readouterr()
    return code, out, err


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


def _rows(work: Path, sweep: str | None = None) -> list[dict[str, Any]]:
    """The rows `senet results --plot` hands the plot: finished stage-3 records."""
    from orchestrator.analysis.results import finished, load

    return finished(load(work, sweep, 3)).to_pylist()


def _digits_work(tmp_path: Path) -> Path:
    w = tmp_path / "digits"
    for key, budget, val, test in (("d1", 1000, 0.81, 0.80), ("d2", 2000, 0.90, 0.88)):
        write_test_record(
            w,
            "dig",
            3,
            key,
            dataset="digits",
            model="resnet20",
            budget=budget,
            relu_count=budget - 10,
            val_acc=val,
            test_acc=test,
        )
    return w


def test_metric_picks_the_y_column_and_the_front_stays_chosen_by_val(work: Path) -> None:
    rows = _rows(work, "a")
    fig = P.figure(rows, metric="test_acc")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test accuracy (%)"
    everything, front = ax.collections[0], ax.collections[1]
    assert sorted(everything.get_offsets()[:, 1]) == pytest.approx([70.0, 71.0, 75.0, 99.0])
    # a3x has the best test_acc at 50k but not the best val: validation picks a3z (test 71)
    assert list(front.get_offsets()[:, 1]) == pytest.approx([71.0, 75.0])
    fig = P.figure(rows)  # val_acc by default
    assert fig.axes[0].get_ylabel() == "validation accuracy (%)"
    assert sorted(fig.axes[0].collections[0].get_offsets()[:, 1]) == pytest.approx(
        [70.0, 72.0, 72.0, 76.0]
    )


def test_published_points_are_labelled_test_accuracies(work: Path) -> None:
    from orchestrator.analysis.reference import REFERENCES

    name = "cifar100-resnet18"
    fig = P.figure(_rows(work, "a"), REFERENCES[name], name)
    ax = fig.axes[0]
    assert ax.get_ylabel().splitlines() == [
        "validation accuracy (%)",
        "published points: test accuracy (%)",
    ]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "SENet published (test acc)" in labels and "SNL published (test acc)" in labels
    fig = P.figure(_rows(work, "a"), REFERENCES[name], name, metric="test_acc")
    assert fig.axes[0].get_ylabel() == "test accuracy (%)"  # no note: same quantity


def test_x_ticks_are_the_plotted_budgets(work: Path, tmp_path: Path) -> None:
    fig = P.figure(_rows(work))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert list(ax.xaxis.get_majorticklocs()) == [50000, 100000]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50K", "100K"]
    assert ax.get_xscale() == "log" and "ReLU count" in ax.get_xlabel()
    fig = P.figure(_rows(_digits_work(tmp_path)))
    assert list(fig.axes[0].xaxis.get_majorticklocs()) == [1000, 2000]


def test_legend_sits_outside_the_data(work: Path) -> None:
    from orchestrator.analysis.reference import REFERENCES

    fig = P.figure(_rows(work), REFERENCES["cifar100-resnet18"], "cifar100-resnet18")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = fig.legends[0].get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert legend.x0 >= axes.x1, (legend, axes)
    points = [c.get_offsets() for c in ax.collections]
    for xy in points:  # every point lies inside the axes, so none can be under the legend
        for x, y in ax.transData.transform(xy):
            assert axes.x0 <= x <= axes.x1 and axes.y0 <= y <= axes.y1
    assert fig.get_window_extent(renderer).x1 >= legend.x1  # and the legend is on the canvas


def test_a_reference_of_another_dataset_or_model_is_warned_of(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.analysis.reference import REFERENCES

    name = "cifar100-resnet18"
    digits = _digits_work(tmp_path)
    fig = P.figure(_rows(digits), REFERENCES[name], name)
    title = fig.axes[0].get_title().replace("\n", " ")
    assert title.startswith("warning: --reference cifar100-resnet18 is resnet18 on cifar100")
    assert "resnet20 on digits" in title
    assert (
        fig.axes[0].get_title()
        == P.figure(_rows(digits), REFERENCES[name], name).axes[0].get_title()
    )
    assert P.figure(_rows(work, "a"), REFERENCES[name], name).axes[0].get_title() == ""
    wrn = "cifar100-wrn22_8"  # same dataset, another model: warned of too
    assert (
        "wrn22_8 on cifar100"
        in P.figure(_rows(work, "a"), REFERENCES[wrn], wrn).axes[0].get_title()
    )

    png = tmp_path / "d.png"
    code, out, err = _run(capsys, str(digits), "--plot", str(png), "--reference", name)
    assert code == 0 and png.exists()
    assert err.count("\n") == 1 and err.startswith("senet results: warning: --reference " + name)
    code, _, err = _run(capsys, str(work), "--sweep", "a", "--plot", str(png), "--reference", name)
    assert code == 0 and err == ""


def test_metric_on_the_command_line(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "test.png"
    code, out, _ = _run(capsys, str(work), "--plot", str(png), "--metric", "test_acc")
    assert code == 0 and out.strip() == f"wrote {png}"
    _assert_png_with_content(png)
    code, _, err = _run(capsys, str(work), "--metric", "test_acc")
    assert code == 2 and "--metric" in err and "--plot" in err


def test_plot_without_matplotlib_names_the_extra(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    png = tmp_path / "none.png"
    code, _, err = _run(capsys, str(work), "--plot", str(png))
    assert code == 2 and not png.exists()
    assert err == "senet results: error: --plot needs matplotlib: pip install 'senet-sweep[plot]'\n"
    code, out, _ = _run(capsys, str(work), "--pareto")  # only --plot needs it
    assert code == 0 and "a3z" in out
