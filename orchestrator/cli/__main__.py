"""`python -m orchestrator.cli ARGS`: the `senet` command without the console script (tests,
the Slurm job's driver and bench/fidelity.py run it this way)."""

from __future__ import annotations

import sys

from orchestrator.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
