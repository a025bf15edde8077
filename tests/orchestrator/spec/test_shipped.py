"""orchestrator.spec.shipped: the sweep files inside the package are the clone's sweeps/."""

from __future__ import annotations

from pathlib import Path

from orchestrator.spec.shipped import DEFAULT, shipped_sweeps, summary

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_files_are_the_clones_sweeps_one_copy_each() -> None:
    shipped = shipped_sweeps()
    assert DEFAULT in shipped and list(shipped) == sorted(shipped)
    assert (ROOT / "sweeps").resolve() == ROOT / "orchestrator" / "sweeps"  # a link, no copy
    assert set(shipped) == {p.stem for p in (ROOT / "sweeps").glob("*.toml")}
    assert shipped[DEFAULT].read_text() == (ROOT / "sweeps" / "demo.toml").read_text()


def test_summary_is_the_first_comment_line() -> None:
    assert summary("\n# What it is for.\n# more\n[sweep]\n") == "What it is for."
    assert summary("[sweep]\n") == ""
