"""`senet submit` on a real multi-host Slurm (slurm/local-cluster.sh up --nodes 3; .ci/run
starts it): a sweep as one job holding a Ray cluster over three hosts, a host lost mid-sweep,
cancel and resubmit, requeue on a time limit, and refusal of an impossible request. tests/orchestrator/slurm/conftest.py skips the `slurm` ones without a
Slurm. Unmarked: what is refused before anything reaches Slurm (control characters in what
the sbatch script holds, a damaged slurm/current.json, a job id that is not one)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import subprocess_env, tune_reports, wait_while_running, write_sweep

from orchestrator.records.read import read_records
from orchestrator.records.write import results_dir

SENET = [sys.executable, "-m", "orchestrator.cli"]
ROOT = Path(__file__).resolve().parents[3]


def senet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        SENET + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=ROOT,
    )


def _state(job_id: str) -> str:
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"], capture_output=True, text=True
    )
    return (out.stdout.split() or ["UNKNOWN"])[0]


def _records(work: Path, sweep: str) -> list[dict]:
    return read_records(work, sweep=sweep).to_pylist()


def _plan_keys(path: Path, *overrides: str, workdir: Path | None = None) -> list[str]:
    from orchestrator.plan.plan import build_plan
    from orchestrator.spec.sweep import load_sweep

    return sorted(build_plan(load_sweep(path, workdir, list(overrides))).nodes)


@pytest.mark.slurm
def test_the_demo_sweep_on_three_hosts(tmp_path: Path) -> None:
    """`senet submit sweeps/demo.toml --nodes 3 --wait` on the multi-host local Slurm: one job,
    a Ray cluster of three hosts (each its own network, hostname and /tmp), trials on more
    than one of them, and exactly one record per planned execution."""
    work = tmp_path / "work"
    demo = ROOT / "sweeps" / "demo.toml"
    short = ["stage1.epochs=2", "stage2.epochs=2", "stage3.epochs=4"]
    out = senet("submit", str(demo), *short, "--workdir", str(work), "--nodes", "3", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = out.stdout.split("submitted Slurm job ")[1].split(";")[0]
    assert "Ray: 3 nodes, 3 CPUs" in out.stdout, out.stdout
    assert "Ray head at 198.18.0.1" in out.stdout  # a host's address, not 127.0.0.1
    rows = _records(work, "demo")
    assert sorted(r["key"] for r in rows) == _plan_keys(demo, *short, workdir=work)
    assert {r["status"] for r in rows} == {"completed"}
    hosts = {r["hostname"] for r in rows}
    assert len(hosts) >= 2 and hosts <= {"node1", "node2", "node3"}, hosts
    assert {r["slurm_job_id"] for r in rows} == {job_id}
    # The generated sbatch script asks for what we said.
    script = next((work / "slurm").glob(f"*/{job_id}_submission.sh")).read_text()
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --no-kill",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --open-mode=append",
    ):
        assert line in script, line
    # Every line is a directive, a comment or one of submitit's two commands: nothing the
    # sweep or the request said became a command of its own.
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    assert [ln.split()[0] for ln in commands] == ["export", "srun"], commands
    assert "--no-kill" in commands[1].split()
    status = senet("status", str(work))
    assert status.returncode == 0 and f"Slurm job {job_id}: COMPLETED on node[1-3]" in status.stdout
    assert "stage3: 6/6 done" in status.stdout


CLUSTER = ROOT / "slurm" / "local-cluster.sh"
# Ray marks a silent node dead after about 5 missed health checks of 10 s each (a minute);
# these make it a few seconds, so the test waits on the loss, not on Ray's defaults.
FAST_HEALTH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "3",
}
LOST_EPOCHS = 30  # each stage still runs when its first epoch is seen, idle or loaded


def _cluster(*args: str) -> None:
    out = subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _node_state(node: str) -> str:
    out = subprocess.run(["scontrol", "-o", "show", "node", node], capture_output=True, text=True)
    found = re.search(r" State=(\S+)", out.stdout)
    return found.group(1) if found else "UNKNOWN"


def _on_a_worker_host(work: Path) -> dict | None:
    """A stage's progress once it runs on node2 or node3 (not the head's node1) and has
    checkpointed an epoch (its progress file is written after each epoch's checkpoint)."""
    from orchestrator.run.status import progress_path, read_json

    for path in sorted(progress_path(work).parent.glob("*.json")):
        p = read_json(path)
        if p and p.get("key") and p.get("host") in ("node2", "node3") and int(p["epoch"]) >= 1:
            return p
    return None


@pytest.mark.slurm
@pytest.mark.slow
def test_a_host_lost_mid_sweep(tmp_path: Path) -> None:
    """While a stage runs on a worker host, that host loses power (`local-cluster.sh
    kill-host`: its link cut, every process in its namespaces killed: slurmd, raylet, the
    stage). The job goes on on the other two hosts: Tune retries the stage once, from its
    epoch checkpoint; no record is lost or doubled; `senet status` names the stage and the
    host it was lost on, and Slurm's DOWN for that node; a new submission runs on the rest, and
    one that asks for all three pends, saying why."""
    from orchestrator.plan.plan import build_plan
    from orchestrator.spec.sweep import load_sweep
    from stages.artifacts import checkpoint_path, load_state

    deadline = time.monotonic() + 120  # a hang guard: an earlier test's job may still end
    while any(_node_state(n) != "IDLE" for n in ("node1", "node2", "node3")):
        assert time.monotonic() < deadline, "the three hosts are not all idle"
        time.sleep(0.5)
    work = tmp_path / "work"
    path = write_sweep(
        tmp_path / "s.toml", work, name="lost", budgets=[3000], taus=[2.0, 4.0],
        epochs=LOST_EPOCHS, retries=1,
    )  # fmt: skip
    store = build_plan(load_sweep(path)).store
    log = tmp_path / "submit.out"
    frozen: int | None = None
    lost_host = ""
    with log.open("w") as out:
        proc = subprocess.Popen(
            SENET + ["submit", str(path), "--nodes", "3", "--wait"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
            env=subprocess_env(**FAST_HEALTH), cwd=ROOT,
        )  # fmt: skip
    try:
        wait_while_running("a stage on a worker host", lambda: _on_a_worker_host(work) is not None,
                           proc, log, 600, poll=0.05)  # fmt: skip
        running = _on_a_worker_host(work)
        assert running is not None
        # Freeze the stage so that nothing trains on between reading its checkpoint and the
        # power cut (the kill takes the host's processes one by one).
        os.kill(int(running["pid"]), signal.SIGSTOP)
        frozen, lost_host, key = int(running["pid"]), running["host"], running["key"]
        ckpt = checkpoint_path(store, int(running["stage"]), key)
        at_death = int(load_state(ckpt)["epoch"])
        _cluster("kill-host", lost_host)
        frozen = None  # killed with its host
        wait_while_running("the stage's retry", lambda: "LOST" in log.read_text(), proc, log, 600)
        status = senet("status", str(work))
        assert status.returncode == 0, status.stderr
        assert f"lost on {lost_host} at epoch" in status.stdout, status.stdout
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "LOST" in text and f"lost on {lost_host} at epoch" in text, text[-3000:]
        rows = _records(work, "lost")
        assert sorted(r["key"] for r in rows) == _plan_keys(path)  # every execution, once each
        assert {r["status"] for r in rows} == {"completed"}
        mine = [r for r in rows if r["key"] == key]
        assert len(mine) == 1 and mine[0]["hostname"] not in (lost_host, None)
        # The retry, another process on another host, started after the checkpoint of the
        # frozen attempt, not at epoch 1, and reported every epoch from there to the end.
        reports = tune_reports(work, key)
        second = [e for p, e in reports if p != int(running["pid"])]
        assert second == list(range(at_death + 1, LOST_EPOCHS + 1)), (at_death, reports)
        # Slurm's view: the host is DOWN, said by `senet status` as by sinfo.
        deadline = time.monotonic() + 300  # a hang guard: Slurm says DOWN after SlurmdTimeout
        while "DOWN" not in _node_state(lost_host).split("+"):
            assert time.monotonic() < deadline, _node_state(lost_host)
            time.sleep(1)
        status = senet("status", str(work))
        assert f"Slurm node {lost_host}: DOWN" in status.stdout, status.stdout
        assert "(Not responding)" in status.stdout
        assert (
            f"stage{running['stage']}" in status.stdout and f"lost on {lost_host}" in status.stdout
        )
        # With the host DOWN, a new submission runs on the two that are left: one more tau.
        again = senet("submit", str(path), "stage3.tau=[2.0,4.0,8.0]", "--nodes", "2", "--wait")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "ran 1 stage executions" in again.stdout
        new = [r for r in _records(work, "lost") if r["key"] not in {r["key"] for r in rows}]
        assert len(new) == 1 and new[0]["hostname"] != lost_host
        # Three hosts asked for with one DOWN: the job pends, and `senet status` says why.
        assert senet("submit", str(path), "--nodes", "3").returncode == 0
        deadline = time.monotonic() + 120  # a hang guard: Slurm gives the reason at once
        while "DOWN" not in (status := senet("status", str(work)).stdout).splitlines()[0]:
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status.startswith("Slurm job ") and ": PENDING (" in status.splitlines()[0]
        assert senet("cancel", str(work)).returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if frozen is not None:  # never leave a frozen process behind
            os.kill(frozen, signal.SIGKILL)
        if lost_host:  # the next tests have three hosts again
            _cluster("start-host", lost_host)


@pytest.mark.slurm
def test_cancel_then_submit_again_resumes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "s.toml", work, name="slurm2", epochs=6)
    out = senet("submit", str(path), "--cpus-per-node", "2")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split("submitted Slurm job ")[1].split(";")[0]
    stage2 = results_dir(work) / "sweep=slurm2" / "stage=2"
    deadline = time.monotonic() + 300
    while not (stage2.exists() and any(stage2.glob("*.parquet"))):
        assert time.monotonic() < deadline, "no stage-2 record within 300 s"
        time.sleep(0.5)
    assert senet("cancel", str(work)).returncode == 0
    while _state(job_id) not in ("CANCELLED", "COMPLETED", "FAILED"):
        time.sleep(0.5)
    before = {r["key"]: r for r in _records(work, "slurm2")}
    mtimes = {p: p.stat().st_mtime_ns for p in results_dir(work).rglob("*.parquet")}
    assert 0 < len(before) < 7
    again = senet("submit", str(path), "--cpus-per-node", "2", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _records(work, "slurm2")
    assert len(rows) == 7 and len({r["key"] for r in rows}) == 7
    for p, t in mtimes.items():
        assert p.stat().st_mtime_ns == t  # finished stages were not run again
    ran = int(again.stdout.split("ran ")[-1].split()[0])
    assert ran == 7 - len(before)


@pytest.mark.slurm
def test_impossible_request_is_refused_at_submit(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    start = time.monotonic()
    out = senet("submit", str(path), "--cpus-per-node", "64", timeout=120)
    assert out.returncode == 2
    assert "Slurm refused the job" in out.stderr and out.stderr.strip().count("\n") == 0
    assert time.monotonic() - start < 60


def test_negative_max_requeues_is_refused_before_submitting(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    out = senet("submit", str(path), "--max-requeues", "-1", timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "senet submit: error: --max-requeues must be >= 0, got -1"
    assert not (tmp_path / "work" / "slurm").exists()


@pytest.mark.slurm
def test_bad_signal_delay_is_refused_before_submitting(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    out = senet("submit", str(path), "--time", "1", "--signal-delay", "45", timeout=60)
    assert out.returncode == 2 and "--signal-delay 45 leaves the job no time" in out.stderr
    assert not (tmp_path / "work" / "slurm").exists()


def _restarts(job_id: str) -> int:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    found = re.search(r"\bRestarts=(\d+)", out.stdout)
    return int(found.group(1)) if found else 0


@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit_requeue_resumes(tmp_path: Path) -> None:
    """A 2-minute limit with the warning 30 s before it: the job stops cleanly, requeues
    (the local Slurm holds a requeued job 30 s, its cred_expire) and finishes what is left,
    running nothing twice.

    The work outlasts the first window even on an idle machine; once Slurm counts the
    requeue, the test raises the job's time limit (as an operator may), so the second window
    finishes however busy the machine is: one requeue, whatever the load. `--wait` streams
    the job's log across it."""
    work = tmp_path / "work"
    # Four stage-3 executions of 150 tiny epochs (about 55 s each on an idle core), two at a
    # time, below one stage 1 and two stage 2s: about 2 min of stage work, more than the first
    # window holds (the warning comes 60-90 s in, Ray takes ~5 s of it). (70 epochs sufficed
    # while Tune ran the two concurrent trials one after the other; see
    # orchestrator/plan/start_order.py.)
    path = write_sweep(tmp_path / "s.toml", work, name="requeue", epochs=150)
    args = ["--nodes", "2", "--time", "2", "--signal-delay", "30", "--max-requeues", "3"]
    log = tmp_path / "submit.out"
    with log.open("w") as out:
        proc = subprocess.Popen(
            SENET + ["submit", str(path), *args, "--wait"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=subprocess_env(),
            cwd=ROOT,
        )
        try:
            wait_while_running("a job id", lambda: "submitted Slurm job " in log.read_text(),
                               proc, log, 600, poll=0.5)  # fmt: skip
            job_id = log.read_text().split("submitted Slurm job ")[1].split(";")[0]
            # the first window's time limit, then the requeue
            wait_while_running("a requeue", lambda: _restarts(job_id) >= 1, proc, log, 600, 0.5)
            update = ["scontrol", "update", f"JobId={job_id}", "TimeLimit=20"]
            assert subprocess.run(update, capture_output=True).returncode == 0
            assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
        finally:
            proc.kill()
    text = log.read_text()
    assert "requeueing" in text
    assert "Requeued job" in text and "(2 remaining timeouts)" in text  # --max-requeues 3
    assert _restarts(job_id) == 1
    rows = _records(work, "requeue")
    assert len(rows) == 7 and len({r["key"] for r in rows}) == 7
    assert all(r["status"] == "completed" for r in rows)
    # each start may land on other hosts of the three; the records name the ones they ran on
    assert {r["hostname"] for r in rows} <= {"node1", "node2", "node3"}
    starts = sorted(p.name for p in (work / "slurm").glob("*/job*-start*"))
    assert len(starts) == 2  # the same job started twice


# --- refused before anything reaches Slurm (no Slurm needed) ----------------------------------


def _senet(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from orchestrator.cli.main import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err  # one line
    return code, err


@pytest.mark.parametrize(
    "place", ["workdir", "sweep file", "--partition", "--account", "--qos", "--mem"]
)
def test_a_control_character_for_the_sbatch_script_is_refused_before_submitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], place: str
) -> None:
    """A newline in what the generated script holds would end its `#SBATCH` line and start a
    shell command on the cluster: refused in one line, exit 2, with nothing written."""
    evil = "x\ntouch pwned"
    work = tmp_path / "work"
    sweep = tmp_path / ("s" + evil + ".toml" if place == "sweep file" else "s.toml")
    write_sweep(sweep, work)
    argv = ["submit", str(sweep)]
    if place == "workdir":
        work = tmp_path / ("work" + evil)
        argv += ["--workdir", str(work)]
    elif place.startswith("--"):
        argv += [place, evil]
    code, err = _senet(capsys, *argv)
    assert code == 2 and err.startswith("senet submit: error: ")
    assert (
        "control character ('\\n')" in err and (place if place != "sweep file" else "sweep") in err
    )
    assert not work.exists()  # no workdir, no slurm/ folder, no script
    assert sorted(p.name for p in tmp_path.iterdir()) == [sweep.name]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not a submission record"),
        ("[1, 2]", "a JSON list"),
        ('{"job_id": "1; scancel --user=$USER"}', "is not a Slurm job id"),
        ('{"job_id": 12}', "`job_id` is missing or not a string"),
        ('{"job_id": "12", "sweep": "s.toml"}', "`folder` is missing"),
        ("\x00\xff\n", "not a submission record"),
    ],
)
@pytest.mark.parametrize("command", ["status", "cancel"])
def test_a_damaged_current_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: str, says: str
) -> None:
    state = tmp_path / "slurm" / "current.json"
    state.parent.mkdir()
    state.write_text(content, errors="surrogateescape")
    if "job_id" in content and "folder" not in says:
        fields = {"folder": "f", "sweep": "s.toml", "workdir": str(tmp_path), "submitted_at": "t"}
        state.write_text(json.dumps(json.loads(content) | fields))
    code, err = _senet(capsys, command, str(tmp_path))
    assert code == 2 and str(state) in err and says in err, err


def test_job_ids() -> None:
    from orchestrator.errors import UserError
    from orchestrator.slurm.submit import check_job_id

    for good in ("7", "123456", "123_4"):
        assert check_job_id(good, "t") == good
    for bad in ("", "12a", "123_", "_4", "-1", " 12", "12\n", "1 2", "12;ls", "１２", 12, None):
        with pytest.raises(UserError, match="is not a Slurm job id"):
            check_job_id(bad, "t")


def test_overrides_travel_with_the_job_and_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What submitit pickles for the job keeps the overrides, so its `senet run` gets them;
    current.json keeps them for `senet status`, and a damaged list there is one line."""
    import pickle

    from orchestrator.slurm.submit import SweepJob

    job = SweepJob(tmp_path / "s.toml", tmp_path, tmp_path / "job", "cpu", ("stage3.tau=2.0",))
    assert pickle.loads(pickle.dumps(job)).runner.overrides == ("stage3.tau=2.0",)
    state = tmp_path / "slurm" / "current.json"
    state.parent.mkdir()
    fields = {"job_id": "7", "folder": "f", "sweep": "s.toml", "workdir": str(tmp_path)}
    state.write_text(json.dumps(fields | {"submitted_at": "t", "overrides": [1]}))
    code, err = _senet(capsys, "status", str(tmp_path))
    assert code == 2 and "`overrides` is not a list of strings" in err, err
