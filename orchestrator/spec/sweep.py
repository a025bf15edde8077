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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SweepError, UserError
from orchestrator.spec.budget import resolve_budget
from orchestrator.spec.optuna_settings import OptunaSettings, parse_optuna
from stages.allocation import ALLOCATIONS, BudgetError
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config, Stage3Config
from stages.data import DATASETS, needs_root, root_hint
from stages.models import MODELS
from stages.partial_relu import GRANULARITIES
from stages.pruning import PRUNINGS
from stages.stage2 import INITS, METHODS, RELAXED

SEARCH_MODES = ("grid", "optuna", "optuna-pareto")


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0  # per trial; fractions allowed
    gpus: float = 0.0
    max_concurrent: int = 0  # 0: as many as the cluster's resources allow
    retries: int = 1  # reruns of a failing stage execution before it is recorded as failed


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


_TOP = {
    "name",
    "model",
    "dataset",
    "data_root",
    "seeds",
    "budgets",
    "workdir",
    "include_stem",
    "limit",
    "val_fraction",
}
_SECTIONS = {"sweep", "stage1", "stage2", "stage3", "search", "resources"}
_OPTIM = {f.name for f in dataclasses.fields(OptimConfig)}


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"optim", "data", "model", "seed", "budget"}


def _grid(section: str, table: dict[str, Any], cls: type, base: Any) -> list[Any]:
    """Expand a stage table into configs; list values are axes."""
    known = (_fields(cls) | _OPTIM) - ({"include_stem"} if cls is Stage1Config else set())
    for key in table:
        if key not in known:
            raise SweepError(
                f"[{section}] {key}: unknown key; known keys: {', '.join(sorted(known))}"
            )
    axes: dict[str, list[Any]] = {}
    for key, value in table.items():
        is_axis = isinstance(value, list) and (
            key != "milestones" or value and isinstance(value[0], list)
        )
        values = value if is_axis else [value]
        if is_axis and not values:
            raise SweepError(
                f"[{section}] {key}: empty list, so the grid is empty; give one value at least"
            )
        axes[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    out = []
    for combo in itertools.product(*axes.values()) if axes else [()]:
        chosen = dict(zip(axes, combo))
        optim = dataclasses.replace(base.optim, **{k: v for k, v in chosen.items() if k in _OPTIM})
        rest = {k: v for k, v in chosen.items() if k not in _OPTIM}
        try:
            out.append(dataclasses.replace(base, optim=optim, **rest))
        except TypeError as e:
            raise SweepError(f"[{section}]: {e}") from None
    return out


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SweepError(msg)


def _check_stage_values(section: str, cfgs: list[Any]) -> None:
    for c in cfgs:
        o = c.optim
        _check(
            isinstance(o.epochs, int) and o.epochs >= 0,
            f"[{section}] epochs: must be an integer >= 0, got {o.epochs!r}",
        )
        _check(o.lr > 0, f"[{section}] lr: must be > 0, got {o.lr}")
        _check(
            isinstance(o.batch_size, int) and o.batch_size >= 1,
            f"[{section}] batch_size: must be an integer >= 1, got {o.batch_size!r}",
        )
        _check(o.weight_decay >= 0, f"[{section}] weight_decay: must be >= 0, got {o.weight_decay}")
        _check(
            all(0 < m <= 1 for m in o.milestones),
            f"[{section}] milestones: fractions of the epochs in (0, 1], got {list(o.milestones)}",
        )
        if hasattr(c, "tau"):
            _check(c.tau > 0, f"[{section}] tau: the temperature must be > 0, got {c.tau}")
        if isinstance(c, Stage1Config):
            _check(0 < c.density <= 1, f"[{section}] density: must be in (0, 1], got {c.density}")
            _check(
                c.pruning in PRUNINGS,
                f"[stage1] pruning: unknown {c.pruning!r}; choose one of: {', '.join(PRUNINGS)}",
            )
            _check(
                isinstance(c.prune_rounds, int) and c.prune_rounds >= 1,
                f"[stage1] prune_rounds: an integer >= 1, got {c.prune_rounds!r}",
            )
        if isinstance(c, Stage2Config):
            _check(
                c.allocation in ALLOCATIONS,
                f"[stage2] allocation: unknown {c.allocation!r}; choose one of: {', '.join(ALLOCATIONS)}",
            )
            _check(
                c.granularity in GRANULARITIES,
                f"[stage2] granularity: unknown {c.granularity!r}; choose one of: {', '.join(GRANULARITIES)}",
            )
            _check(
                c.method in METHODS,
                f"[stage2] method: unknown {c.method!r}; choose one of: {', '.join(METHODS)}",
            )
            _check(
                c.method not in RELAXED or c.granularity == "pixel",
                f"[stage2] granularity: {c.method} searches one alpha per position; use pixel",
            )
            for k in ("score_momentum", "freeze"):
                v = getattr(c, k)
                _check(0 <= v < 1, f"[stage2] {k}: must be in [0, 1), got {v}")
            for k in ("snl_lr", "snl_alpha_lr", "snl_lambda"):
                _check(getattr(c, k) > 0, f"[stage2] {k}: must be > 0, got {getattr(c, k)}")
            _check(c.snl_growth >= 1, f"[stage2] snl_growth: must be >= 1, got {c.snl_growth}")
            _check(
                0 < c.snl_threshold < 1,
                f"[stage2] snl_threshold: must be in (0, 1), got {c.snl_threshold}",
            )
            _check(
                c.init in INITS,
                f"[stage2] init: unknown {c.init!r}; choose random or teacher",
            )
            _check(
                0 <= c.ce_weight <= 1, f"[stage2] ce_weight: must be in [0, 1], got {c.ce_weight}"
            )
        if isinstance(c, Stage3Config):
            for k in ("gamma", "alpha", "beta"):
                _check(getattr(c, k) >= 0, f"[stage3] {k}: must be >= 0, got {getattr(c, k)}")


def parse_sweep(
    doc: dict[str, Any], path: Path | None = None, workdir: Path | None = None
) -> Sweep:
    """Validate a parsed sweep document. Raises SweepError (one line) on the first problem."""
    from stages.pipeline import relu_total

    for section in doc:
        _check(
            section in _SECTIONS,
            f"[{section}]: unknown section; known sections: {', '.join(sorted(_SECTIONS))}",
        )
    top = dict(doc.get("sweep", {}))
    for key in top:
        _check(key in _TOP, f"[sweep] {key}: unknown key; known keys: {', '.join(sorted(_TOP))}")
    pareto = doc.get("search", {}).get("mode") == "optuna-pareto"  # samples its budgets
    for key in ("model", "dataset") + (() if pareto else ("budgets",)):
        _check(
            key in top, f"[sweep] {key}: missing; every sweep names its model, dataset and budgets"
        )
    name = str(top.get("name") or (path.stem if path else "sweep"))
    _check(
        name.replace("-", "").replace("_", "").isalnum(),
        f"[sweep] name: {name!r} must be letters, digits, '-' or '_' (it names folders)",
    )
    model, dataset = top["model"], top["dataset"]
    _check(
        model in MODELS,
        f"[sweep] model: unknown model {model!r}; choose one of: {', '.join(sorted(MODELS))}",
    )
    _check(
        dataset in DATASETS,
        f"[sweep] dataset: unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}",
    )
    data_root = top.get("data_root") or None
    if data_root is None and needs_root(dataset):  # no default folder (fashion-mnist, mnist) here
        raise SweepError(
            f"[sweep] data_root: {dataset} needs the folder holding its official files; "
            f"{root_hint(dataset)}"
        )
    if data_root is not None:  # like workdir, relative to the directory senet runs in
        root = Path(os.path.expanduser(data_root)).resolve()
        _check(
            root.is_dir(),
            f"[sweep] data_root: folder {root} does not exist; point it at the {dataset} files",
        )
        data_root = str(root)
    seeds = top.get("seeds", [0])
    _check(
        isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds),
        f"[sweep] seeds: a non-empty list of integers, got {seeds!r}",
    )
    include_stem = top.get("include_stem", True)
    _check(
        isinstance(include_stem, bool), f"[sweep] include_stem: true or false, got {include_stem!r}"
    )
    total = relu_total(model, dataset, include_stem)
    budgets_raw = top.get("budgets", [])
    _check(
        isinstance(budgets_raw, list),
        f"[sweep] budgets: a list of ReLU counts or fractions, got {budgets_raw!r}",
    )
    search_doc = dict(doc.get("search", {}))
    mode = search_doc.pop("mode", "grid")
    _check(
        mode in SEARCH_MODES,
        f"[search] mode: unknown {mode!r}; choose one of: {', '.join(SEARCH_MODES)}",
    )
    if mode != "optuna-pareto":
        _check(
            bool(budgets_raw),
            "[sweep] budgets: empty list, so the grid is empty; give one budget at least",
        )
    budgets = []
    for b in budgets_raw:
        try:
            budgets.append(resolve_budget(b, total))
        except BudgetError as e:
            raise SweepError(f"[sweep] budgets: {e} ({model} on {dataset})") from None
    limit = top.get("limit")
    _check(
        limit is None or (isinstance(limit, int) and limit > 0),
        f"[sweep] limit: a positive integer, got {limit!r}",
    )
    val_fraction = top.get("val_fraction", 0.1)
    _check(0 < val_fraction < 1, f"[sweep] val_fraction: must be in (0, 1), got {val_fraction}")
    data = DataConfig(dataset, data_root, val_fraction, limit)

    s1_base = Stage1Config(model=model, data=data, include_stem=include_stem)
    s1_grid = _grid("stage1", dict(doc.get("stage1", {})), Stage1Config, s1_base)
    _check(len(s1_grid) == 1, "[stage1]: lists are not grid axes here; stage 1 runs once per seed")
    _check_stage_values("stage1", s1_grid)
    stage1 = tuple(dataclasses.replace(s1_grid[0], seed=s) for s in dict.fromkeys(seeds))
    stage2 = tuple(_grid("stage2", dict(doc.get("stage2", {})), Stage2Config, Stage2Config()))
    _check_stage_values("stage2", list(stage2))
    stage3 = tuple(_grid("stage3", dict(doc.get("stage3", {})), Stage3Config, Stage3Config()))
    _check_stage_values("stage3", list(stage3))

    res_doc = dict(doc.get("resources", {}))
    known = {f.name for f in dataclasses.fields(Resources)}
    for key in res_doc:
        _check(
            key in known, f"[resources] {key}: unknown key; known keys: {', '.join(sorted(known))}"
        )
    resources = Resources(**res_doc)
    _check(resources.cpus > 0, f"[resources] cpus: must be > 0, got {resources.cpus}")
    _check(resources.gpus >= 0, f"[resources] gpus: must be >= 0, got {resources.gpus}")
    _check(resources.retries >= 0, f"[resources] retries: must be >= 0, got {resources.retries}")
    _check(
        resources.max_concurrent >= 0,
        f"[resources] max_concurrent: must be >= 0, got {resources.max_concurrent}",
    )

    search = Search(mode)
    if mode != "grid":
        _check(
            len(stage1) == 1, f"[sweep] seeds: mode {mode} tunes one seed at a time; give one seed"
        )
        _check(len(stage2) == 1, f"[stage2]: mode {mode} needs one stage-2 setting (no lists)")
        _check(
            len(stage3) == 1,
            f"[stage3]: mode {mode} samples stage 3 from [search.space]; give no lists here",
        )
        search = Search(mode, parse_optuna(mode, search_doc, total))

    wd = workdir or Path(os.path.expanduser(top.get("workdir", f"runs/{name}")))
    if not wd.is_absolute() and path is not None and workdir is None:
        wd = Path.cwd() / wd
    return Sweep(
        name=name,
        path=path,
        workdir=wd.resolve(),
        model=model,
        dataset=dataset,
        data_root=data_root,
        seeds=tuple(dict.fromkeys(seeds)),
        budgets=tuple(dict.fromkeys(budgets)),
        include_stem=include_stem,
        stage1=stage1,
        stage2=stage2,
        stage3=stage3,
        search=search,
        resources=resources,
        relu_total=total,
    )


def load_sweep(path: Path | str, workdir: Path | None = None) -> Sweep:
    """Read and validate a sweep file; every problem is a SweepError prefixed by the file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from None
    try:
        return parse_sweep(doc, path, workdir)
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from None


def load_or_fail(path: Path | str, workdir: Path | None = None) -> Sweep:
    """`load_sweep` for the commands: a bad file is a UserError, which `senet` prints as one
    line with exit status 2 before anything starts."""
    try:
        return load_sweep(path, workdir)
    except SweepError as e:
        raise UserError(str(e)) from None
