"""What a sweep will execute, counted one way in every mode (grid, optuna, optuna-pareto):
`senet validate`, `senet run`'s opening line, its status line and ETA, and `senet status` all
count from here, so they agree.

A grid sweep's plan holds every execution. In the Optuna modes stage 3 is sampled as the run
goes: the trials not sampled yet count as pending stage-3 executions (the studies' quota less
the trials finished), and in `optuna-pareto` each may also need the stage 2 of a budget not
drawn before. A budget drawn again reuses its stage 2, so that stage-2 count is an upper
bound (`at most`), said wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.plan.plan import Plan, build_plan
from orchestrator.run.eta import Work
from orchestrator.search.source import sampled_stage2, stage2_bound
from orchestrator.spec.sweep import Sweep
from stages.store import Store

BOUND_REASON = "a budget drawn again reuses its stage 2"
BOUND_NOTE = f"at most: {BOUND_REASON}"


@dataclass(frozen=True)
class StageCount:
    """One stage's executions in all and done; `upper_bound`: `total` counts a stage 2 for
    every unsampled trial that may draw a new budget."""

    total: int
    done: int
    upper_bound: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done} | (
            {"upper_bound": True} if self.upper_bound else {}
        )

    def text(self) -> str:
        """`8 runs, 2 done` (`at most 8 runs (...)` for a bound)."""
        if self.upper_bound:
            return f"at most {self.total} runs ({BOUND_REASON}), {self.done} done"
        return f"{self.total} runs, {self.done} done"


@dataclass(frozen=True)
class Unsampled:
    """Executions of one stage that are not (yet) nodes of the run: `done` by earlier runs
    (finished Optuna trials) and `pending` (trials still to sample, or the stage-2 runs they
    may need), each `epochs` long. What the plan snapshot carries for `senet status`."""

    stage: int
    done: int
    pending: int
    epochs: int
    upper_bound: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "done": self.done,
            "pending": self.pending,
            "epochs": self.epochs,
            "upper_bound": self.upper_bound,
        }

    @classmethod
    def from_json(cls, data: Any) -> Unsampled | None:
        """None for anything not of the shape to_json writes (a damaged snapshot)."""
        if not isinstance(data, dict) or data.get("stage") not in (2, 3):
            return None
        fields = [data.get(k) for k in ("done", "pending", "epochs")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fields):
            return None
        return cls(int(data["stage"]), *fields, upper_bound=data.get("upper_bound") is True)

    def note(self) -> str:
        """` (6 not sampled yet)`, with the bound's note where it is one."""
        if not self.pending:
            return ""
        return f" ({self.pending} not sampled yet" + (
            f"; {BOUND_NOTE})" if self.upper_bound else ")"
        )

    def work(self) -> list[Work]:
        """Its pending executions for the ETA: no parents among the work (which budget, so
        which stage 2, a trial needs is known only once it is sampled)."""
        return [
            Work(f"unsampled-{self.stage}-{i}", self.stage, self.epochs)
            for i in range(self.pending)
        ]


def unsampled(
    sweep: Sweep,
    finished: Mapping[str, int],
    trials_left: int,
    seen_stage2: Iterable[str] = (),
) -> list[Unsampled]:
    """The executions of an Optuna sweep outside its nodes: stage 3's finished trials (by
    study, from the journal) and `trials_left` to sample; in `optuna-pareto` the stage-2 runs
    those may add, at most (`seen_stage2`: stage-2 keys already among the nodes). Empty for
    a grid sweep."""
    optuna = sweep.search.optuna
    if optuna is None:
        return []
    seen = set(seen_stage2)
    done3 = sum(min(optuna.trials, n) for n in finished.values())
    out = [Unsampled(3, done3, trials_left, int(sweep.stage3[0].optim.epochs))]
    store = Store.of_workdir(sweep.workdir)
    more2 = stage2_bound(sweep, trials_left, store, seen)
    if optuna.mode == "optuna-pareto":
        budget = next(d for d in optuna.space if d.name == "budget")
        keys = {sampled_stage2(sweep, int(b)).key for b in budget.choices or ()} - seen
        done2 = sum(store.is_done(2, k) for k in keys)  # drawn by an earlier run
        epochs2 = int(sweep.stage2[0].optim.epochs)
        out.append(Unsampled(2, done2, more2, epochs2, upper_bound=True))
    return out


def count_plan(
    plan: Plan, done: set[str], outside: Iterable[Unsampled] = ()
) -> dict[int, StageCount]:
    """Per stage: the plan's nodes (done: `done`) and the executions outside them."""
    counts = {}
    extra = {u.stage: u for u in outside}
    for n in (1, 2, 3):
        nodes = plan.stage(n)
        u = extra.get(n)
        counts[n] = StageCount(
            len(nodes) + (u.done + u.pending if u else 0),
            sum(node.key in done for node in nodes) + (u.done if u else 0),
            bool(u and u.upper_bound and u.pending),
        )
    return counts


def opening_text(counts: Mapping[int, StageCount], outside: Iterable[Unsampled]) -> str:
    """`senet run`'s first line: `12 stage executions planned, 3 already done, 9 to run (6
    of them stage-3 trials Optuna samples as it runs; ...)`."""
    total = sum(c.total for c in counts.values())
    done = sum(c.done for c in counts.values())
    text = f"{total} stage executions planned, {done} already done, {total - done} to run"
    notes = [
        f"{u.pending} of them stage-3 trials Optuna samples as it runs"
        if u.stage == 3
        else f"up to {u.pending} of them stage-2 runs for the budgets it draws ({BOUND_NOTE})"
        for u in outside
        if u.pending
    ]
    return text + (f" ({'; '.join(notes)})" if notes else "")


def sweep_counts(sweep: Sweep) -> dict[int, StageCount]:
    """What `senet validate` prints: read only (the journal is never written or healed)."""
    optuna = sweep.search.optuna
    plan = build_plan(sweep, [] if optuna else None)
    if optuna is None:
        return count_plan(plan, plan.done_keys())
    from orchestrator.search.studies import finished_counts, study_names

    names = list(study_names(sweep.name, optuna, sweep.budgets).values())
    finished = finished_counts(sweep.workdir, names)
    left = sum(max(0, optuna.trials - finished.get(n, 0)) for n in names)
    seen = [n.key for n in plan.stage(2)]  # a budget of [sweep] budgets: in the plan
    return count_plan(plan, plan.done_keys(), unsampled(sweep, finished, left, seen))
