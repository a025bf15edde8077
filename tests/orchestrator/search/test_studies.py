"""The Optuna studies and the source that samples them, without Ray: a real journal file,
Optuna's own ask and tell, what a killed run leaves behind, and what each ending tells the
study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from support import write_optuna_sweep

from orchestrator.search.source import OptunaSource
from orchestrator.search.studies import finished_counts, open_study, storage
from orchestrator.spec.sweep import load_sweep

State = optuna.trial.TrialState
SPACE = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}


def test_open_study_fails_stale_trials_counts_finished_and_seeds_by_length(tmp_path: Path) -> None:
    st = storage(tmp_path)
    study = optuna.create_study(study_name="s", storage=st)
    study.tell(study.ask(SPACE), 0.5)  # 0: COMPLETE
    study.tell(study.ask(SPACE).number, state=State.PRUNED)  # 1: PRUNED
    study.tell(study.ask(SPACE).number, state=State.FAIL)  # 2: FAIL
    study.ask(SPACE)  # 3: left RUNNING by a run that was killed
    lengths: list[int] = []

    def sampler(n: int) -> optuna.samplers.BaseSampler:
        lengths.append(n)
        return optuna.samplers.RandomSampler(seed=n)

    opened = open_study(storage(tmp_path), "s", ["maximize"], sampler)
    assert (opened.finished, opened.stale, lengths) == (2, 1, [4])
    states = [t.state for t in optuna.load_study(study_name="s", storage=st).trials]
    assert states == [State.COMPLETE, State.PRUNED, State.FAIL, State.FAIL]
    assert finished_counts(tmp_path, ["s", "absent"]) == {"s": 2, "absent": 0}
    again = open_study(storage(tmp_path), "s", ["maximize"], sampler)
    assert (again.finished, again.stale) == (2, 0)  # nothing left to fail


def test_a_new_study_is_created_empty(tmp_path: Path) -> None:
    opened = open_study(storage(tmp_path), "new", ["maximize", "minimize"], lambda n: None)
    assert (opened.finished, opened.stale, len(opened.study.trials)) == (0, 0, 0)
    assert len(opened.study.directions) == 2


@pytest.fixture
def source(tmp_path: Path) -> OptunaSource:
    sweep = load_sweep(write_optuna_sweep(tmp_path / "o.toml", tmp_path / "work", trials=2))
    assert sweep.search.optuna is not None
    return OptunaSource(sweep, sweep.search.optuna, max_in_flight=3)


def test_ask_samples_a_node_per_trial_and_keys_it_to_the_trial_number(
    source: OptunaSource,
) -> None:
    asked = [source.ask() for _ in range(3)]
    assert source.ask() is None  # the in-flight limit
    numbers = {}
    for item in asked:
        assert item is not None
        new, node3, prov = item
        assert [n.stage for n in new] == [1, 2, 3] and new[-1] == node3
        study = optuna.load_study(
            study_name=prov["optuna_study"], storage=storage(source.sweep.workdir)
        )
        trial = study.trials[prov["optuna_trial"]]
        assert trial.state == State.RUNNING
        assert trial.params["tau"] == pytest.approx(node3.config.tau)
        assert f"budget{node3.labels['budget']}" in prov["optuna_study"]
        numbers.setdefault(prov["optuna_study"], []).append(prov["optuna_trial"])
    # Trials spread over the two budgets, numbered from 0 in each study.
    assert sorted(sorted(v) for v in numbers.values()) == [[0], [0, 1]]


@pytest.mark.parametrize(
    ("result", "error", "state", "value"),
    [
        ({"val_acc": 0.75}, False, State.COMPLETE, 0.75),  # done, or stopped early by ASHA
        (None, True, State.FAIL, None),  # raised on every attempt
        ({"val_acc": 0.75}, True, State.FAIL, None),  # an error wins over a partial result
        ({"epoch": 1}, False, State.PRUNED, None),  # ended without the objective
    ],
)
def test_tell_records_how_the_trial_ended(
    source: OptunaSource, result: dict | None, error: bool, state: State, value: float | None
) -> None:
    item = source.ask()
    assert item is not None
    _, node3, prov = item
    source.tell(node3.key, result, error)
    trial = source.studies[node3.labels["budget"]].trials[prov["optuna_trial"]]
    assert (trial.state, trial.value) == (state, value)
    assert not source.in_flight
    source.tell(node3.key, {"val_acc": 0.1}, False)  # told twice: ignored
    trial = source.studies[node3.labels["budget"]].trials[prov["optuna_trial"]]
    assert (trial.state, trial.value) == (state, value)


def test_the_quota_counts_finished_trials_of_earlier_runs(tmp_path: Path) -> None:
    path = write_optuna_sweep(tmp_path / "o.toml", tmp_path / "work", trials=2, budgets=[3000])
    sweep = load_sweep(path)
    assert sweep.search.optuna is not None
    first = OptunaSource(sweep, sweep.search.optuna, max_in_flight=2)
    for _ in range(2):
        item = first.ask()
        assert item is not None
        first.tell(item[1].key, {"val_acc": 0.5}, False)
    assert first.exhausted() and first.ask() is None
    more = load_sweep(
        write_optuna_sweep(tmp_path / "o.toml", tmp_path / "work", trials=3, budgets=[3000])
    )
    assert more.search.optuna is not None
    second = OptunaSource(more, more.search.optuna)
    assert (second.finished, second.trials_left()) == ({"opt-budget3000": 2}, 1)
    item = second.ask()
    assert item is not None and item[2]["optuna_trial"] == 2  # numbers go on
