"""Every shell and Python block of README.md and docs/ runs, so a snippet that stops working
fails here (README, "The code blocks of these pages", says what the markers mean).

The blocks run in file order from one scratch folder per module: the shipped sweep files in
sweeps/, demo.toml cut to one epoch per stage (two budgets, one temperature), and that demo's workdir, run once here, so the
blocks that read records, export or plot have something real to read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.spec.shipped import shipped_sweeps

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"shell", "sh", "bash", "console", "python"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^<!-- (skip|file): (.+) -->$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None = None  # why it is not run
    file: str | None = None  # save it as this file instead of running it

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    """The fenced blocks of one page with the marker on the line before each, if any."""
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        kind, value = marker.groups() if marker else (None, None)
        found.append(
            Block(
                page,
                i + 1,
                lang,
                body,
                value if kind == "skip" else None,
                value if kind == "file" else None,
            )
        )
        i = end + 1
    return found


BLOCKS = [b for p in PAGES for b in page_blocks(p) if b.lang in RUN or b.file]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the blocks run in, with sweeps/ and a finished (one-epoch) demo workdir."""
    folder = tmp_path_factory.mktemp("docs")
    sweeps = folder / "sweeps"
    sweeps.mkdir()
    for name, source in shipped_sweeps().items():
        text = source.read_text()
        if name == "demo":  # seconds, not minutes: 1 + 2 + 2 executions of one epoch
            text = re.sub(r"(?m)^epochs = \d+", "epochs = 1", text)
            text = re.sub(r"(?m)^budgets = .*$", "budgets = [1500, 3000]", text)
            text = re.sub(r"(?m)^tau = .*$", "tau = [4.0]", text)
        (sweeps / f"{name}.toml").write_text(text)
    _shell("senet run sweeps/demo.toml", folder)
    return folder


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _shell(text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, (
        f"{text}\nexit {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
    )
    return out


def _console(text: str, cwd: Path) -> None:
    """Each `$ ` line runs; the lines under it are what it must print (stdout and stderr)."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    assert steps, "a console block shows at least one `$ ` command"
    for command, shown in steps:
        out = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True
        )
        printed = (out.stdout + out.stderr).splitlines()
        assert printed == shown, f"$ {command}"
        assert (out.returncode != 0) == any("error:" in s for s in shown), f"$ {command}"


@pytest.mark.slow  # the scratch folder's demo is a whole sweep on Ray (about 35 s)
@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_block_runs(block: Block, scratch: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    if block.file:
        (scratch / block.file).write_text(block.text)
    elif block.lang == "console":
        _console(block.text, scratch)
    elif block.lang == "python":
        out = subprocess.run(
            [sys.executable, "-c", block.text],
            cwd=scratch,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    else:
        _shell(block.text, scratch)


def test_the_parser_sees_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- skip: needs Slurm -->\n```shell\nsbatch x\n```\n- item\n  ```\n  out\n  ```\n"
        "<!-- file: a.toml -->\n```toml\nx = 1\n```\n```python\nprint(1)\n```\n"
    )
    got = [(b.lang, b.text, b.skip, b.file) for b in page_blocks(page)]
    assert got == [
        ("shell", "sbatch x\n", "needs Slurm", None),
        ("", "out\n", None, None),
        ("toml", "x = 1\n", None, "a.toml"),
        ("python", "print(1)\n", None, None),
    ]


def test_every_page_has_its_blocks_collected() -> None:
    assert {b.page for b in BLOCKS} >= {ROOT / "README.md"}
    assert any(b.lang == "python" and not b.skip for b in BLOCKS)
    assert shutil.which("bash"), "the shell blocks run in bash"
