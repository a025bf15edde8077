"""When will a sweep end: a pure estimate from measured epoch times and the part of the DAG
that remains (no Ray, no files), shared by the periodic status line and `senet status`.

The estimate replays what the DAG searcher does (orchestrator.plan.dag): at most
`concurrency` executions at a time, an execution only once its parents are done, the deepest
stage first. Each execution lasts its epochs left times its stage's mean measured seconds
per epoch; a stage with no measured epoch yet borrows the mean over all measured epochs, and
with none measured at all there is no estimate. Stage 1 always runs first, so a naive
"work / concurrency" would be wrong whenever the DAG, not the slots, is the bottleneck.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# stage -> (epochs measured, their seconds in all): bounded however long the sweep runs.
Measured = Mapping[int, tuple[int, float]]


@dataclass(frozen=True)
class Work:
    """One unfinished stage execution."""

    key: str
    stage: int
    epochs: int  # the epochs it trains in all
    done_epochs: int = 0  # already trained (running, or interrupted with a checkpoint)
    parents: tuple[str, ...] = ()  # parents that are not done are among the other Work
    running: bool = False  # holds a slot now


@dataclass(frozen=True)
class Eta:
    """An estimate and its basis, for one line of text."""

    seconds: float
    measured_epochs: int
    executions_left: int
    concurrency: int

    def text(self) -> str:
        left = "execution" if self.executions_left == 1 else "executions"
        epochs = "epoch" if self.measured_epochs == 1 else "epochs"
        return (
            f"ETA {duration(self.seconds)} (from {self.measured_epochs} measured {epochs}; "
            f"{self.executions_left} {left} left, {self.concurrency} at a time)"
        )


def duration(seconds: float) -> str:
    """Seconds as a person reads them: `40 s`, `12 min`, `3 h 05 min`."""
    s = max(0, round(seconds))
    if s < 90:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def add_epoch(measured: dict[int, tuple[int, float]], stage: int, seconds: float) -> None:
    """Count one measured epoch of `stage` into `measured` (in place)."""
    n, total = measured.get(stage, (0, 0.0))
    measured[stage] = (n + 1, total + float(seconds))


def estimate(work: Iterable[Work], measured: Measured, concurrency: int) -> Eta | None:
    """The time until every execution in `work` is done; None before any epoch is measured.
    Nothing left is an ETA of 0 s."""
    items = {w.key: w for w in work}
    count = sum(n for n, _ in measured.values())
    slots = max(1, int(concurrency))
    if not items:
        return Eta(0.0, count, 0, slots)
    if count == 0:
        return None
    overall = sum(t for _, t in measured.values()) / count
    per_epoch = {s: (t / n if n else overall) for s, (n, t) in measured.items()}

    def length(w: Work) -> float:
        return max(0, w.epochs - w.done_epochs) * per_epoch.get(w.stage, overall)

    waiting = {k: {p for p in w.parents if p in items} for k, w in items.items()}
    children: dict[str, list[str]] = {}
    for k, ps in waiting.items():
        for p in ps:
            children.setdefault(p, []).append(k)
    ready: list[tuple[int, int, str]] = []  # (-stage, order, key): deepest stage first
    order = 0
    events: list[tuple[float, str]] = []  # (finish time, key)
    for k, w in items.items():
        if w.running:
            heapq.heappush(events, (length(w), k))
        elif not waiting[k]:
            heapq.heappush(ready, (-w.stage, order, k))
            order += 1
    now = 0.0
    while True:
        while ready and len(events) < slots:
            _, _, k = heapq.heappop(ready)
            heapq.heappush(events, (now + length(items[k]), k))
        if not events:
            break  # what is left waits on parents outside `work`: nothing more to simulate
        now, k = heapq.heappop(events)
        for child in children.get(k, ()):
            waiting[child].discard(k)
            if not waiting[child] and not items[child].running:
                heapq.heappush(ready, (-items[child].stage, order, child))
                order += 1
    return Eta(now, count, len(items), slots)
