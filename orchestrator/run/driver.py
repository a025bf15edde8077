"""Run a sweep on Ray Tune: connect to Ray, hand the plan's unfinished nodes to Tune through
the DAG searcher, stream progress, write records, return a summary.

Resuming needs no Tune state: the content-addressed store says what is done, so rerunning the
same command (after Ctrl-C, kill -9, preemption) plans only what is missing, and an
interrupted stage continues from its own epoch checkpoint.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.plan.plan import Node, Plan, build_plan
from orchestrator.records.provenance import code_version
from orchestrator.records.write import reconcile_records
from orchestrator.run.counts import Unsampled, count_plan, opening_text, unsampled
from orchestrator.run.lock import workdir_lock
from orchestrator.run.loggers import check_loggers, logger_callbacks
from orchestrator.run.status import write_plan
from orchestrator.spec.overrides import record_overrides
from orchestrator.spec.sweep import Resources, Sweep
from stages.artifacts import full_disk

Printer = Callable[[str], None]


class ConnectError(RuntimeError):
    """Ray cannot be reached: the message says which address and how to fix it."""


@dataclass
class RunSummary:
    run_id: str
    executed: dict[int, int]  # stage -> executions this run
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted


def _check_reachable(address: str, source: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not hang, when an address points at no Ray."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectError(f"{source} {address!r} is not host:port (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectError(
            f"cannot reach Ray at {address} (from {source}): {e.strerror or e}; start the head "
            f"with `ray start --head` or fix {source}"
            + (" (unset RAY_ADDRESS to run on a local Ray)" if source == "RAY_ADDRESS" else "")
        ) from None


def connect(address: str | None) -> bool:
    """Join `address` (or RAY_ADDRESS) or start a private local Ray. True when we started it."""
    loaded = sys.modules.get("ray")
    if loaded is not None and loaded.is_initialized():
        return False
    source = "--address"
    if address is None and os.environ.get("RAY_ADDRESS"):
        address, source = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if address and address not in ("local", "auto"):
        _check_reachable(address, source)
    # Ray's import and start take seconds (more on a busy machine): say what the wait is for.
    joining = bool(address) and address != "local"
    what = (
        f"joining Ray at {address}"
        if joining
        else f"starting a local Ray ({os.cpu_count() or 1} CPUs)"
    )
    print(f"{what}: waiting for it to answer ...", flush=True)
    import ray

    os.environ.pop("RAY_ADDRESS", None)  # never let a stale value reach ray.init
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    common["logging_level"] = "ERROR"
    if address and address != "local":
        try:
            ray.init(
                address=address, **{k: v for k, v in common.items() if k != "include_dashboard"}
            )
        except (ConnectionError, RuntimeError) as e:
            hint = (
                ""
                if os.environ.get("RAY_AUTH_MODE")
                else " (a cluster with token auth needs RAY_AUTH_MODE=token and its token)"
            )
            raise ConnectError(
                f"cannot join Ray at {address} (from {source}): {str(e).splitlines()[0]}{hint}"
            ) from None
        return False
    ray.init(address="local", num_cpus=os.cpu_count() or 1, **common)
    return True


def wait_for_nodes(expect: int, printer: Printer, timeout: float = 120.0) -> int:
    """Wait (bounded) until `expect` Ray nodes are alive; returns how many are. Those that
    did not join in time are said in one line and the sweep goes on with the rest."""
    import ray

    def alive() -> int:
        return sum(1 for n in ray.nodes() if n.get("Alive"))

    deadline = time.monotonic() + timeout
    joined = alive()
    if joined < expect:
        printer(
            f"waiting for {expect} Ray nodes to join ({joined} so far, at most {timeout:.0f} s)"
        )
    while joined < expect and time.monotonic() < deadline:
        time.sleep(0.5)
        joined = alive()
    if joined < expect:
        printer(
            f"Ray: {joined} of {expect} nodes joined within {timeout:.0f} s; going on with them"
        )
    return joined


def _reconcile_records(plan: Plan, nodes: Iterable[Node] = ()) -> int:
    """Records of the plan's finished nodes (and of `nodes`, those sampled while it ran)."""
    sweep = plan.sweep
    return reconcile_records(
        sweep.workdir, sweep.name, plan.store.root, [*plan.nodes.values(), *nodes]
    )


