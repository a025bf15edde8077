"""SlurmRequest is the one home of `senet submit`'s Slurm options: the command line is built
from its fields, and its rules refuse a bad value with the flag the user typed."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from orchestrator.errors import UserError
from orchestrator.slurm.request import SlurmRequest

FIELDS = dataclasses.fields(SlurmRequest)
COUNTS = [f for f in FIELDS if f.metadata["minimum"] is not None]
TEXTS = [f for f in FIELDS if f.metadata["minimum"] is None]


def _parse(*argv: str) -> SlurmRequest:
    parser = argparse.ArgumentParser()
    SlurmRequest.add_arguments(parser)
    return SlurmRequest.from_args(parser.parse_args(list(argv)))


def test_flags_reach_the_request_and_unset_ones_keep_its_defaults() -> None:
    got = _parse("--time", "5", "--signal-delay", "30", "--partition", "gpu", "--max-requeues", "0")
    assert got == SlurmRequest(time_min=5, signal_delay_s=30, partition="gpu", max_requeues=0)
    assert _parse() == SlurmRequest()
    got.check()  # what the command line accepts, the rules accept


@pytest.mark.parametrize("field", COUNTS, ids=lambda f: f.name)
def test_a_count_below_its_minimum_is_refused_naming_its_flag(field: dataclasses.Field) -> None:
    low = field.metadata["minimum"]
    request = dataclasses.replace(SlurmRequest(time_min=600), **{field.name: low - 1})
    with pytest.raises(UserError) as e:
        request.check()
    assert str(e.value) == f"{field.metadata['flag']} must be >= {low}, got {low - 1}"


@pytest.mark.parametrize("field", TEXTS, ids=lambda f: f.name)
def test_a_control_character_in_a_text_option_is_refused(field: dataclasses.Field) -> None:
    request = dataclasses.replace(SlurmRequest(), **{field.name: "gpu\n#SBATCH --x"})
    with pytest.raises(UserError, match=f"^{field.metadata['flag']} 'gpu\\\\n#SBATCH"):
        request.check()


def test_a_signal_delay_that_leaves_no_run_time_is_refused() -> None:
    SlurmRequest(time_min=3, signal_delay_s=120).check()
    with pytest.raises(UserError, match="--signal-delay 121 leaves the job no time"):
        SlurmRequest(time_min=3, signal_delay_s=121).check()


def test_cpus_must_split_evenly_over_the_ray_nodes_of_a_slurm_node() -> None:
    SlurmRequest(cpus_per_node=4, raylets_per_node=2).check()
    with pytest.raises(UserError, match="multiple of --raylets-per-node"):
        SlurmRequest(cpus_per_node=3, raylets_per_node=2).check()
