"""The sweep file's schema: every key's type (pydantic, strict: an integer is an int and never a
bool, a number never a string) and its value rule, so a file is checked in one place and each
refusal is one line, `[section] key: problem (got VALUE)`.

The stage settings' rules are stages.config.RULES (the stages check direct Python callers by
the same ones); the sweep's own keys ([sweep] name, [resources], [search]) have theirs here.
Pydantic is used in strict mode: TOML already gives typed values, so any coercion would
only hide a mistake (`epochs = "5"`, `retries = true`).
"""

import dataclasses
import math
import re
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic import create_model as _create_model
from pydantic_core import PydanticCustomError

from orchestrator.errors import SweepError
from orchestrator.spec.paths import path_problem
from stages.config import (
    RULES,
    DataConfig,
    OptimConfig,
    Rule,
    Stage1Config,
    Stage2Config,
    Stage3Config,
)

SEARCH_MODES = ("grid", "optuna", "optuna-pareto")
SAMPLERS = ("tpe", "nsga2", "random")
MAX_FILE_BYTES = 1_000_000  # a sweep file is a few hundred bytes; this bounds what is read
MAX_EXECUTIONS = 100_000  # default of [resources] max_executions: the grid's size cap
NAME_LENGTH = 64  # Tune and Slurm name folders and files after it, with more appended
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
# Ray counts resources in units of 0.0001 (a share below one unit raises after Ray starts)
# and refuses more than 1e14 of one resource (ray_constants.MIN_RESOURCE_GRANULARITY, ..MAX..).
RAY_PRECISION, RAY_MAX = 0.0001, 100e12
UNSET = object()


class SchemaError(SweepError):
    """One refusal: `[section] key: problem (got VALUE)`; its parts stay readable, so a
    command can name its own option instead of a section and key."""

    def __init__(self, section: str, key: str, problem: str, value: Any = UNSET) -> None:
        self.section, self.key, self.problem, self.value = section, key, problem, value
        where = f"[{section}]" + (f" {key}" if key else "")
        got = "" if value is UNSET else f" (got {show(value)})"
        super().__init__(f"{where}: {problem}{got}")


def show(value: Any) -> str:
    """A value as the user wrote it, on one short line (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(problem: str) -> PydanticCustomError:
    return PydanticCustomError("rule", "{problem}", {"problem": problem})


def ruled(tp: Any, rule: Rule | None) -> Any:
    """`tp`, checked by `rule` once its type is right."""
    if rule is None:
        return tp

    def check(value: Any) -> Any:
        problem = rule.problem(value)
        if problem:
            raise _fail(problem)
        return value

    return Annotated[tp, AfterValidator(check)]


def one_of(options: tuple[str, ...]) -> Any:
    """A string among the orchestrator's own options (modes, samplers)."""

    def check(value: str) -> str:
        if value not in options:
            raise _fail(f"must be one of: {', '.join(options)}")
        return value

    return Annotated[str, AfterValidator(check)]


def _nonempty(what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise _fail(f"empty list; give one {what} at least")
        return value

    return check


_ANY_NUMBER = Rule()  # no bounds: a number's own rules (finite, 64-bit) alone


def _number(value: Any) -> int | float:
    """A budget or a search bound: an int and a float mean different things, so both stay."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail("must be a number")
    if problem := _ANY_NUMBER.problem(value):
        raise _fail(problem)
    return value


Number = Annotated[Any, AfterValidator(_number)]


def name_problem(value: str) -> str | None:
    """Why `value` cannot name a sweep (it names folders and the Slurm job), or None."""
    if len(value) > NAME_LENGTH or not NAME.fullmatch(value):
        return (
            f"must be 1 to {NAME_LENGTH} letters, digits, '-' or '_', starting with a letter or "
            "digit (it names folders and the Slurm job)"
        )
    return None


def _name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise _fail(problem)
    return value


Name = Annotated[str, AfterValidator(_name)]


# --- the stage sections, built from the stage configs' own fields --------------------------


def _field_type(name: str, hint: Any) -> tuple[Any, bool]:
    """The type of a config field in a sweep file, and whether a single value is a list."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:  # TOML has arrays, not tuples
        return list[ruled(typing.get_args(hint)[0], RULES.get(name))], True
    return ruled(hint, RULES.get(name)), False


def _axis(list_value: bool) -> Callable[[Any], Any]:
    """[stage2]/[stage3]: a list is a grid axis (a list of lists for a list-valued key)."""

    def wrap(value: Any) -> Any:
        is_axis = isinstance(value, list) and (
            not list_value or (bool(value) and all(isinstance(v, list) for v in value))
        )
        if not is_axis:
            return [value]
        if not value:
            raise _fail("empty list, so the grid is empty; give one value at least")
        return value

    return wrap


def _single(list_value: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, list) and (not list_value or any(isinstance(v, list) for v in value)):
            raise _fail("lists are not grid axes in [stage1]: stage 1 runs once per seed")
        return value

    return check


STAGE_SKIP = {"optim", "data", "model", "seed", "budget", "include_stem"}  # [sweep]'s or the plan's


def _stage_table(section: str, cls: type, axes: bool) -> type[BaseModel]:
    hints = typing.get_type_hints(cls) | typing.get_type_hints(OptimConfig)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in STAGE_SKIP]
    names += [f.name for f in dataclasses.fields(OptimConfig)]
    spec: dict[str, Any] = {}
    for name in names:
        tp, list_value = _field_type(name, hints[name])
        shape = _axis(list_value) if axes else _single(list_value)
        tp = list[tp] if axes else tp
        spec[name] = (Annotated[tp, BeforeValidator(shape)] | None, None)
    return _create_model(f"{section}_table", __config__=STRICT, **spec)