def trial_resources(res: Resources) -> Callable[[dict[str, Any]], Any]:
    """Tune's resource request per trial: the share of the stage its plan node runs
    ([resources.stageN] over [resources]), as the placement group Tune asks Ray for."""
    from ray import tune

    from orchestrator.plan.dag import config_node

    def request(config: dict[str, Any]) -> tune.PlacementGroupFactory:
        node = config_node(config)
        share = res.share(int(node["stage"])) if node else res.share(0)
        return tune.PlacementGroupFactory(
            [{"CPU": share.cpus, **({"GPU": share.gpus} if share.gpus else {})}]
        )

    return request


def _compact_records(sweep: Sweep, printer: Printer) -> None:
    """Fold the sweep's record files into one per stage once a stage has many (or has a
    compacted file already); a failure leaves the single files, which read the same."""
    import pyarrow as pa

    from orchestrator.records.compact import RUN_THRESHOLD, compact_workdir

    try:
        folded = compact_workdir(sweep.workdir, sweep.name, RUN_THRESHOLD)
    except (OSError, pa.ArrowException) as e:
        printer(f"records not compacted ({e}); `senet compact {sweep.workdir}` tries again")
        return
    if folded:
        printer(f"records: {sum(folded.values())} files folded into one per stage")


def run_sweep(
    sweep: Sweep,
    address: str | None = None,
    printer: Printer = print,
    device: str = "auto",
    listeners: list[Callable[[str, Any, dict[str, Any] | None], None]] | None = None,
    expect_nodes: int = 1,
) -> RunSummary:
    """Run every unfinished stage execution of `sweep` as Tune trials; returns what happened.
    One run per workdir: raises WorkdirBusy (naming the holder's host and PID) before
    anything starts when another run holds the workdir's lock. `expect_nodes`: the Ray nodes
    to wait for (bounded) before trials start, so a Slurm job's trials spread over them."""
    check_loggers(sweep)  # a [logging] table whose package is missing: one line, no Ray
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    with workdir_lock(sweep.workdir, "senet run", run_id):
        return _run_sweep(sweep, run_id, address, printer, device, listeners, expect_nodes)


