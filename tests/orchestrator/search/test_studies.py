"""The Optuna studies and the source that samples them, without Ray: a real journal file,
Optuna's own ask and tell, what a killed run leaves behind, and what each ending tells the
study."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.search import Searcher
from support import write_optuna_sweep

from orchestrator.plan.dag import DagSearcher
from orchestrator.search.asha import ASHA_METRIC
from orchestrator.search.source import (
    OptunaSource,
    population_size,
    startup_trials,
    study_seed,
)
from orchestrator.search.studies import (
    finished_counts,
    journal_path,
    journal_problem,
    open_study,
    storage,
)
from orchestrator.spec.optuna_settings import Dist, OptunaSettings
from orchestrator.spec.sweep import Sweep, load_sweep
from stages.store import Store

State = optuna.trial.TrialState
SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"
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
        ({"val_acc": 0.75}, False, State.COMPLETE, 0.75),  # a final or stored result
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


def _two_finished(tmp_path: Path, trials: int) -> tuple[Sweep, OptunaSource]:
    """A per-budget sweep of `trials` trials whose study has finished two."""
    path = write_optuna_sweep(tmp_path / "o.toml", tmp_path / "work", trials=trials, budgets=[3000])
    sweep = load_sweep(path)
    assert sweep.search.optuna is not None
    first = OptunaSource(sweep, sweep.search.optuna, max_in_flight=2)
    for _ in range(2):
        item = first.ask()
        assert item is not None
        first.tell(item[1].key, {"val_acc": 0.5}, False)
    return sweep, first


def test_the_quota_counts_finished_trials_of_earlier_runs(tmp_path: Path) -> None:
    _, first = _two_finished(tmp_path, trials=2)
    assert first.exhausted() and first.ask() is None
    more = load_sweep(
        write_optuna_sweep(tmp_path / "o.toml", tmp_path / "work", trials=3, budgets=[3000])
    )
    assert more.search.optuna is not None
    second = OptunaSource(more, more.search.optuna)
    assert (second.finished, second.trials_left()) == ({"opt-budget3000": 2}, 1)
    item = second.ask()
    assert item is not None and item[2]["optuna_trial"] == 2  # numbers go on


def test_sampler_sizes_follow_the_study_length() -> None:
    # Most of a short study comes from the model, never fewer than the floors.
    assert [startup_trials(n) for n in (1, 8, 16, 40, 200)] == [3, 3, 4, 10, 10]
    assert [population_size(n) for n in (1, 16, 32, 400)] == [4, 4, 8, 50]


@pytest.mark.parametrize(
    ("name", "size"), [("distill", startup_trials), ("pareto", population_size)]
)
def test_the_shipped_optuna_sweeps_sample_mostly_from_the_model(
    name: str, size: Callable[[int], int], tmp_path: Path
) -> None:
    sweep = load_sweep(SWEEPS / f"optuna-{name}.toml", workdir=tmp_path)
    assert sweep.search.optuna is not None
    trials = sweep.search.optuna.trials
    assert size(trials) < trials / 2  # most trials sampled by TPE / bred by NSGA-II


def _first_params(tmp: Path) -> dict[int | None, dict]:
    tmp.mkdir()
    sweep = load_sweep(write_optuna_sweep(tmp / "o.toml", tmp / "work", trials=2))
    assert sweep.search.optuna is not None
    source = OptunaSource(sweep, sweep.search.optuna, max_in_flight=2)
    for _ in range(2):
        assert source.ask() is not None
    return {b: s.trials[0].params for b, s in source.studies.items()}


def test_each_budget_gets_its_own_seed_the_same_on_every_rerun(tmp_path: Path) -> None:
    first, again = _first_params(tmp_path / "a"), _first_params(tmp_path / "b")
    assert first == again  # stable across reruns (hashed, not Python's salted hash())
    assert first[3000] != first[6000]  # one shared seed gave both budgets the same setting
    assert study_seed(0, 3000, 0) != study_seed(0, 6000, 0) != study_seed(0, 6000, 1)


def test_a_stopped_trial_is_pruned_with_its_last_accuracy_and_a_finished_one_completes(
    source: OptunaSource,
) -> None:
    asked = [source.ask() for _ in range(3)]
    ends = [
        ({"epoch": 1, "epochs": 2, "val_acc": 0.4, ASHA_METRIC: 0.4}, State.PRUNED, 0.4),
        ({"val_acc": 0.8, "relu_count": 3000, "stage_done": 1}, State.COMPLETE, 0.8),
        ({"val_acc": 0.7, "relu_count": 3000}, State.COMPLETE, 0.7),  # stored: sampled before
    ]
    for item, (result, state, value) in zip(asked, ends):
        assert item is not None
        _, node3, prov = item
        source.tell(node3.key, result, False)
        trial = source.studies[node3.labels["budget"]].trials[prov["optuna_trial"]]
        assert (trial.state, trial.value) == (state, value)
        if state == State.PRUNED:
            assert trial.intermediate_values == {1: 0.4}  # what TPE ranks pruned trials by


def test_stage2_bound_counts_new_budgets_the_pareto_search_may_draw(tmp_path: Path) -> None:
    def bound(trials: int, mode: str = "optuna-pareto") -> int:
        pareto = mode == "optuna-pareto"
        path = write_optuna_sweep(
            tmp_path / "p.toml", tmp_path / "work", mode=mode, trials=trials,
            budgets=[] if pareto else [3000],
            space_extra="budget = {choices = [2000, 8000]}" if pareto else "",
        )  # fmt: skip
        sweep = load_sweep(path)
        assert sweep.search.optuna is not None
        return OptunaSource(sweep, sweep.search.optuna).stage2_bound(Store(tmp_path / "store"))

    assert (bound(5), bound(1), bound(5, mode="optuna")) == (2, 1, 0)


# --- the search finds good settings: an analytic stand-in for stage 3 -------------------------
# Stage 3's accuracy is replaced by a known function of the sampled settings, peaking at OPTIMUM
# (inside the shipped space). The loop below is the orchestrator's, without Ray: the
# DagSearcher (the Tune Searcher that `senet run` hands Ray Tune) suggests nodes, its source
# asks Optuna, and each trial's result goes back through on_trial_complete to Optuna's tell.
SEEDS = 8  # enough that a lucky seed does not decide it; about a second each
OPTIMUM = {"tau": 4.0, "alpha": 0.9, "gamma": 0.1, "beta": 100.0, "lr": 0.01}


def _unit(d: Dist, value: float) -> float:
    """A setting's position in its range, 0 to 1 (on the log scale for a log range)."""
    f = math.log if d.log else float
    assert d.low is not None and d.high is not None
    return (f(value) - f(d.low)) / (f(d.high) - f(d.low))