Stage1Table = _stage_table("stage1", Stage1Config, axes=False)
Stage2Table = _stage_table("stage2", Stage2Config, axes=True)
Stage3Table = _stage_table("stage3", Stage3Config, axes=True)


# --- [sweep], [resources], [search] --------------------------------------------------------

_D1, _DATA = Stage1Config(), DataConfig()
Path_ = ruled(str, RULES["root"])  # workdir and data_root alike


class SweepTable(BaseModel):
    model_config = STRICT
    name: Name | None = None
    model: ruled(str, RULES["model"])  # type: ignore[valid-type]
    dataset: ruled(str, RULES["dataset"])  # type: ignore[valid-type]
    data_root: Path_ | None = None  # type: ignore[valid-type]
    seeds: Annotated[
        list[ruled(int, RULES["seed"])],  # type: ignore[misc]
        AfterValidator(_nonempty("seed")),
    ] = [_D1.seed]
    budgets: list[Number] | None = None
    workdir: Path_ | None = None  # type: ignore[valid-type]
    include_stem: bool = _D1.include_stem
    limit: ruled(int, RULES["limit"]) | None = _DATA.limit  # type: ignore[valid-type]
    val_fraction: ruled(float, RULES["val_fraction"]) = _DATA.val_fraction  # type: ignore[valid-type]


def _gpus(value: float) -> float:
    """Ray grants a GPU share below one, or whole GPUs: 1.5 would never be scheduled."""
    if value > 1 and not float(value).is_integer():
        raise _fail("must be a fraction below 1 or a whole number of GPUs")
    return value


def _ray_quantity(value: float) -> float:
    """What Ray can count: it raises on a share below its unit only once it has started."""
    if 0 < value < RAY_PRECISION:
        raise _fail(f"a nonzero share must be at least {RAY_PRECISION:g} (Ray's precision)")
    if value > RAY_MAX:
        raise _fail(f"must be at most {RAY_MAX:g} (Ray's largest resource quantity)")
    return value


Cpus = Annotated[ruled(float, Rule(low=0, low_open=True)), AfterValidator(_ray_quantity)]
Gpus = Annotated[ruled(float, Rule(low=0)), AfterValidator(_gpus), AfterValidator(_ray_quantity)]
STAGE_RESOURCES = ("stage1", "stage2", "stage3")  # [resources.stageN] sub-tables


class StageResources(BaseModel):
    """[resources.stageN]: one stage's request per trial; what it leaves out is [resources]'s."""

    model_config = STRICT
    cpus: Cpus | None = None  # type: ignore[valid-type]
    gpus: Gpus | None = None  # type: ignore[valid-type]


class ResourcesTable(BaseModel):
    model_config = STRICT
    cpus: Cpus = 1.0  # type: ignore[valid-type]
    gpus: Gpus = 0.0  # type: ignore[valid-type]
    stage1: StageResources | None = None
    stage2: StageResources | None = None
    stage3: StageResources | None = None
    max_concurrent: ruled(int, Rule(low=0)) = 0  # type: ignore[valid-type]
    retries: ruled(int, Rule(low=0)) = 1  # type: ignore[valid-type]
    max_executions: ruled(int, Rule(low=1)) = MAX_EXECUTIONS  # type: ignore[valid-type]


class SpaceEntry(BaseModel):
    model_config = STRICT
    low: Number | None = None
    high: Number | None = None
    log: bool = False
    choices: Annotated[list[Number], AfterValidator(_nonempty("choice"))] | None = None


class AshaTable(BaseModel):
    model_config = STRICT
    enabled: bool = True  # `asha = false` in the file
    grace_period: ruled(int, Rule(low=1)) = 1  # type: ignore[valid-type]
    reduction_factor: ruled(int, Rule(low=2)) = 2  # type: ignore[valid-type]


def _space_entry(value: Any) -> Any:
    return {"choices": value} if isinstance(value, list) else value


def _asha(value: Any) -> Any:
    return {"enabled": value} if isinstance(value, bool) else value


class SearchTable(BaseModel):
    model_config = STRICT
    mode: one_of(SEARCH_MODES) = "grid"  # type: ignore[valid-type]
    trials: ruled(int, Rule(low=1)) = 8  # type: ignore[valid-type]
    seed: ruled(int, _ANY_NUMBER) = 0  # type: ignore[valid-type]
    sampler: one_of(SAMPLERS) | None = None  # type: ignore[valid-type]
    space: dict[str, Annotated[SpaceEntry, BeforeValidator(_space_entry)]] | None = None
    asha: Annotated[AshaTable, BeforeValidator(_asha)] | None = None