def _run_sweep(
    sweep: Sweep,
    run_id: str,
    address: str | None,
    printer: Printer,
    device: str,
    listeners: list[Callable[[str, Any, dict[str, Any] | None], None]] | None,
    expect_nodes: int = 1,
) -> RunSummary:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress lines replace Tune's tables
    from ray import tune

    from orchestrator.plan.dag import DagSearcher
    from orchestrator.plan.start_order import NewestPendingFirst
    from orchestrator.run.callbacks import FailureRecorder, Progress, StatusTicker, StoppedRecorder
    from orchestrator.run.trial import TrialSpec, stage_trainable

    t0 = time.monotonic()
    optuna = sweep.search.optuna  # OptunaSettings in the Optuna modes: stage 3 is sampled
    plan = build_plan(sweep, [] if optuna else None)
    sweep.workdir.mkdir(parents=True, exist_ok=True)
    record_overrides(sweep.workdir, run_id, sweep.path, sweep.overrides)  # records carry run_id
    done = plan.done_keys(deep=True)  # heals first: a damaged artifact is recomputed
    _reconcile_records(plan)
    todo = [n for n in plan.nodes.values() if n.key not in done]
    summary = RunSummary(run_id, {1: 0, 2: 0, 3: 0})
    trials_left, source, outside = 0, None, []
    if optuna:
        from orchestrator.search.source import OptunaSource
        from orchestrator.search.studies import journal_path

        source = OptunaSource(sweep, optuna)  # reads the journal once: counts, stale trials
        trials_left = source.trials_left()
        outside = unsampled(sweep, source.finished, trials_left, [n.key for n in plan.stage(2)])
    printer(f"sweep {sweep.name}: " + opening_text(count_plan(plan, done, outside), outside))
    if optuna and source is not None:
        printer(
            f"optuna ({optuna.mode}, {optuna.sampler}, seed {optuna.seed}): {len(source.names)} studies, "
            f"{sum(source.finished.values())} trials finished, {trials_left} to run; study journal "
            f"{journal_path(sweep.workdir)}"
        )
        if source.stale:
            printer(f"optuna: {source.stale} trials left RUNNING by an interrupted run marked FAIL")
    if not todo and not trials_left:
        _compact_records(sweep, printer)
        summary.wall_s = time.monotonic() - t0
        return summary

    # `senet status` from the first second: this run's plan, before Ray (seconds) starts.
    write_plan(
        sweep.workdir,
        sweep.name,
        run_id,
        plan.nodes.values(),
        sweep.resources.max_concurrent or 1,
        outside,
        phase="starting Ray (or joining it) and waiting for its nodes",
    )
    started_local = connect(address)
    searcher: Any = None
    import ray

    try:
        nodes = wait_for_nodes(expect_nodes, printer)
        res = sweep.resources
        cluster_cpus = ray.cluster_resources().get("CPU", 1)
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        shares = {stage: res.share(stage) for stage in (1, 2, 3)}
        for stage, share in shares.items():
            if share.cpus > cluster_cpus or share.gpus > cluster_gpus:
                raise ConnectError(
                    f"[resources] asks {share.cpus:g} CPUs / {share.gpus:g} GPUs per stage-{stage} "
                    f"trial but the Ray cluster has {cluster_cpus:g} CPUs / {cluster_gpus:g} GPUs"
                )
        least = min(share.cpus for share in shares.values())
        max_conc = res.max_concurrent or max(1, int(cluster_cpus // least))
        spec = TrialSpec(
            store=plan.store.root,
            workdir=sweep.workdir,
            sweep=sweep.name,
            run_id=run_id,
            code_version=code_version(),
            cpus=res.cpus,
            device=device,  # each trial's through TrialSpec.trial_device, by what Ray gave it
        )
        scheduler: Any = NewestPendingFirst()
        if source is not None and optuna is not None:
            from orchestrator.search.asha import PerBudgetASHA

            # Stage-1/2 trials do not report the stage-3 metric ASHA and Optuna watch.
            os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
            source.limit_in_flight(max_conc)
            if optuna.asha:
                scheduler = PerBudgetASHA(sweep.stage3[0].optim.epochs, **optuna.asha)
        searcher = DagSearcher(list(plan.nodes.values()), done, plan.store, source)

        def outside_now() -> list[Unsampled]:
            """What the search has not sampled yet (and the stage 2s it implies)."""
            if source is None:
                return []
            seen = [n.key for n in searcher.nodes.values() if n.stage == 2]
            return unsampled(sweep, source.finished, source.trials_left(), seen)

        searcher.listeners.append(StoppedRecorder(sweep, spec, searcher).event)
        progress = Progress(
            searcher,
            printer,
            concurrency=max_conc,
            workdir=sweep.workdir,
            run_id=run_id,
            sweep=sweep.name,
            outside=outside_now,
        )
        searcher.listeners.append(progress.event)
        searcher.listeners.extend(listeners or [])
        failures = FailureRecorder(sweep, spec)
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(stage_trainable, spec=spec), trial_resources(res)
            ),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=-1,
                max_concurrent_trials=max_conc,
                reuse_actors=True,
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(
                name=f"{sweep.name}-{run_id}",
                storage_path=str(sweep.workdir / "tune"),
                failure_config=tune.FailureConfig(max_failures=res.retries),
                callbacks=[failures, StatusTicker(progress), *logger_callbacks(sweep)],
                verbose=0,
            ),
        )
        asks = ", ".join(
            f"stage {stage} {share.cpus:g} CPU / {share.gpus:g} GPU"
            for stage, share in shares.items()
        )
        printer(
            f"Ray: {nodes} node{'s' * (nodes != 1)}, {cluster_cpus:g} CPUs, {cluster_gpus:g} GPUs, up to {max_conc} concurrent trials ({asks}); Tune state in {sweep.workdir / 'tune'}"
        )
        try:
            tuner.fit()
        except KeyboardInterrupt:
            summary.interrupted = True
        except Exception as e:  # Tune fails in its own words when its state cannot be written
            if (full := full_disk(sweep.workdir)) is None:
                raise
            raise full from e
        if searcher.pending or searcher.running or (source and not source.exhausted()):
            summary.interrupted = True
        summary.executed = dict(searcher.executed)
        summary.failed = sorted(searcher.failed)
        summary.skipped = sorted(searcher.skipped)
        progress.status()
    finally:
        _reconcile_records(plan, searcher.nodes.values() if searcher is not None else ())
        if started_local:
            ray.shutdown()
    _compact_records(sweep, printer)
    summary.wall_s = time.monotonic() - t0
    return summary
