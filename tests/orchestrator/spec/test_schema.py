"""The sweep schema as `senet validate` meets it: every wrong type or value is exit 2 and one
line `FILE: [section] key: problem (got VALUE)`, before anything starts; the bounds (grid
size, file size) are refused in well under a second. No Ray, no training."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.spec.schema import MAX_FILE_BYTES
from orchestrator.spec.sweep import load_sweep
from stages.catalog import relu_total
from stages.config import OptimConfig, Stage1Config, Stage2Config, Stage3Config

BASE = '[sweep]\nmodel = "resnet20"\ndataset = "digits"\nbudgets = [1000]\n'


def _validate(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str]:
    code = main(["validate", str(path), *extra])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


# (the file's text, the `[section] key` it must name, a piece of the problem)
CASES = [
    ("[stage1]\nepochs = 0\n", "[stage1] epochs", "must be >= 1 (got 0)"),
    ("[stage3]\nepochs = -1\n", "[stage3] epochs", "must be >= 1 (got -1)"),
    ("[stage2]\nepochs = 2.5\n", "[stage2] epochs", "must be an integer (got 2.5)"),
    ('[stage3]\ntau = "hot"\n', "[stage3] tau", "must be a number (got 'hot')"),
    ("[stage3]\ntau = [2.0, 0.0]\n", "[stage3] tau", "must be > 0 (got 0.0)"),
    ('[stage2]\nlr = "fast"\n', "[stage2] lr", "must be a number (got 'fast')"),
    ('[stage2]\nce_weight = "half"\n', "[stage2] ce_weight", "must be a number (got 'half')"),
    ("[stage2]\nce_weight = 1.5\n", "[stage2] ce_weight", "must be in [0, 1] (got 1.5)"),
    ("[stage2]\ntau = true\n", "[stage2] tau", "must be a number (got True)"),
    ("[stage3]\naugment = 0\n", "[stage3] augment", "(got 0)"),
    ("[stage1]\nmilestones = 5\n", "[stage1] milestones", "must be a list (got 5)"),
    ("[stage3]\nmilestones = [0.5, 2.0]\n", "[stage3] milestones", "must be in (0, 1] (got 2.0)"),
    ("[stage1]\nlr = [0.1, 0.2]\n", "[stage1] lr", "lists are not grid axes in [stage1]"),
    (
        '[stage2]\nmethod = "magic"\n',
        "[stage2] method",
        "must be one of: taylor-ema, activation-ema",
    ),
    ('[stage2]\nallocation = "global"\n', "[stage2] allocation", "only with method snl"),
    ('[resources]\ncpus = "x"\n', "[resources] cpus", "must be a number (got 'x')"),
    ('[resources]\nretries = "x"\n', "[resources] retries", "must be an integer (got 'x')"),
    ("[resources]\nretries = true\n", "[resources] retries", "must be an integer (got True)"),
    ("[resources]\nmax_concurrent = 2.5\n", "[resources] max_concurrent", "must be an integer"),
    ("[resources]\ngpus = -1\n", "[resources] gpus", "must be >= 0 (got -1)"),
    ("[resources]\ngpus = 1.5\n", "[resources] gpus", "a fraction below 1 or a whole number"),
    ("[resources.stage1]\ngpus = -1\n", "[resources.stage1] gpus", "must be >= 0 (got -1)"),
    ("[resources.stage3]\ngpus = 2.5\n", "[resources.stage3] gpus", "or a whole number"),
    ("[resources.stage2]\ncpus = 0\n", "[resources.stage2] cpus", "must be > 0 (got 0)"),
    ('[resources.stage2]\ncpus = "1"\n', "[resources.stage2] cpus", "must be a number (got '1')"),
    ("[resources.stage1]\ngpus = true\n", "[resources.stage1] gpus", "must be a number (got True)"),
    (
        "[resources.stage1]\ngpu = 1\n",
        "[resources.stage1] gpu",
        "unknown key; known keys: cpus, gpus",
    ),
    ("[resources.stage4]\ngpus = 1\n", "[resources] stage4", "unknown key; known keys: cpus, gpus"),
    ("[resources]\nstage1 = 1\n", "[resources] stage1", "must be a table (got 1)"),
    ("[search]\ntrials = 4\n", "[search] trials", "only for mode optuna or optuna-pareto"),
    ("[stage4]\n", "[stage4]", "unknown section"),
    ('[logging.wandb]\ngroup = "g"\n', "[logging.wandb] project", "missing"),
    ("[logging.wandb]\nproject = 5\n", "[logging.wandb] project", "must be a string (got 5)"),
    (
        '[logging.mlflow]\nuri = "x"\n',
        "[logging.mlflow] uri",
        "unknown key; known keys: tracking_uri, experiment_name, tags",
    ),
    ("[logging.mlflow]\ntags = {a = 1}\n", "[logging.mlflow] tags", "a: must be a string (got 1)"),
    ("[logging.tensorboard]\n", "[logging] tensorboard", "unknown key; known keys: wandb, mlflow"),
    ('[logging]\nwandb = "p"\n', "[logging] wandb", "must be a table (got 'p')"),
]
SWEEP_CASES = [  # a [sweep] key replaced (or added) in BASE
    ('model = ["resnet20"]', "[sweep] model", "must be a string (got ['resnet20'])"),
    ('model = "resnet99"', "[sweep] model", "must be one of: resnet18, resnet20"),
    ("workdir = 5", "[sweep] workdir", "must be a string (got 5)"),
    ('workdir = "runs/a\\u0007b"', "[sweep] workdir", "without control characters"),
    ('val_fraction = "x"', "[sweep] val_fraction", "must be a number (got 'x')"),
    ("val_fraction = 1.0", "[sweep] val_fraction", "must be in (0, 1) (got 1.0)"),
    ("limit = true", "[sweep] limit", "must be an integer (got True)"),
    ("limit = 0", "[sweep] limit", "must be >= 1 (got 0)"),
    ("seeds = [true]", "[sweep] seeds", "must be an integer (got True)"),
    ("seeds = -1", "[sweep] seeds", "must be a list (got -1)"),
    ("budgets = [1.0]", "[sweep] budgets", "1.0 is ambiguous"),
    ('budgets = ["half"]', "[sweep] budgets", "must be a number (got 'half')"),
    ("budgets = [true]", "[sweep] budgets", "must be a number (got True)"),
    (f'name = "{"n" * 250}"', "[sweep] name", "must be 1 to 64 letters"),
    ('name = "a/b"', "[sweep] name", "must be 1 to 64 letters"),
    ("include_stem = 1", "[sweep] include_stem", "must be true or false (got 1)"),
]


def _float_keys() -> list[tuple[str, str]]:
    """(section, key) of every float setting a stage section takes."""
    keys = []
    for section, cls in (
        ("stage1", Stage1Config),
        ("stage2", Stage2Config),
        ("stage3", Stage3Config),
    ):
        for f in dataclasses.fields(cls) + dataclasses.fields(OptimConfig):
            if f.type in ("float", "tuple[float, ...]"):
                keys.append((section, f.name))
    return sorted(set(keys))


NON_FINITE = [  # inf passed `lr > 0`, and the model trained on a NaN loss to a `completed` record
    (
        f"[{section}]\n{key} = {f'[{v}]' if key == 'milestones' else v}\n",
        f"[{section}] {key}",
        "must be a finite number",
    )
    for section, key in _float_keys()
    for v in ("inf", "-inf", "nan")
]
FINITE_CASES = [  # numbers the schema accepted that failed after Ray started, or trained on NaN
    ("val_fraction = nan", "[sweep] val_fraction", "must be a finite number"),
    ("budgets = [inf]", "[sweep] budgets", "must be a finite number (got inf)"),
    ("budgets = [nan]", "[sweep] budgets", "must be a finite number"),
    ("seeds = [1000000000000000000000000000000]", "[sweep] seeds", "below 2^63"),
    ("seeds = [9223372036854775808]", "[sweep] seeds", "below 2^63"),
]
RESOURCE_CASES = [
    ("[resources]\ncpus = 1e-300\n", "[resources] cpus", "at least 0.0001 (Ray's precision)"),
    ("[resources]\ncpus = inf\n", "[resources] cpus", "must be a finite number"),
    ("[resources]\ncpus = 1e200\n", "[resources] cpus", "must be at most 1e+14"),
    ("[resources.stage2]\ngpus = 0.00001\n", "[resources.stage2] gpus", "at least 0.0001"),
    ("[resources]\ngpus = nan\n", "[resources] gpus", "must be a finite number"),
    ("[search]\nseed = 100000000000000000000\n", "[search] seed", "below 2^63"),
    ("[stage2]\nepochs = 100000000000000000000\n", "[stage2] epochs", "below 2^63"),
]


def _sweep_with(line: str) -> str:
    key = line.split("=")[0].strip()
    kept = [x for x in BASE.splitlines() if not x.startswith(f"{key} =")]
    return "\n".join(kept) + f"\n{line}\n"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [(BASE + t, w, p) for t, w, p in CASES]
    + [(_sweep_with(t), w, p) for t, w, p in SWEEP_CASES + FINITE_CASES]
    + [(BASE + t, w, p) for t, w, p in RESOURCE_CASES + NON_FINITE]
    + [
        ("sweep = 5\n", "[sweep]", "must be a table (got 5)"),
        ('resources = "x"\n' + BASE, "[resources]", "must be a table (got 'x')"),
        ("search = 5\n" + BASE, "[search]", "must be a table (got 5)"),
    ],
)
def test_bad_value_is_exit_2_and_one_line_naming_file_section_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, err = _validate(capsys, path)
    line = _one_line(err)
    assert code == 2
    assert line.startswith(f"senet validate: error: {path}: {where}: "), line
    assert problem in line


def test_refusals_of_the_file_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(BASE.encode() + b"# caf\xe9\n")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    for path, problem in (
        (latin1, "not UTF-8 text (byte 0xe9"),
        (folder, "a folder, not a sweep file"),
        (tmp_path / "none.toml", "no such sweep file"),
    ):
        code, err = _validate(capsys, path)
        assert code == 2 and f"error: {path}: {problem}" in _one_line(err)


def test_stage_rules_are_the_stages_own(tmp_path: Path) -> None:
    """A direct Python caller of the stages meets the very rule a sweep file does."""
    import dataclasses

    from stages.config import ConfigError, Stage3Config, check

    with pytest.raises(ConfigError) as info:
        check(dataclasses.replace(Stage3Config(), tau=-1.0))
    path = tmp_path / "s.toml"
    path.write_text(BASE + "[stage3]\ntau = -1.0\n")
    with pytest.raises(ValueError) as sweep_info:
        load_sweep(path)
    assert str(sweep_info.value) == f"{path}: [stage3] {info.value}"


# --- bounds ---------------------------------------------------------------------------------

# 20 budgets x 10 x 10 stage-2 settings x (1 + 10 x 10 stage-3 settings) + 1: 202,001 executions
HUGE = (
    "[sweep]\nmodel = 'resnet20'\ndataset = 'digits'\n"
    f"budgets = {list(range(100, 2100, 100))}\n"
    f"[stage2]\ntau = {[float(t) for t in range(1, 11)]}\nlr = {[0.01 * i for i in range(1, 11)]}\n"
    f"[stage3]\ntau = {[float(t) for t in range(1, 11)]}\nbeta = {[float(b) for b in range(10)]}\n"
)


def test_a_grid_over_the_cap_is_refused_in_under_a_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(HUGE)
    relu_total("resnet20", "digits")  # the catalog's import: not the schema's time
    start = time.perf_counter()
    code, err = _validate(capsys, path)
    assert time.perf_counter() - start < 1.0
    line = _one_line(err)
    assert code == 2 and f"{path}: [resources] max_executions:" in line
    assert "202,001 stage executions" in line and "(got 100000)" in line


def test_the_cap_is_raisable_in_resources(tmp_path: Path) -> None:
    path = tmp_path / "wide.toml"
    # 1 + 1 x 3 budgets x 2 x (1 + 4) = 31 executions: over a cap of 30, under one of 31
    text = BASE.replace("[1000]", "[1000, 2000, 3000]")
    text += "[stage2]\ntau = [1.0, 2.0]\n[stage3]\ntau = [1.0, 2.0, 3.0, 4.0]\n"
    path.write_text(text + "[resources]\nmax_executions = 30\n")
    with pytest.raises(ValueError, match="31 stage executions"):
        load_sweep(path)
    path.write_text(text + "[resources]\nmax_executions = 31\n")
    assert load_sweep(path).resources.max_executions == 31


def test_a_file_over_1_mb_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.toml"
    big.write_text(BASE + "#" * MAX_FILE_BYTES + "\n")
    start = time.perf_counter()
    code, err = _validate(capsys, big)
    assert time.perf_counter() - start < 1.0
    assert code == 2 and f"{big}: over 1,000,000 bytes" in _one_line(err)


def test_a_sweep_path_that_is_no_regular_file_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO as the sweep file hung `senet validate` and `senet run` (nothing ever writes
    to it); a device is refused the same way, before it is opened."""
    fifo = tmp_path / "s.toml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        code, err = _validate(capsys, path)
        assert code == 2
        assert _one_line(err) == (
            f"senet validate: error: {path}: not a regular file (a FIFO, socket or device); "
            "give the sweep file itself"
        )


