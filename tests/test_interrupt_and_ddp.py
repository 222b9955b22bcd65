"""Runs in child processes: Ctrl-C mid-run then resume, and DistributedDataParallel via torchrun."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slr.engine import checkpoint as ckpt
from slr.engine.run import train
from slr.settings import TrainSettings

# The plain transformer in float32: runs on other numbers of processes are compared to 1e-4, and the
# convolution blocks' batch norm normalises each process's batch by itself (as DDP's BatchNorm does),
# while bfloat16's rounding would exceed the tolerance on a CPU that has it.
SMALL = ["--d-model", "32", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "64", "--no-plots",
         "--conv-kernel", "0", "--no-amp"]


pytestmark = pytest.mark.slow  # child processes that import torch and train: ~20 s each on a quiet 2-core machine


def _args(clips: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "transformer", "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
        "--num-gloss", "4", "--num-cat", "2", "--output-dir", str(out), "--lr", "1e-3", *SMALL, *extra,
    ]


def _settings(clips: Path, out: Path, **values) -> TrainSettings:
    return TrainSettings(
        model="transformer", keypoints_train=clips / "train", keypoints_val=clips / "val", num_gloss=4, num_cat=2,
        output_dir=out, lr=1e-3, d_model=32, num_heads=2, num_layers=1, ff_dim=64, plots=False,
        **{"conv_kernel": 0, "amp": False, **values},  # as SMALL
    )


def _log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _compare(a, b, tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in ("train_loss", "val_loss", "val_gloss_acc", "val_cat_acc", "lr"):
            assert x[key] == pytest.approx(y[key], abs=tol), (key, x, y)


def test_ctrl_c_writes_a_resumable_checkpoint_and_resume_is_exact(clips, tmp_path):
    extra = ["--epochs", "4", "--batch-size", "4", "--scheduler", "cosine", "--mirror-prob", "0.5"]
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-m", "slr", *_args(clips, straight, *extra)], check=True, capture_output=True)

    out = tmp_path / "interrupted"
    child = subprocess.Popen(
        [sys.executable, "-m", "slr", *_args(clips, out, *extra)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "log.csv").exists() and time.time() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 130, output
    assert "interrupted" in output and "slr resume" in output and "Traceback" not in output
    state = ckpt.load_checkpoint(out / "SignTransformer_last.pt")
    assert state["epoch"] < 4 and state["step_in_epoch"] > 0  # stopped inside an epoch

    resumed = subprocess.run(
        [sys.executable, "-m", "slr", "resume", str(out / "SignTransformer_last.pt")], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _compare(_log(straight / "log.csv"), _log(out / "log.csv"), tol=1e-6)


def test_torchrun_two_processes_match_one_process_with_the_same_global_batch(clips, tmp_path):
    """gloo on CPU: 2 ranks x batch 8 == 1 process x batch 16 (dropout and augmentation off, so the
    only differences are the order of floating-point sums: tolerance 1e-4)."""
    common = ["--epochs", "2", "--dropout", "0", "--no-augment"]
    single = train(_settings(clips, tmp_path / "single", epochs=2, batch_size=16, dropout=0.0, augment=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "slr",
         *_args(clips, tmp_path / "ddp", *common, "--batch-size", "8")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = _log(tmp_path / "ddp" / "log.csv")
    assert len(ddp) == 2
    _compare([{k: float(v) for k, v in r.items() if isinstance(v, (int, float))} for r in single.history], ddp, tol=1e-4)
    state = ckpt.load_checkpoint(tmp_path / "ddp" / "SignTransformer_last.pt")
    assert state["runtime"]["world_size"] == 2


def test_an_error_on_rank_0_alone_ends_every_rank_instead_of_hanging(clips, tmp_path):
    """Only rank 0 writes, so only it sees an unusable --output-dir. Before the fix both ranks waited
    forever (rank 0 in the shutdown barrier, rank 1 in a collective); now rank 0 reports the problem
    and leaves, and torchrun ends rank 1, which says at most that another rank failed."""
    (tmp_path / "a-file").write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "slr",
         *_args(clips, tmp_path / "a-file" / "run", "--epochs", "1")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180,
    )
    assert proc.returncode != 0
    assert "--output-dir" in proc.stderr and "a-file exists and is not a directory" in proc.stderr
    assert "internal error" not in proc.stderr


# -- SIGTERM, SIGHUP, a second Ctrl-C (slr/engine/stop_signals.py) ---------------------------------

SIGNAL_RUN = ["--epochs", "4", "--batch-size", "4", "--scheduler", "cosine", "--mirror-prob", "0.5"]


@pytest.fixture(scope="module")
def straight_log(clips, tmp_path_factory) -> list[dict[str, float]]:
    """The log of the signal tests' run, trained without a stop."""
    out = tmp_path_factory.mktemp("straight")
    subprocess.run([sys.executable, "-m", "slr", *_args(clips, out, *SIGNAL_RUN)], check=True, capture_output=True)
    return _log(out / "log.csv")


