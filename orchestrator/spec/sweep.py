"""Sweep files: TOML in, a validated `Sweep` out, or one line naming the key and the problem.

A value given as a list in [stage2] or [stage3] (a list of lists for `milestones`) is a grid
axis; budgets and seeds are always lists. Every stage setting defaults to the method note's
value, so a sweep file names only what it changes.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SweepError, UserError
from orchestrator.spec import schema
from orchestrator.spec.budget import resolve_budget
from orchestrator.spec.optuna_settings import OptunaSettings, optuna_settings
from orchestrator.spec.overrides import apply_overrides, blame, parse_overrides
from orchestrator.spec.paths import path_problem, regular_file_problem
from orchestrator.spec.schema import SchemaError
from stages.allocation import BudgetError
from stages.catalog import missing_extra, needs_root, relu_total, root_hint
from stages.config import (
    ConfigError,
    DataConfig,
    OptimConfig,
    Stage1Config,
    Stage2Config,
    Stage3Config,
    check_combination,
)

_OPTIM = {f.name for f in dataclasses.fields(OptimConfig)}


@dataclass(frozen=True)
class Share:
    """What one trial of a stage asks Ray for."""

    cpus: float
    gpus: float


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0  # per trial, the stages' common default; fractions allowed
    gpus: float = 0.0
    max_concurrent: int = 0  # 0: as many as the cluster's resources allow
    retries: int = 1  # reruns of a failing stage execution before it is recorded as failed
    max_executions: int = schema.MAX_EXECUTIONS  # the grid's size cap
    stages: tuple[Share, ...] = ()  # stages 1, 2, 3: [resources.stageN] over cpus and gpus

    def share(self, stage: int) -> Share:
        """Stage `stage`'s request per trial (a stage-1 teacher may want a whole GPU, a short
        stage-3 fine-tune a quarter); the common one for no stage of the plan."""
        if 1 <= stage <= len(self.stages):
            return self.stages[stage - 1]
        return Share(self.cpus, self.gpus)


@dataclass(frozen=True)
class Search:
    mode: str = "grid"
    optuna: OptunaSettings | None = None  # the Optuna modes' settings; None for grid


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path | None
    workdir: Path
    model: str
    dataset: str
    data_root: str | None
    seeds: tuple[int, ...]
    budgets: tuple[int, ...]  # resolved to ReLU counts
    include_stem: bool
    stage1: tuple[Stage1Config, ...]  # one per seed
    stage2: tuple[Stage2Config, ...]  # budget left at its default; the plan sets it
    stage3: tuple[Stage3Config, ...]
    search: Search
    resources: Resources
    relu_total: int
    overrides: tuple[str, ...] = ()  # `key=value`s given on the command line, as given
    logging: schema.LoggingTable | None = None  # [logging]: W&B / MLflow via Ray Tune's callbacks


def parse_sweep(
    doc: dict[str, Any],
    path: Path | None = None,
    workdir: Path | None = None,
    find_data: bool = True,
) -> Sweep:
    """Validate a parsed sweep document (schema first, then what needs the model: budgets,
    data folders). Raises SchemaError (one line) on the first problem. `find_data=False`
    leaves the data folder to the loader (`senet pipeline`: its message lists the files)."""
    f = schema.parse(doc)
    top, mode = f.sweep, f.search.mode
    count, cap = schema.executions(f), f.resources.max_executions
    if count > cap:  # before any grid is built or any model traced
        raise SchemaError(
            "resources",
            "max_executions",
            f"the sweep asks for {count:,} stage executions, over this cap; "
            "shrink its lists or raise max_executions",
            cap,
        )
    name = top.name or (path.stem if path else "sweep")
    if top.name is None and (problem := schema.name_problem(name)):
        raise SchemaError(
            "sweep", "name", f"the file's name cannot name the sweep: {problem}", name
        )
    if top.budgets is None and mode != "optuna-pareto":  # optuna-pareto samples its budgets
        raise SchemaError(
            "sweep", "budgets", "missing; every sweep names its model, dataset and budgets"
        )
    if top.budgets == [] and mode != "optuna-pareto":
        raise SchemaError(
            "sweep", "budgets", "empty list, so the grid is empty; give one budget at least", []
        )
    if needs := missing_extra(top.dataset):  # before Ray starts, not in every trial
        raise SchemaError("sweep", "dataset", needs, top.dataset)
    data_root = _data_root(top.dataset, top.data_root, find_data)
    total = relu_total(top.model, top.dataset, top.include_stem)
    budgets = []
    for b in top.budgets or ():
        try:
            budgets.append(resolve_budget(b, total))
        except BudgetError as e:
            raise SchemaError("sweep", "budgets", f"{e}, {top.model} on {top.dataset}", b) from None

    seeds = tuple(dict.fromkeys(top.seeds))
    data = DataConfig(top.dataset, data_root, top.val_fraction, top.limit)
    s1_base = Stage1Config(model=top.model, data=data, include_stem=top.include_stem)
    (s1,) = _grid(f.stage1.model_dump(exclude_none=True), s1_base, axes=False)
    stage1 = tuple(dataclasses.replace(s1, seed=s) for s in seeds)
    stage2 = tuple(_grid(f.stage2.model_dump(exclude_none=True), Stage2Config()))
    for c in {(c.method, c.granularity, c.allocation): c for c in stage2}.values():
        try:
            check_combination(c)
        except ConfigError as e:
            raise SchemaError("stage2", e.key, e.problem, e.value) from None
    stage3 = tuple(_grid(f.stage3.model_dump(exclude_none=True), Stage3Config()))

    search = Search(mode)
    given = f.search.model_fields_set - {"mode"}
    if mode == "grid" and given:
        raise SchemaError("search", sorted(given)[0], "only for mode optuna or optuna-pareto")
    if mode != "grid":
        if len(stage1) != 1:
            raise SchemaError(
                "sweep",
                "seeds",
                f"mode {mode} tunes one seed at a time; give one seed",
                list(seeds),
            )
        if len(stage2) != 1:
            raise SchemaError("stage2", "", f"mode {mode} needs one stage-2 setting (no lists)")
        if len(stage3) != 1:
            raise SchemaError(
                "stage3", "", f"mode {mode} samples stage 3 from [search.space]; give no lists here"
            )
        search = Search(mode, optuna_settings(f.search, total))

    wd = workdir or Path(os.path.expanduser(top.workdir or f"runs/{name}"))
    if not wd.is_absolute() and path is not None and workdir is None:
        wd = Path.cwd() / wd
    if workdir is None and (problem := schema.workdir_problem(wd)):
        raise SchemaError("sweep", "workdir", problem, top.workdir)
    res = f.resources
    return Sweep(
        name=name,
        path=path,
        workdir=wd.resolve(),
        model=top.model,
        dataset=top.dataset,
        data_root=data_root,
        seeds=seeds,
        budgets=tuple(dict.fromkeys(budgets)),
        include_stem=top.include_stem,
        stage1=stage1,
        stage2=stage2,
        stage3=stage3,
        search=search,
        resources=Resources(
            res.cpus,
            res.gpus,
            res.max_concurrent,
            res.retries,
            res.max_executions,
            tuple(
                _share(getattr(res, name), res.cpus, res.gpus) for name in schema.STAGE_RESOURCES
            ),
        ),
        relu_total=total,
        logging=f.logging,
    )


def _share(table: schema.StageResources | None, cpus: float, gpus: float) -> Share:
    """A [resources.stageN] table over the common [resources] values."""
    if table is None:
        return Share(cpus, gpus)
    return Share(
        cpus if table.cpus is None else table.cpus, gpus if table.gpus is None else table.gpus
    )


def _data_root(dataset: str, data_root: str | None, find: bool = True) -> str | None:
    """The dataset's folder, absolute (relative to the directory senet runs in, like workdir)."""
    if not data_root:
        if find and needs_root(dataset):  # no default folder (fashion-mnist and mnist have one)
            raise SchemaError(
                "sweep",
                "data_root",
                f"{dataset} needs the folder holding its official files; {root_hint(dataset)}",
            )
        return None
    if problem := path_problem(Path(os.path.expanduser(data_root)), folder=True):
        raise SchemaError("sweep", "data_root", problem, data_root)
    root = Path(os.path.expanduser(data_root)).resolve()
    if find and not root.is_dir():
        raise SchemaError(
            "sweep",
            "data_root",
            f"folder {root} does not exist; point it at the {dataset} files",
            data_root,
        )
    return str(root)


