"""The layering of the whole tree: every module of stages/ and orchestrator/ imports; no import
circle among them (lazy function-level imports included, since a circle hidden in a function
still couples the two modules); stages/ imports nothing of the orchestrator (it is the bottom:
the model and its training know nothing of sweeps); the orchestrator's sub-packages stack as
the pipeline; only the CLI imports the CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

TREE = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "orchestrator")
# The pipeline, bottom to top: a package may import only those before it (errors.py and
# slurm_env.py, modules of the top package, are below them all).
LAYERS = (
    "errors",
    "slurm_env",
    "spec",
    "plan",
    "records",
    "search",
    "run",
    "analysis",
    "slurm",
    "cli",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(TREE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    _module_name(p): p for package in PACKAGES for p in sorted((TREE / package).rglob("*.py"))
}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The modules of the tree `name` imports anywhere in its file (top level, in functions,
    under TYPE_CHECKING), with the packages each import executes on the way."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets.add(source)
            # `from pkg import mod` imports the module pkg.mod when there is one.
            targets.update(f"{source}.{alias.name}" for alias in node.names)
    found: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            prefix = ".".join(parts[:i])
            if prefix in MODULES and prefix != name:
                found.add(prefix)
    return found


GRAPH: dict[str, set[str]] = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> str | None:
    """The orchestrator sub-package (or top-level module) a module belongs to; None for the
    top package and for stages/."""
    parts = name.split(".")
    return parts[1] if parts[0] == "orchestrator" and len(parts) > 1 else None


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_lazy_circle() -> None:
    """The check itself: a circle closed by a function-level import is one."""
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_import_cycle_among_modules() -> None:
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_stages_import_nothing_of_the_orchestrator() -> None:
    """stages/ runs a stage from a config alone (`senet pipeline`, a process pool, a notebook):
    an import of the orchestrator there would pull Ray, Tune and the sweep schema under it."""
    upward = sorted(
        f"{src} imports {dst}"
        for src, dsts in GRAPH.items()
        if src.split(".")[0] == "stages"
        for dst in dsts
        if dst.split(".")[0] == "orchestrator"
    )
    assert not upward, "\n".join(upward)


def test_subpackages_stack_as_the_pipeline() -> None:
    """A sub-package imports only the layers before it in LAYERS: spec never imports search,
    records never import the plan, nothing but cli imports cli."""
    assert {_layer(n) for n in MODULES} - {None} == set(LAYERS), "LAYERS names every package"
    upward = sorted(
        f"{src} imports {dst}"
        for src, dsts in GRAPH.items()
        for dst in dsts
        if _layer(src) and _layer(dst) and LAYERS.index(_layer(dst)) > LAYERS.index(_layer(src))
    )
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_only_the_cli_imports_the_cli() -> None:
    offenders = sorted(
        f"{src} imports {dst}"
        for src, dsts in GRAPH.items()
        for dst in dsts
        if _layer(dst) == "cli" and _layer(src) != "cli"
    )
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if _is_package(n) and n.startswith("orchestrator"))
)
def test_packages_say_their_job_and_reexport_nothing(name: str) -> None:
    """Each package's __init__ is a docstring: its job, found by its folder name, and no
    re-exports (importers name the module that holds what they use)."""
    tree = ast.parse(MODULES[name].read_text())
    assert ast.get_docstring(tree), f"{name}/__init__.py needs a docstring saying its job"
    assert len(tree.body) == 1, f"{name}/__init__.py holds more than its docstring"
