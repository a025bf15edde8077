"""The sweep files that ship inside the package (orchestrator/sweeps/; the clone's sweeps/
is a link to that folder, so each file has one copy). `senet init` writes one out, so the
quick start works from any folder after `pip install`, with no clone."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

DEFAULT = "demo"


def shipped_sweeps() -> dict[str, Traversable]:
    """Each shipped sweep file by name (its file name without .toml), sorted."""
    folder = files("orchestrator") / "sweeps"
    found = {p.name.removesuffix(".toml"): p for p in folder.iterdir() if p.name.endswith(".toml")}
    return dict(sorted(found.items()))


def summary(text: str) -> str:
    """A sweep file's first comment line: what it is for."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