def test_workdir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    plain = tmp_path / "plain"
    plain.write_text("x")
    for workdir in (plain, plain / "under"):
        code, err = _validate(capsys, path, "--workdir", str(workdir))
        assert code == 2 and _one_line(err) == (
            f"senet validate: error: --workdir: {plain} is a file, not a folder"
        )
    path.write_text(BASE + f'workdir = "{plain}"\n')
    code, err = _validate(capsys, path)
    assert code == 2 and f"{path}: [sweep] workdir: {plain} is a file" in _one_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_run_refuses_an_unwritable_workdir_before_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["run", str(path), "--workdir", str(locked / "work")])
        line = _one_line(capsys.readouterr().err)
    finally:
        locked.chmod(0o700)
    assert code == 2 and line.startswith("senet run: error: --workdir: cannot write in")


def test_run_refuses_a_workdir_it_cannot_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc refuses new folders even to root: the unwritable case on any machine."""
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    code = main(["run", str(path), "--workdir", "/proc/senet-work"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("senet run: error: --workdir: cannot write in")


def test_the_logging_section_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "log.toml"
    path.write_text(
        BASE + '[logging.wandb]\nproject = "p"\n[logging.mlflow]\nexperiment_name = "e"\n'
    )
    sweep = load_sweep(path)
    assert sweep.logging is not None and sweep.logging.wandb is not None
    assert sweep.logging.wandb.project == "p" and sweep.logging.mlflow.experiment_name == "e"
    path.write_text(BASE)
    assert load_sweep(path).logging.wandb is None


def test_the_smallest_ray_share_and_a_large_seed_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        _sweep_with(f"seeds = [{2**63 - 1}]") + "[resources]\ncpus = 0.0001\ngpus = 0.0001\n"
    )
    sweep = load_sweep(path)
    assert tuple(sweep.seeds) == (2**63 - 1,)


def test_a_workdir_in_a_symlink_loop_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Path.resolve raised `RuntimeError: Symlink loop` out of validate, run and status."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    inside = tmp_path / "loop" / "w"
    (tmp_path / "s.toml").write_text(_sweep_with(f'workdir = "{inside}"'))
    commands = [["validate"], ["run"], ["validate", "--workdir", str(inside)]]
    for argv in [[c[0], str(tmp_path / "s.toml"), *c[1:]] for c in commands] + [
        ["status", str(inside)]
    ]:
        assert main(argv) == 2
        assert f"{inside} is in a loop of symbolic links" in _one_line(capsys.readouterr().err)