def _start(clips: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "slr", *_args(clips, out, *SIGNAL_RUN, *extra)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "the run ended before it could be stopped"


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c_with_a_resumable_checkpoint(clips, tmp_path, straight_log, signum, status):
    """Before stop_signals.py both ended the process at once (status -15 / -1), unsaved and silent."""
    out = tmp_path / "stopped"
    child = _start(clips, out)
    _wait_for(out / "log.csv", child)
    child.send_signal(signum)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == status, output
    assert signal.Signals(signum).name in output and "slr resume" in output and "Traceback" not in output
    state = ckpt.load_checkpoint(out / "SignTransformer_last.pt", need="resume")
    assert 1 <= state["epoch"] < 4
    if signum == signal.SIGTERM:  # the same resume as after Ctrl-C (one signal is enough to show it)
        resumed = subprocess.run([sys.executable, "-m", "slr", "resume", str(out / "SignTransformer_last.pt")],
                                 capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        _compare(straight_log, _log(out / "log.csv"), tol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, "on the way out"])
def test_a_second_ctrl_c_always_aborts_with_130_and_keeps_the_last_checkpoint(clips, tmp_path, delay):
    """Before the fix the second Ctrl-C raised KeyboardInterrupt wherever the run was: an internal
    error, a traceback from an atexit hook, or death by the signal, depending on the moment.
    "on the way out": right after the run said it saved, while the process exits."""
    out = tmp_path / "aborted"
    child = _start(clips, out)
    _wait_for(out / "SignTransformer_last.pt", child)
    child.send_signal(signal.SIGINT)
    lines = []
    if isinstance(delay, float):
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
    else:
        for line in child.stdout:
            lines.append(line)
            if "resumable checkpoint written to" in line:
                child.send_signal(signal.SIGINT)
                break
    output = "".join(lines) + child.communicate(timeout=120)[0]
    assert child.returncode == 130, output
    for bad in ("Traceback", "internal error", "Exception ignored"):
        assert bad not in output, output
    ckpt.load_checkpoint(out / "SignTransformer_last.pt", need="resume")  # the last complete one


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_with_a_save(clips, tmp_path):
    """torchrun passes SIGTERM on to every rank; they agree on the step to stop at (any_rank, once per window),
    rank 0 saves, and no rank hangs in a collective the other left."""
    out = tmp_path / "ddp"
    child = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "slr",
         *_args(clips, out, "--epochs", "200", "--batch-size", "4")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    _wait_for(out / "log.csv", child, timeout=300)
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=300)
    assert "SIGTERM received" in output and "resumable checkpoint written to" in output, output[-3000:]
    assert "internal error" not in output and "stopped because another rank failed" not in output, output[-3000:]
    state = ckpt.load_checkpoint(out / "SignTransformer_last.pt", need="resume")
    assert 1 <= state["epoch"] < 200 and state["runtime"]["world_size"] == 2