class WandbTable(BaseModel):
    """[logging.wandb]: arguments of Ray Tune's WandbLoggerCallback (entity goes to wandb.init)."""

    model_config = STRICT
    project: str
    group: str | None = None  # the sweep's name unless given
    entity: str | None = None
    api_key_file: Path_ | None = None  # type: ignore[valid-type]


class MlflowTable(BaseModel):
    """[logging.mlflow]: arguments of Ray Tune's MLflowLoggerCallback."""

    model_config = STRICT
    tracking_uri: str | None = None  # MLflow's own default (./mlruns) unless given
    experiment_name: str | None = None  # the sweep's name unless given
    tags: dict[str, str] | None = None


LOGGERS = ("wandb", "mlflow")  # [logging.NAME] sub-tables


class LoggingTable(BaseModel):
    model_config = STRICT
    wandb: WandbTable | None = None
    mlflow: MlflowTable | None = None


class SweepFile(BaseModel):
    model_config = STRICT
    sweep: SweepTable
    stage1: Stage1Table = Field(default_factory=Stage1Table)  # type: ignore[valid-type]
    stage2: Stage2Table = Field(default_factory=Stage2Table)  # type: ignore[valid-type]
    stage3: Stage3Table = Field(default_factory=Stage3Table)  # type: ignore[valid-type]
    search: SearchTable = Field(default_factory=SearchTable)
    resources: ResourcesTable = Field(default_factory=ResourcesTable)
    logging: LoggingTable = Field(default_factory=LoggingTable)


_TABLES: dict[str, type[BaseModel]] = {
    "sweep": SweepTable,
    "stage1": Stage1Table,
    "stage2": Stage2Table,
    "stage3": Stage3Table,
    "search": SearchTable,
    "search.space": SpaceEntry,
    "search.asha": AshaTable,
    "resources": ResourcesTable,
    **{f"resources.{name}": StageResources for name in STAGE_RESOURCES},
    "logging": LoggingTable,
    "logging.wandb": WandbTable,
    "logging.mlflow": MlflowTable,
}

_TYPE_WORDS = {
    "int_type": "must be an integer",
    "finite_number": "must be a finite number",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def parse(doc: dict[str, Any]) -> SweepFile:
    """The document's typed form, or a SchemaError naming the first problem."""
    try:
        return SweepFile.model_validate(doc)
    except ValidationError as e:
        raise _refusal(e.errors(include_url=False)[0]) from None


def _refusal(err: Any) -> SchemaError:
    """One pydantic error as one line naming the section and the key."""
    loc = [str(p) for p in err["loc"] if isinstance(p, str)]
    section, rest = loc[0], loc[1:]
    if section == "search" and rest[:1] == ["space"] and len(rest) > 1:
        section, rest = "search.space", rest[1:]
    if section in ("resources", "logging") and len(rest) > 1 and f"{section}.{rest[0]}" in _TABLES:
        section, rest = f"{section}.{rest[0]}", rest[1:]
    key, detail = (rest[0] if rest else ""), rest[1:]
    kind, value = err["type"], err.get("input", UNSET)
    if kind == "extra_forbidden":
        if not key:
            known = ", ".join(SweepFile.model_fields)
            return SchemaError(section, "", f"unknown section; known sections: {known}")
        table = f"search.{key}" if section == "search" and detail else section
        known = ", ".join(k for k in _TABLES[table].model_fields if k != "enabled")
        where = f"{detail[-1]}: " if detail else ""
        return SchemaError(section, key, f"{where}unknown key; known keys: {known}")
    if kind == "missing":
        why = "; every sweep names its model, dataset and budgets" if section == "sweep" else ""
        return SchemaError(section, key, f"missing{why}")
    problem = _TYPE_WORDS.get(kind) or err["msg"].replace("Input should be", "must be")
    if detail:
        problem = f"{'.'.join(detail)}: {problem}"
    return SchemaError(section, key, problem, value)


# --- bounds that need no configs built -----------------------------------------------------


def executions(f: SweepFile) -> int:
    """Stage executions the file asks for, from its axes' lengths alone (an upper bound: equal
    work that canonical configs merge counts twice); nothing is built."""
    seeds = len(set(f.sweep.seeds))
    budgets = len(set(f.sweep.budgets or ()))
    s2 = math.prod(len(v) for v in f.stage2.model_dump(exclude_none=True).values())
    s3 = math.prod(len(v) for v in f.stage3.model_dump(exclude_none=True).values())
    trials = f.search.trials
    if f.search.mode == "optuna":
        return seeds + budgets + budgets * trials
    if f.search.mode == "optuna-pareto":
        return seeds + 2 * trials
    return seeds + seeds * budgets * s2 * (1 + s3)


def workdir_problem(path: Path, write: bool = False) -> str | None:
    """Why `path` cannot be a workdir (a file, under one or in a symlink loop; with `write`,
    a folder this process cannot write, created if missing), or None."""
    if problem := path_problem(path, folder=True):
        return problem
    if write:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as e:
            return f"cannot write in {path}: {e.strerror or e}"
    return None
