"""Hydra-style overrides: `stage3.tau=[2.0,4.0]` on the command line changes the parsed sweep
document before the schema sees it, so an override is checked by exactly the rules a file is
(orchestrator/spec/schema.py), and a refusal names the override rather than the file.

A key is dotted TOML bare keys (`sweep.budgets`, `search.space.tau`); a value is a TOML value
(`2`, `4.0`, `[0.05, 0.1]`, `"cifar10"`, `{low = 1.0, high = 8.0}`), or a bare word taken as a
string (`sweep.dataset=digits`), as Hydra does. An override replaces the whole value, a list
included, and creates missing tables. The overrides of a run are kept in the workdir
(`record_overrides`) so that its records can be traced back to the settings that made them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SweepError
from orchestrator.spec.schema import SchemaError
from stages.artifacts import atomic_write_bytes

KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
BARE_WORD = re.compile(r"[^\s\"'\[\]{}=,#]+")  # a string the user did not quote
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FOLDER = "overrides"  # <workdir>/overrides/<run_id>.json: what a run changed


class OverrideError(SweepError):
    """A malformed override: one line naming it."""


@dataclass(frozen=True)
class Override:
    """One `key=value`: the dotted path, the parsed TOML value, and the text as given."""

    path: tuple[str, ...]
    value: Any
    text: str

    @property
    def where(self) -> tuple[str, str]:
        """(section, key) as SchemaError names them: [search.space] is a section of its own."""
        p = self.path
        if p[:2] == ("search", "space") and len(p) > 2:
            return "search.space", p[2]
        return p[0], (p[1] if len(p) > 1 else "")


def parse_override(text: str) -> Override:
    """`key=value` as an Override, or OverrideError naming the text and what is wrong."""
    if _CONTROL.search(text):
        raise OverrideError(f"override {text!r}: has a control character; give one line")
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq:
        raise OverrideError(f"override {text}: expected KEY=VALUE, e.g. stage3.epochs=2")
    if not KEY.fullmatch(key):
        raise OverrideError(
            f"override {text}: key {key!r} must be dotted names of letters, digits, '_' or '-', "
            "e.g. stage3.tau"
        )
    raw = raw.strip()
    if not raw:
        raise OverrideError(f"override {text}: no value after '='")
    return Override(tuple(key.split(".")), _value(raw, text), text)


def _value(raw: str, text: str) -> Any:
    try:
        doc = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError as e:
        if BARE_WORD.fullmatch(raw):
            return raw
        raise OverrideError(f"override {text}: not a TOML value ({e})") from None
    except RecursionError:
        raise OverrideError(f"override {text}: not a TOML value (nested too deeply)") from None
    if set(doc) != {"v"}:  # `1 x = 2` cannot get here (no newline), but be sure
        raise OverrideError(f"override {text}: one value only")
    return doc["v"]


def parse_overrides(texts: Iterable[str]) -> list[Override]:
    """Every override, parsed; the same key twice is refused (which one was meant?)."""
    out: list[Override] = []
    seen: dict[tuple[str, ...], str] = {}
    for text in texts:
        o = parse_override(text)
        if o.path in seen:
            raise OverrideError(
                f"override {text}: {'.'.join(o.path)} is also set by {seen[o.path]}"
            )
        seen[o.path] = text
        out.append(o)
    return out


def apply_overrides(doc: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the parsed sweep document with the overrides set (tables created as needed).
    Only descending into a value that is not a table is refused here; every value rule is
    the schema's."""
    out = copy.deepcopy(doc)
    for o in overrides:
        table = out
        for i, part in enumerate(o.path[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(o.path[: i + 1])
                raise OverrideError(
                    f"override {o.text}: {where} is a value ({nxt!r}), not a table to set keys in"
                )
            table = nxt
        table[o.path[-1]] = o.value
    return out


def blame(error: SchemaError, overrides: Sequence[Override]) -> Override | None:
    """The override a schema refusal is about: the one setting its section and key (or, for a
    refusal of a whole section, the first setting anything in it); None: the file's."""
    for o in overrides:
        if o.where == (error.section, error.key):
            return o
    if not error.key:
        return next((o for o in overrides if o.where[0] == error.section), None)
    return None


def record_overrides(
    workdir: Path, run_id: str, sweep_file: Path | None, overrides: Sequence[str]
) -> Path | None:
    """Keep a run's overrides as <workdir>/overrides/<run_id>.json (records carry run_id);
    nothing is written for a run without any. Returns the file."""
    if not overrides:
        return None
    path = Path(workdir) / FOLDER / f"{run_id}.json"
    entry = {
        "run_id": run_id,
        "sweep_file": str(sweep_file) if sweep_file is not None else None,
        "overrides": list(overrides),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(path, json.dumps(entry, indent=2).encode())
    return path
