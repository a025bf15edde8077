"""How the suite splits over two pytest-xdist workers (.ci/run's default; `make test-all
PARALLEL="-n 2 --dist loadfile"`, else serial): by test file, so that a module's fixtures (a
finished sweep, a started Ray) are built once, and the Slurm tests first. Those mostly wait on Slurm (time windows, the hold
of a requeued job), so the rest of the suite runs meanwhile; the local Slurm has one node, so
their jobs queue there rather than run side by side. (`--dist loadgroup` would need xdist to
rename test ids, which it cannot do under pytest 9: the groups are silently ignored.)"""

from __future__ import annotations

import os

import pytest

# One torch thread in the test process and every process it starts (Ray trials set theirs
# from their CPU grant), serial or under xdist. Measured: two stage tests of two threads each
# on two cores took 300 s side by side, 47 s one after the other, 43 s side by side with one
# thread each; OpenMP's spin-waiting threads fight whatever else keeps the cores busy, so a
# two-thread suite crawls on a loaded machine. The tests check behaviour, not speed, and
# their data is tiny. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray starts its worker processes (every trial) at niceness 15: beside anything else that
# keeps the cores busy at niceness 0 they crawl (an epoch of 0.1 s took 10 s). On two cores
# loaded by two busy loops the suite took 28 min with that, most of it Ray tests waiting for
# CPU. The tests check behaviour, not priority: their Ray workers run at the suite's own
# niceness (inherited by every Ray they start, on Slurm too).
os.environ.setdefault("RAY_worker_niceness", "0")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)  # stable: Slurm first
