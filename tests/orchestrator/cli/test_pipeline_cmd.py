"""`senet pipeline` builds its configs through the sweep schema: a bad option is exit 2 and one
line naming the option, before any data is read or any folder made; and `senet relu-count`'s
bounds. In-process, no Ray, no training."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.cli.main import main


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--epochs", "-1"], "--epochs: must be >= 1 (got -1)"),
        (["--epochs", "0"], "--epochs: must be >= 1 (got 0)"),
        (["--stage3-epochs", "0"], "--stage3-epochs: must be >= 1 (got 0)"),
        (["--tau", "0"], "--tau: must be > 0 (got 0.0)"),
        (["--alpha", "-1"], "--alpha: must be >= 0 (got -1.0)"),
        (["--density", "0"], "--density: must be in (0, 1] (got 0.0)"),
        (["--batch-size", "0"], "--batch-size: must be >= 1 (got 0)"),
        (["--limit", "0"], "--limit: must be >= 1 (got 0)"),
        (["--seed", "-3"], "--seed: must be >= 0 (got -3)"),
        (
            ["--method", "magic"],
            "--method: must be one of: taylor-ema, activation-ema, activation, ",
        ),
        (["--pruning", "random"], "--pruning: must be one of: oneshot, iterative (got 'random')"),
        (["--budget", "x"], "--budget: must be a number (got 'x')"),
        (["--budget", "1.0"], "--budget: budget 1.0 is ambiguous"),
        (["--budget", "99999999"], "--budget: budget 99999999 exceeds the model's"),
    ],
)
def test_bad_option_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    work = tmp_path / "w"
    argv = ["pipeline", "--budget", "3000", "--workdir", str(work), *args]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"senet pipeline: error: {line}"), err
    assert out == "" and not work.exists()  # nothing started


def test_workdir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert main(["pipeline", "--budget", "3000", "--workdir", str(plain)]) == 2
    out, err = capsys.readouterr()
    assert err == f"senet pipeline: error: --workdir: {plain} is a file, not a folder\n"
    assert out == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--input-size", "4096"], "--input-size: must be in [1, 1024] (got 4096)"),
        (["--input-size", "0"], "--input-size: must be in [1, 1024] (got 0)"),
        (["--in-channels", "100000"], "--in-channels: must be in [1, 64] (got 100000)"),
    ],
)
def test_relu_count_bounds(capsys: pytest.CaptureFixture[str], args: list[str], line: str) -> None:
    assert main(["relu-count", "resnet18", *args]) == 2
    assert capsys.readouterr().err == f"senet relu-count: error: {line}\n"


def test_relu_count_at_the_bound_is_quick(capsys: pytest.CaptureFixture[str]) -> None:
    """Traced on the meta device: the largest input allowed costs no activation memory."""
    start = time.perf_counter()
    assert main(["relu-count", "resnet18", "--input-size", "1024"]) == 0
    assert time.perf_counter() - start < 30
    # resnet18 (CIFAR variant): 17 ReLU layers of 64..512 channels; 557056 ReLUs at 32 px
    assert capsys.readouterr().out.splitlines()[-1] == f"total {557_056 * 32 * 32}"


@pytest.mark.parametrize(("flag", "augment"), [([], True), (["--no-augment"], False)])
def test_no_augment_reaches_stages_2_and_3_only(flag: list[str], augment: bool) -> None:
    import argparse

    from orchestrator.cli.pipeline_cmd import add_arguments, configs

    p = argparse.ArgumentParser()
    add_arguments(p)
    s1, s2, s3 = configs(p.parse_args(["--budget", "3000", *flag]))
    assert (s2.augment, s3.augment) == (augment, augment)
    assert not hasattr(s1, "augment")  # the teacher always trains on augmented images


def test_a_bogus_device_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    assert main(["pipeline", "--budget", "3000", "--workdir", str(work), "--device", "bogus"]) == 2
    out, err = capsys.readouterr()
    assert (
        err == "senet pipeline: error: --device: must be auto, cpu, cuda or cuda:N (got 'bogus')\n"
    )
    assert out == "" and not work.exists()


def test_senet_pipeline_on_a_full_disk_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command, not only `senet run`: a full disk met anywhere is one line, exit 2."""
    from support import tmpfs

    mnt = tmp_path / "mnt"
    with tmpfs(mnt, "64k"):
        argv = ["pipeline", "--budget", "3000", "--dataset", "synthetic", "--limit", "48"]
        code = main([*argv, "--epochs", "1", "--workdir", str(mnt / "w"), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith("senet pipeline: error: ") and f"{mnt / 'w'}" in err, err
        assert "no space left on device" in err