def _distance(settings: OptunaSettings, cfg: Any) -> float:
    """How far a stage-3 config is from OPTIMUM, in unit coordinates (a wrong choice: 0.5)."""
    sq = 0.0
    for d in settings.space:
        value = cfg.optim.lr if d.name == "lr" else getattr(cfg, d.name)
        if d.choices:
            sq += 0.25 * (value != OPTIMUM[d.name])
        else:
            sq += (_unit(d, value) - _unit(d, OPTIMUM[d.name])) ** 2
    return math.sqrt(sq)


def _search(sweep: Sweep, settings: OptunaSettings) -> list[float]:
    """Run the whole search on the stand-in; the distance of each trial after TPE's start-up."""
    source = OptunaSource(sweep, settings, max_in_flight=2)
    dag = DagSearcher([], set(), sweep.workdir / "store", source)
    later: list[float] = []
    for n in range(10_000):
        config = dag.suggest(f"t{n}")
        if config == Searcher.FINISHED:
            return later
        assert isinstance(config, dict)
        node = dag.nodes[config["node"]["key"]]
        result = {"val_acc": 0.5, "relu_count": 1, "stage_done": 1}
        if node.stage == 3:
            result["val_acc"] = 1.0 - _distance(settings, node.config)
            if config["provenance"]["optuna_trial"] >= startup_trials(settings.trials):
                later.append(1.0 - result["val_acc"])
        dag.on_trial_complete(f"t{n}", result)
    raise AssertionError("the search never finished")


