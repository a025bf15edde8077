"""The accuracy-vs-ReLU plot of `senet results --plot`: one series per sweep (or allocation),
each with its Pareto front, optionally over the published reference points."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from orchestrator.analysis.results import Row
from orchestrator.analysis.selection import pareto_front
from orchestrator.errors import UserError

# --- plot ------------------------------------------------------------------------------


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


def _log_subs(lo: float, hi: float) -> tuple[float, ...]:
    """Tick mantissas for the x range: sweeps often span one decade of budgets, where
    1-2-5 ticks alone leave most points unlabelled; wide ranges get fewer."""
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
) -> Path:
    """Validation accuracy (%) against ReLU count (log x), one colour per series with its
    Pareto front as a step line (the best accuracy reachable with at most that many ReLUs),
    and optional published points. Uses the Agg canvas directly: no pyplot global state,
    no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    path = Path(path)
    kinds = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in kinds:
        raise UserError(f"--plot {path}: name the file .png (or one of: {', '.join(kinds)})")
    rows = [r for r in rows if r.get("relu_count") and r.get("val_acc") is not None]
    if not rows:
        raise UserError("nothing to plot: no finished records with a ReLU count and val_acc")
    fig = Figure(figsize=(8, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, group) in enumerate(series(rows).items()):
        color = f"C{i % 10}"
        xs = [float(r["relu_count"]) for r in group]
        ys = [100.0 * float(r["val_acc"]) for r in group]
        ax.scatter(xs, ys, s=22, color=color, alpha=0.45, label=f"{label} ({len(group)})")
        front = sorted(pareto_front(list(zip(xs, ys))), key=lambda j: xs[j])
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
    ax.xaxis.set_major_locator(LogLocator(subs=_log_subs(*ax.get_xlim()), numticks=40))
    ax.xaxis.set_major_formatter(FuncFormatter(_relu_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.set_xlabel("ReLU count per image (log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(_title(rows, reference_name))
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", linewidth=1.8, drawstyle="steps-post"))
    labels.append("Pareto front (per series)")
    ax.legend(handles, labels, loc="lower right", fontsize="small", framealpha=0.9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


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
