"""pyproject.toml and constraints.txt: dependencies declared as a library declares them
(ranges an existing environment can satisfy), the tested set pinned exactly beside them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    lists = [PROJECT["dependencies"], *(PROJECT["optional-dependencies"][e] for e in extras)]
    reqs = [Requirement(r) for group in lists for r in group]
    return [r for r in reqs if canonicalize_name(r.name) != "senet-sweep"]


def test_dependencies_are_ranges_from_the_tested_version_to_the_next_major() -> None:
    pins = _pins()
    for req in _requirements("demo", "analysis", "plot"):
        ops = {s.operator: s.version for s in req.specifier}
        assert set(ops) == {">=", "<"}, f"{req}: a range, not a pin"
        assert ops[">="] == pins[canonicalize_name(req.name)], f"{req}: lower bound is not tested"
        assert int(ops["<"]) == int(ops[">="].split(".")[0]) + 1, f"{req}: not the next major"


def test_the_constraints_satisfy_every_requirement_and_leave_the_project_out() -> None:
    pins = _pins()
    assert "senet-sweep" not in pins
    for req in _requirements("dev", "demo", "analysis", "plot"):
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), req


def test_the_heavy_optional_parts_are_extras() -> None:
    core = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert not core & {"scikit-learn", "pandas", "duckdb", "matplotlib", "torchvision"}
    assert PROJECT["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT")
