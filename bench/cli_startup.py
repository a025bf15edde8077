"""How soon `senet` answers: `senet --help` and `senet validate sweeps/demo.toml` against
`python -c pass` (the interpreter's own start), each in a fresh process, median of --rounds,
with the number of modules each loaded and whether torch or Ray was among them. A benchmark,
not a test (tests/orchestrator/cli/test_main.py asserts on the modules, never on time).

    python bench/cli_startup.py [--rounds 15] [--python PY] [--root CHECKOUT]

--python and --root measure another checkout the same way (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "senet --help": ["-m", "orchestrator.cli", "--help"],
    "senet validate sweeps/demo.toml": ["-m", "orchestrator.cli", "validate", "sweeps/demo.toml"],
}
# The same command, reporting what it imported (stdout of the command itself is dropped).
PROBE = """\
import contextlib, io, json, runpy, sys
sys.argv = ["senet", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module("orchestrator.cli", run_name="__main__")
    except SystemExit:
        pass
top = {m.split(".")[0] for m in sys.modules}
print(json.dumps({"modules": len(sys.modules), "torch": "torch" in top, "ray": "ray" in top}))
"""


def measure(python: str, root: Path, argv: list[str], rounds: int) -> float:
    """Median wall seconds of `python argv` started fresh in `root`."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    walls = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([python, *argv], cwd=root, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def imports(python: str, root: Path, argv: list[str]) -> dict:
    if argv[0] == "-c":
        out = subprocess.run(
            [python, "-c", "import sys; print(len(sys.modules))"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return {"modules": int(out.stdout), "torch": False, "ray": False}
    out = subprocess.run(
        [python, "-c", PROBE, *argv[2:]], cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"{args.root} with {args.python}; load average {load:.2f}; median of {args.rounds}")
    print(f"{'command':<34} {'seconds':>8} {'modules':>8}  torch  ray")
    for name, argv in COMMANDS.items():
        wall = measure(args.python, args.root, argv, args.rounds)
        got = imports(args.python, args.root, argv)
        flags = f"{'yes' if got['torch'] else 'no':>5}  {'yes' if got['ray'] else 'no':>3}"
        print(f"{name:<34} {wall:>8.3f} {got['modules']:>8}  {flags}")


if __name__ == "__main__":
    main()