def test_tpe_trials_approach_the_optimum_closer_than_random_ones(tmp_path: Path) -> None:
    """The shipped per-budget sweep (its trial count, budgets and space), eight seeds: the
    trials TPE samples after its start-up land nearer the optimum than random trials do."""
    sweep = load_sweep(SWEEPS / "optuna-distill.toml", workdir=tmp_path)
    assert sweep.search.optuna is not None
    for d in sweep.search.optuna.space:  # the optimum lies inside the shipped space
        assert OPTIMUM[d.name] in d.choices if d.choices else d.low < OPTIMUM[d.name] < d.high  # type: ignore[operator]
    mean: dict[str, float] = {}
    for sampler in ("tpe", "random"):
        got = []
        for seed in range(SEEDS):
            work = tmp_path / f"{sampler}{seed}"
            settings = dataclasses.replace(sweep.search.optuna, sampler=sampler, seed=seed)
            got += _search(dataclasses.replace(sweep, workdir=work), settings)
        assert len(got) == SEEDS * len(sweep.budgets) * (
            settings.trials - startup_trials(settings.trials)
        )
        mean[sampler] = sum(got) / len(got)
    assert mean["tpe"] < 0.95 * mean["random"], mean


def _journal(work: Path, trials: int = 3) -> bytes:
    study = optuna.create_study(study_name="s", storage=storage(work))
    for _ in range(trials):
        study.tell(study.ask(SPACE), 0.5)
    return journal_path(work).read_bytes()


def _torn_then_appended(data: bytes) -> bytes:
    """A run killed mid-append, then the next run's first append landing on the torn line."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:-2]) + lines[-2][:9] + lines[-1]


def _garbled_in_the_middle(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:-2]) + b"\x00\x00garbage\n" + b"".join(lines[-2:])


def _ops_that_do_not_replay(data: bytes) -> bytes:
    return b'{"op_code": 99}\n' + data


@pytest.mark.parametrize(
    ("damage", "kept"),
    [(_torn_then_appended, 2), (_garbled_in_the_middle, 2), (_ops_that_do_not_replay, 0)],
)
def test_a_damaged_journal_heals_when_a_run_opens_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes], kept: int
) -> None:
    """Every `senet run` failed with a traceback on a torn or garbled journal, and validate
    said 0 trials done. Now validate counts the healthy trials without touching the file; the
    run keeps them, quarantines the file and says how many it kept; verify finds it."""
    bad = damage(_journal(tmp_path))
    path = journal_path(tmp_path)
    path.write_bytes(bad)
    assert journal_problem(tmp_path) is not None
    assert finished_counts(tmp_path, ["s"]) == {"s": kept} and path.read_bytes() == bad

    opened = open_study(storage(tmp_path), "s", ["maximize"], optuna.samplers.RandomSampler)
    assert opened.finished == kept
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(f"senet: warning: {path}: damaged Optuna journal (")
    [original] = Store.of_workdir(tmp_path).quarantine_dir.iterdir()
    assert line.endswith(f"kept the {kept} finished trials; moved {path} to {original}")
    assert original.read_bytes() == bad  # set aside whole: nothing lost
    opened.study.tell(opened.study.ask(SPACE), 0.9)  # and the study goes on
    assert journal_problem(tmp_path) is None
    assert finished_counts(tmp_path, ["s"]) == {"s": kept + 1}


def test_a_run_opens_its_studies_on_a_garbled_journal_and_keeps_what_finished(
    tmp_path: Path,
) -> None:
    """What `senet run` builds first (OptunaSource): on a journal garbled after two finished
    trials it goes on from those two instead of failing in Optuna."""
    sweep, _ = _two_finished(tmp_path, trials=3)
    assert sweep.search.optuna is not None
    journal = journal_path(sweep.workdir)
    journal.write_bytes(journal.read_bytes() + b'{"op_code": 4, "worker_id"\n')
    second = OptunaSource(sweep, sweep.search.optuna)
    assert (second.finished, second.trials_left()) == ({"opt-budget3000": 2}, 1)
    assert second.ask() is not None
