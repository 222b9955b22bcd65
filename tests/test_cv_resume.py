"""A killed `slr cv` run again continues: finished folds are kept as they are, the fold in progress
continues from its _last.pt, and the result is that of a run never killed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slr.data.synthetic import make_signer_shift_clips, write_clips

SLR = [sys.executable, "-m", "slr"]
METRICS = ("train_loss", "val_loss", "val_gloss_acc", "val_cat_acc", "lr")


def _log(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _args(data: Path, out: Path) -> list[str]:
    # batch 2: many steps per epoch, so that the kill lands inside fold 2's training, not after it
    return ["cv", "transformer", str(data), "--group-by", "signer", "--folds", "2", "--epochs", "12",
            "--batch-size", "2", "--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32",
            "--threads", "1", "--no-tensorboard", "--output-dir", str(out)]


@pytest.mark.slow
def test_a_killed_cv_continues_where_it_stopped_and_ends_as_an_unbroken_run(tmp_path):
    data = tmp_path / "signers"
    write_clips(data, make_signer_shift_clips(num_letters=4, num_signers=6, clips_per_signer=8, min_frames=12,
                                              max_frames=20, seed=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    fold1, fold2 = (killed / "recipes" / "defaults" / f"fold-{k}" for k in (1, 2))

    child = subprocess.Popen([*SLR, *_args(data, killed)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    deadline = time.time() + 300
    # kill once fold 1 is scored and fold 2 has saved at least two epochs (and is still training)
    while child.poll() is None and time.time() < deadline:
        if (fold1 / "heldout.json").exists() and (fold2 / "log.csv").exists() and len(_log(fold2)) >= 2:
            break
        time.sleep(0.01)
    assert child.poll() is None, "the run ended before it could be killed:\n" + child.communicate()[0]
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    done_at_kill = len(_log(fold2))
    assert 2 <= done_at_kill < 12 and not (fold2 / "heldout.json").exists()
    kept = {name: (fold1 / name).stat().st_mtime_ns for name in ("heldout.json", "SignTransformer_best.pt", "log.csv")}

    again = subprocess.run([*SLR, *_args(data, killed)], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "defaults, fold 1: finished earlier, kept" in again.stdout
    assert "defaults, fold 2: continuing its killed run from _last.pt" in again.stdout
    assert {name: (fold1 / name).stat().st_mtime_ns for name in kept} == kept  # fold 1 not trained or scored again
    assert not (fold1 / "earlier").exists() and not (fold2 / "earlier").exists()  # no run started over
    epochs = [int(row["epoch"]) for row in _log(fold2)]
    assert epochs == list(range(1, 13))  # each epoch once: continued, not repeated

    unbroken = subprocess.run([*SLR, *_args(data, whole)], capture_output=True, text=True, env=env, timeout=600)
    assert unbroken.returncode == 0, unbroken.stdout + unbroken.stderr
    for k in (1, 2):
        ours, theirs = (root / "recipes" / "defaults" / f"fold-{k}" for root in (killed, whole))
        assert [[row[m] for m in METRICS] for row in _log(ours)] == [[row[m] for m in METRICS] for row in _log(theirs)]
        a, b = (json.loads((d / "heldout.json").read_text()) for d in (ours, theirs))
        assert (a["gloss_top1"], a["best_epoch"], a["correct"]) == (b["gloss_top1"], b["best_epoch"], b["correct"])


@pytest.mark.slow
def test_sigterm_saves_the_fold_in_progress_and_says_how_to_continue(tmp_path):
    data = tmp_path / "signers"
    write_clips(data, make_signer_shift_clips(num_letters=4, num_signers=6, clips_per_signer=8, min_frames=12,
                                              max_frames=20, seed=1))
    out = tmp_path / "cv"
    run = out / "recipes" / "defaults" / "fold-1"
    child = subprocess.Popen([*SLR, *_args(data, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while child.poll() is None and time.time() < deadline and not (run / "log.csv").exists():
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 143, stdout + stderr
    assert "interrupted by SIGTERM during recipe defaults, fold 1: run the same command again to continue" in stderr
    assert "Traceback" not in stderr and (run / "SignTransformer_last.pt").is_file()
    assert not (run / "heldout.json").exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_jobs_workers_save_and_end_when_slr_cv_is_killed(tmp_path):
    """Before: SIGKILL on `slr cv --jobs 2` left both workers training on, then waiting forever."""
    data = tmp_path / "signers"
    write_clips(data, make_signer_shift_clips(num_letters=4, num_signers=6, clips_per_signer=8, min_frames=12,
                                              max_frames=20, seed=1))
    out = tmp_path / "cv"
    args = _args(data, out)
    args[args.index("12")] = "500"  # epochs: the workers are still training when the kill comes
    child = subprocess.Popen([*SLR, *args, "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    logs = [out / "recipes" / "defaults" / f"fold-{k}" / "log.csv" for k in (1, 2)]
    deadline = time.time() + 300
    while child.poll() is None and time.time() < deadline and not all(p.exists() for p in logs):
        time.sleep(0.05)
    assert child.poll() is None and all(p.exists() for p in logs)
    workers = [pid for pid in _children(child.pid) if "spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_text()]
    assert len(workers) == 2
    child.kill()
    child.wait()
    deadline = time.time() + 60
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if _alive(pid)]
    for pid in alive:  # leave nothing behind, then fail
        os.kill(pid, signal.SIGKILL)
    assert not alive, "worker processes outlived slr cv"
    for log in logs:
        assert (log.parent / "SignTransformer_last.pt").is_file()
