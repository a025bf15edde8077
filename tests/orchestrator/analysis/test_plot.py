"""The accuracy-vs-ReLU plot: a real PNG with content, series per sweep or allocation, and
one-line errors when there is nothing to plot."""

from __future__ import annotations

from pathlib import Path

import pytest

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