def _grid(table: dict[str, Any], base: Any, axes: bool = True) -> list[Any]:
    """A stage section's configs: with `axes`, every value is a list of the axis' values (the
    schema wraps single ones) and the grid is their product."""
    if not axes:
        table = {k: [v] for k, v in table.items()}
    out = []
    for combo in itertools.product(*table.values()):
        chosen = {k: tuple(v) if isinstance(v, list) else v for k, v in zip(table, combo)}
        optim = dataclasses.replace(base.optim, **{k: v for k, v in chosen.items() if k in _OPTIM})
        rest = {k: v for k, v in chosen.items() if k not in _OPTIM}
        out.append(dataclasses.replace(base, optim=optim, **rest))
    return out


def load_sweep(
    path: Path | str,
    workdir: Path | None = None,
    overrides: Sequence[str] = (),
    find_data: bool = True,
) -> Sweep:
    """Read and validate a sweep file with `overrides` (`stage3.tau=[2.0,4.0]`, see
    spec/overrides.py) set in it; every problem is one SweepError line prefixed by the file,
    or by the override it is about. At most MAX_FILE_BYTES + 1 bytes are read, so /dev/zero
    is refused at once; so is anything but a regular file (a FIFO would block the read
    forever), without opening it. `find_data=False`: the data folder need not exist (reading
    records)."""
    path = Path(path)
    changes = parse_overrides(overrides)  # a malformed one is refused before the file is read
    if problem := regular_file_problem(path):
        raise SweepError(f"{path}: {problem}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(schema.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except IsADirectoryError:
        raise SweepError(f"{path}: a folder, not a sweep file") from None
    except OSError as e:
        raise SweepError(f"{path}: cannot read it: {e.strerror or e}") from None
    if len(raw) > schema.MAX_FILE_BYTES:
        raise SweepError(
            f"{path}: over {schema.MAX_FILE_BYTES:,} bytes; a sweep file is a few hundred"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SweepError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise SweepError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    doc = apply_overrides(doc, changes)
    try:
        sweep = parse_sweep(doc, path, workdir, find_data)
    except SchemaError as e:
        if (culprit := blame(e, changes)) is not None:
            raise SweepError(f"override {culprit.text}: {e}") from None
        given = "".join(f" {o.text}" for o in changes)
        raise SweepError(f"{path}{' with' + given if given else ''}: {e}") from None
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from None
    return dataclasses.replace(sweep, overrides=tuple(o.text for o in changes))


def load_or_fail(
    path: Path | str,
    workdir: Path | None = None,
    overrides: Sequence[str] = (),
    find_data: bool = True,
) -> Sweep:
    """`load_sweep` for the commands: a bad file or override is a UserError, which `senet`
    prints as one line with exit status 2 before anything starts."""
    try:
        return load_sweep(path, workdir, overrides, find_data)
    except SweepError as e:
        raise UserError(str(e)) from None
