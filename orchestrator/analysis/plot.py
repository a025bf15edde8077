"""The accuracy-vs-ReLU plot of `senet results --plot`: one series per sweep (or allocation),
each with its Pareto front, optionally over the published reference points."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.analysis.results import Row
from orchestrator.analysis.selection import pareto_front
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The y axis: a record's column and its label. Published points are always test accuracies.
METRICS = {"val_acc": "validation accuracy (%)", "test_acc": "test accuracy (%)"}
NEEDS_MATPLOTLIB = "--plot needs matplotlib: pip install 'senet-sweep[plot]'"
MANY_TICKS = 8  # more budget ticks than this get slanted labels, so that they do not overlap

# --- plot ------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Refuse in one line, before any record is read, where the `plot` extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(NEEDS_MATPLOTLIB) from None


def series(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """One series per sweep; per allocation strategy when a single sweep compares several,
    since that is then the axis the user swept."""
    sweeps = {r["sweep"] for r in rows}
    allocations = {r.get("allocation") for r in rows}
    by = "allocation" if len(sweeps) == 1 and len(allocations) > 1 else "sweep"
    out: dict[str, list[Row]] = {}
    for r in sorted(rows, key=lambda r: str(r.get(by))):
        out.setdefault(str(r.get(by)), []).append(r)
    return out


def reference_mismatch(rows: Sequence[Row], reference_name: str | None) -> str | None:
    """Why the published points of `reference_name` (`DATASET-MODEL`) do not compare with
    `rows`, or None: a CIFAR-100 line over a digits sweep reads like a result otherwise."""
    if not reference_name:
        return None
    dataset, _, model = reference_name.rpartition("-")  # datasets may hold '-', models do not
    pairs = sorted({(str(r.get("dataset")), str(r.get("model"))) for r in rows})
    if pairs == [(dataset, model)]:
        return None
    plotted = ", ".join(f"{m} on {d}" for d, m in pairs)
    return (
        f"--reference {reference_name} is {model} on {dataset}, but the plotted records are "
        f"{plotted}: the published points are not comparable"
    )


def _log_subs(lo: float, hi: float) -> tuple[float, ...]:
    """Tick mantissas for the x range when no record names its budget: sweeps often span one
    decade, where 1-2-5 ticks alone leave most points unlabelled; wide ranges get fewer."""
    decades = math.log10(hi / lo) if lo > 0 else math.inf
    if decades <= 1.5:
        return (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    return (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)


def _relu_label(x: float, _pos: object = None) -> str:
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}K"
    return f"{x:g}"


def plot(
    rows: Sequence[Row],
    path: Path,
    reference: dict[str, list[tuple[int, float]]] | None = None,
    reference_name: str | None = None,
    metric: str = "val_acc",
) -> Path:
    """Write `figure(...)` to `path` (its suffix picks the format) through the Agg canvas:
    no pyplot global state, no display needed."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    kinds = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in kinds:
        raise UserError(f"--plot {path}: name the file .png (or one of: {', '.join(kinds)})")
    fig = figure(rows, reference, reference_name, metric)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def figure(
    rows: Sequence[Row],
    reference: dict[str, list[tuple[int, float]]] | None = None,
    reference_name: str | None = None,
    metric: str = "val_acc",
) -> Figure:
    """`metric` (%) against ReLU count (log x, ticks at the plotted budgets), one colour per
    series with its Pareto front as a step line, and optional published points; the legend
    sits right of the axes, so it hides no point. The front is always chosen by val_acc:
    with `test_acc` it shows how the models validation picks do on the test split, never a
    selection on test."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        LogLocator,
        NullFormatter,
        NullLocator,
    )

    if metric not in METRICS:
        raise UserError(f"--metric {metric}: choose one of: {', '.join(METRICS)}")
    rows = [
        r
        for r in rows
        if r.get("relu_count") and r.get(metric) is not None and r.get("val_acc") is not None
    ]
    if not rows:
        raise UserError(f"nothing to plot: no finished records with a ReLU count and {metric}")
    fig = Figure(figsize=(10, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, group) in enumerate(series(rows).items()):
        color = f"C{i % 10}"
        xs = [float(r["relu_count"]) for r in group]
        ys = [100.0 * float(r[metric]) for r in group]
        vals = [float(r["val_acc"]) for r in group]
        ax.scatter(xs, ys, s=22, color=color, alpha=0.45, label=f"{label} ({len(group)})")
        front = sorted(pareto_front(list(zip(xs, vals))), key=lambda j: xs[j])
        fx, fy = [xs[j] for j in front], [ys[j] for j in front]
        ax.step(fx, fy, where="post", color=color, linewidth=1.8)
        ax.scatter(fx, fy, s=40, color=color, edgecolors="black", linewidths=0.6, zorder=3)
    for method, points, marker in _reference_styles(reference or {}):
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            linestyle=":",
            color="0.25",
            marker=marker,
            markersize=10,
            markerfacecolor="white" if marker != "*" else "gold",
            markeredgecolor="black",
            label=f"{method} published (test acc)",
            zorder=4,
        )
    ax.set_xscale("log")
    budgets = sorted({int(r["budget"]) for r in rows if r.get("budget")})
    if budgets:
        ax.xaxis.set_major_locator(FixedLocator(budgets))
        ax.xaxis.set_minor_locator(NullLocator())
        if len(budgets) > MANY_TICKS:
            ax.tick_params(axis="x", labelrotation=45)
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=_log_subs(*ax.get_xlim()), numticks=40))
    ax.xaxis.set_major_formatter(FuncFormatter(_relu_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.35)
    ax.set_xlabel("ReLU count per image (log scale; ticks at the budgets)")
    ylabel = METRICS[metric]
    if reference and metric != "test_acc":
        ylabel += "\npublished points: test accuracy (%)"
    ax.set_ylabel(ylabel)
    fig.suptitle(_title(rows, reference_name))
    warning = reference_mismatch(rows, reference_name) if reference else None
    if warning:
        lines = textwrap.wrap("warning: " + warning, 90)
        ax.set_title("\n".join(lines), color="firebrick", fontsize="small")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", linewidth=1.8, drawstyle="steps-post"))
    front = "Pareto front by val_acc" + (", at test acc" if metric == "test_acc" else "")
    labels.append(f"{front} (per series)")
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    return fig


def _reference_styles(
    reference: dict[str, list[tuple[int, float]]],
) -> list[tuple[str, list[tuple[int, float]], str]]:
    markers = {"SENet": "*", "SNL": "D"}
    spare = iter("sP^vX")
    return [(m, pts, markers.get(m) or next(spare)) for m, pts in reference.items()]


def _title(rows: Sequence[Row], reference_name: str | None) -> str:
    stages = sorted({r.get("stage") for r in rows if r.get("stage") is not None})
    where = sorted({f"{r.get('dataset')} {r.get('model')}" for r in rows})
    title = "Accuracy vs ReLU count"
    if len(stages) == 1:
        title += f", stage {stages[0]}"
    if len(where) == 1:
        title += f": {where[0]}"
    if reference_name:
        title += f"\nreference: {reference_name}"
    return title
