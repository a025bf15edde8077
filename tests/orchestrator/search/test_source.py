"""The Optuna modes on a real Ray: per-budget studies with ASHA, continuing a study, failing
trials a killed run left RUNNING, and the Pareto mode that samples the budget."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from support import write_optuna_sweep

from orchestrator.records.read import read_records
from orchestrator.run.driver import run_sweep
from orchestrator.search.studies import storage
from orchestrator.spec.sweep import load_sweep

# Whole sweeps on Ray (about 3.5 min on 2 cores): `make test-all` and CI run them; the search's
# logic is unit-tested without Ray in test_studies.py, test_asha.py and plan/test_dag.py.
pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]
ASHA = "[search.asha]\ngrace_period = 1\nreduction_factor = 2"


def _quiet(_line: str) -> None:
    pass


def _stage(work: Path, sweep: str, stage: int) -> list[dict]:
    return read_records(work, sweep=sweep, stage=stage).to_pylist()


@pytest.fixture(scope="module")
def per_budget(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("optuna")
    path = write_optuna_sweep(tmp / "opt.toml", tmp / "work", search_extra=ASHA)
    lines: list[str] = []
    summary = run_sweep(load_sweep(path), printer=lines.append)
    assert not summary.failed and not summary.interrupted, summary
    assert summary.executed[1] == 1 and summary.executed[2] == 2
    # The opening line counts what runs: stage 1, two stage 2s and 2 x 3 sampled trials, each
    # of which ends completed (counted as executed) or stopped (a `stopped` record).
    stage3 = len(_stage(tmp / "work", "opt", 3))
    assert sum(summary.executed.values()) - summary.executed[3] + stage3 == 9
    assert lines[0] == (
        "sweep opt: 9 stage executions planned, 0 already done, 9 to run "
        "(6 of them stage-3 trials Optuna samples as it runs)"
    )
    return tmp


def test_n_trials_per_budget_with_sampled_values_in_the_records(per_budget: Path) -> None:
    rows = _stage(per_budget / "work", "opt", 3)
    assert sorted(r["budget"] for r in rows) == [3000] * 3 + [6000] * 3
    states = {}
    for budget in (3000, 6000):
        study = optuna.load_study(
            study_name=f"opt-budget{budget}", storage=storage(per_budget / "work")
        )
        states.update({(budget, t.number): t.state for t in study.trials})
    for r in rows:
        assert r["status"] in ("completed", "stopped")
        # Stopped early by ASHA: PRUNED in the study, and never at its last epoch (of 2, where
        # ASHA's top rung sits): a trial that trained every epoch completes and keeps its model.
        state = states[(r["budget"], r["optuna_trial"])]
        if r["status"] == "stopped":
            assert state == optuna.trial.TrialState.PRUNED and r["epochs"] < 2, r
        else:
            assert state == optuna.trial.TrialState.COMPLETE, r
        assert 1.0 <= r["tau"] <= 8.0 and r["beta"] in (0.0, 1000.0)
        assert r["optuna_study"] == f"opt-budget{r['budget']}"
        assert r["val_acc"] is not None
    for budget in (3000, 6000):
        numbers = sorted(r["optuna_trial"] for r in rows if r["budget"] == budget)
        assert numbers == [0, 1, 2]
    # Stage 1 and each budget's stage 2 are shared by all the trials.
    assert len(_stage(per_budget / "work", "opt", 1)) == 1
    assert len(_stage(per_budget / "work", "opt", 2)) == 2
    # The study agrees with the records: the sampled tau of each trial.
    study = optuna.load_study(study_name="opt-budget3000", storage=storage(per_budget / "work"))
    by_number = {t.number: t.params["tau"] for t in study.trials}
    for r in rows:
        if r["budget"] == 3000:
            assert by_number[r["optuna_trial"]] == pytest.approx(r["tau"])


def test_second_run_continues_the_study(per_budget: Path) -> None:
    path = write_optuna_sweep(
        per_budget / "opt.toml", per_budget / "work", trials=4, search_extra=ASHA
    )
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert summary.executed[1] == 0 and summary.executed[2] == 0
    rows = _stage(per_budget / "work", "opt", 3)
    for budget in (3000, 6000):
        assert sorted(r["optuna_trial"] for r in rows if r["budget"] == budget) == [0, 1, 2, 3]


def test_trials_left_running_by_a_killed_run_are_failed_and_replaced(per_budget: Path) -> None:
    st = storage(per_budget / "work")
    study = optuna.load_study(study_name="opt-budget6000", storage=st)
    study.ask()  # what a run killed mid-trial leaves behind: a RUNNING trial, trial number 4
    path = write_optuna_sweep(
        per_budget / "opt.toml", per_budget / "work", trials=5, search_extra=ASHA
    )
    run_sweep(load_sweep(path), printer=_quiet)
    states = {
        t.number: t.state for t in optuna.load_study(study_name="opt-budget6000", storage=st).trials
    }
    assert states[4] == optuna.trial.TrialState.FAIL
    finished = [
        n
        for n, s in states.items()
        if s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) == 5 and 5 in finished  # the replacement got the next number


def test_pareto_mode_samples_budgets_and_reuses_stage2(tmp_path: Path) -> None:
    path = write_optuna_sweep(
        tmp_path / "p.toml",
        tmp_path / "work",
        name="front",
        mode="optuna-pareto",
        trials=5,
        budgets=[],
        epochs=1,
        space_extra="budget = {choices = [2000, 8000]}",
    )
    sweep = load_sweep(path)
    assert sweep.search.optuna.sampler == "nsga2"  # the multi-objective default, named explicitly
    lines: list[str] = []
    summary = run_sweep(sweep, printer=lines.append)
    assert not summary.failed, summary
    assert lines[0] == (
        "sweep front: 8 stage executions planned, 0 already done, 8 to run (5 of them stage-3 "
        "trials Optuna samples as it runs; up to 2 of them stage-2 runs for the budgets it "
        "draws (at most: a budget drawn again reuses its stage 2))"
    )
    rows = _stage(tmp_path / "work", "front", 3)
    assert len(rows) == 5 and {r["optuna_study"] for r in rows} == {"front-pareto"}
    budgets = {r["budget"] for r in rows}
    assert budgets <= {2000, 8000}
    assert len(_stage(tmp_path / "work", "front", 2)) == len(budgets)  # one stage 2 per budget
    study = optuna.load_study(study_name="front-pareto", storage=storage(tmp_path / "work"))
    front = study.best_trials
    assert front and all(t.values[1] in (2000, 8000) for t in front)


def test_snl_searches_stage2_of_a_per_budget_study(tmp_path: Path) -> None:
    """`method = "snl"` in an Optuna sweep: one SNL stage 2 per budget, its trials' stage-3
    records carrying the search they fine-tune."""
    path = write_optuna_sweep(tmp_path / "snl.toml", tmp_path / "work", name="osnl", trials=2,
                              budgets=[3000], epochs=1)  # fmt: skip
    path.write_text(path.read_text().replace("[stage2]\n", '[stage2]\nmethod = "snl"\n'))
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert not summary.failed and (summary.executed[1], summary.executed[2]) == (1, 1), summary
    (s2,) = _stage(tmp_path / "work", "osnl", 2)
    assert (s2["method"], s2["allocation"], s2["relu_count"]) == ("snl", "global", 3000)
    rows = _stage(tmp_path / "work", "osnl", 3)  # completed, or stopped early by ASHA
    assert sorted(r["optuna_trial"] for r in rows) == [0, 1]
    assert {(r["method"], r["allocation"], r["init"]) for r in rows} == {
        ("snl", "global", "teacher")
    }
    assert all(r["relu_count"] == 3000 for r in rows if r["status"] == "completed")
