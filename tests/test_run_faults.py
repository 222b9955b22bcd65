"""Faults around a training run, in child processes: a second run into the same folder, kills during
a checkpoint write, what killed runs leave behind, and stdout going away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slr.engine import checkpoint as ckpt
from slr.atomic import temporary_name, write_atomically
from slr.engine.run_folder import stale_temporaries
from test_interrupt_and_ddp import _args, _log

SLR = [sys.executable, "-m", "slr"]


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()[0]


# -- one run per output folder (slr/engine/run_folder.py) ----------------------------------------


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(clips, tmp_path):
    """Before the lock the second run moved the first's files to earlier/ in mid-run and both wrote
    the same paths: the first run's epochs were lost."""
    out = tmp_path / "run"
    first = subprocess.Popen([*SLR, *_args(clips, out, "--epochs", "500", "--batch-size", "4")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(out / "log.csv", first)
    second = subprocess.run([*SLR, *_args(clips, out, "--epochs", "2")], capture_output=True, text=True, timeout=300)
    assert first.poll() is None, "the first run ended before the second one started"
    first.send_signal(signal.SIGTERM)  # stop it with a save (slr/engine/stop_signals.py)
    output, _ = first.communicate(timeout=300)
    assert second.returncode == 2, second.stdout + second.stderr
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1 and str(out) in message and f"pid {first.pid}" in message, message
    assert first.returncode == 143, output
    assert not (out / "earlier").exists()  # nothing of the first run was moved
    epochs = [int(row["epoch"]) for row in _log(out / "log.csv")]
    assert epochs == list(range(1, len(epochs) + 1))
    assert ckpt.load_checkpoint(out / "SignTransformer_last.pt")["epoch"] == epochs[-1]
    assert not (out / ".slr-run.lock").exists()  # given back at the end


@pytest.mark.slow
def test_a_killed_runs_lock_is_free_and_its_temporaries_are_removed(clips, tmp_path):
    """SIGKILL while _last.pt is written (the worst moment): the next run into the folder is not
    refused, and removes the temporary the dead process left (before: one per kill, as large as a
    checkpoint, forever)."""
    out = tmp_path / "run"
    killed = subprocess.run([*SLR, *_args(clips, out, "--epochs", "3", "--batch-size", "8")], capture_output=True,
                            text=True, env={**os.environ, "SLR_TEST_KILL_DURING_WRITE": "SignTransformer_last.pt:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    left = _temporaries(out)
    assert len(left) == 1 and left[0].startswith(".SignTransformer_last.pt."), left
    assert ckpt.load_checkpoint(out / "SignTransformer_last.pt")["epoch"] == 1  # the complete one stays

    resumed = subprocess.run([*SLR, "resume", str(out / "SignTransformer_last.pt")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"removed {left[0]}" in resumed.stdout + resumed.stderr
    assert _temporaries(out) == []
    assert ckpt.load_checkpoint(out / "SignTransformer_last.pt")["epoch"] == 3


def test_only_temporaries_of_dead_processes_of_this_host_are_stale(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid belongs to nobody now (reuse within the test is vanishingly unlikely)
    target = tmp_path / "SignTransformer_last.pt"
    mine = temporary_name(target)
    dead = Path(str(mine).replace(f"-{os.getpid()}-", f"-{gone.pid}-"))
    dead_export = Path(str(temporary_name(tmp_path / "m.ts.pt", ".ts.pt")).replace(f"-{os.getpid()}-", f"-{gone.pid}-"))
    other_host = tmp_path / f".log.csv.000000-{gone.pid}-0123abcd.tmp"
    if other_host.name.split(".")[2].startswith(dead.name.split(".")[3][:6]):
        pytest.skip("this host's tag happens to be 000000")
    unrelated = tmp_path / ".notes.txt.tmp"
    for path in (mine, dead, dead_export, other_host, unrelated):
        path.write_bytes(b"x")
    assert stale_temporaries(tmp_path) == sorted([dead, dead_export])


def test_a_write_killed_before_the_rename_keeps_the_old_file(tmp_path):
    """The kill point the tests above use, in a child process: the old file stays whole."""
    path = tmp_path / "log.csv"
    write_atomically(path, lambda f: f.write(b"old"))
    code = ("from pathlib import Path; from slr.atomic import write_atomically; "
            f"write_atomically(Path({str(path)!r}), lambda f: f.write(b'new'))")
    child = subprocess.run([sys.executable, "-c", code], env={**os.environ, "SLR_TEST_KILL_DURING_WRITE": "log.csv"})
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"old" and len(_temporaries(tmp_path)) == 1


# -- _best.pt and _last.pt agree (slr/engine/checkpoint.py) ---------------------------------------


def _weights_equal(a: Path, b: Path) -> bool:
    wa, wb = ckpt.load_checkpoint(a)["model_state"], ckpt.load_checkpoint(b)["model_state"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_a_kill_while_best_is_written_is_repaired_on_resume(clips, tmp_path):
    """Killed while _best.pt is written in the last epoch: _last.pt names epoch 1 as the best but no
    _best.pt holds it. Before the fix `slr resume` had nothing to do and never wrote it."""
    out = tmp_path / "run"
    killed = subprocess.run([*SLR, *_args(clips, out, "--epochs", "1", "--batch-size", "8")], capture_output=True,
                            text=True, env={**os.environ, "SLR_TEST_KILL_DURING_WRITE": "SignTransformer_best.pt"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    last = ckpt.load_checkpoint(out / "SignTransformer_last.pt")
    assert last["best_epoch"] == last["epoch"] == 1 and not (out / "SignTransformer_best.pt").exists()

    resumed = subprocess.run([*SLR, "resume", str(out / "SignTransformer_last.pt")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    best = ckpt.load_checkpoint(out / "SignTransformer_best.pt")
    assert (best["epoch"], best["best_metric"]) == (last["best_epoch"], last["best_metric"])
    assert _weights_equal(out / "SignTransformer_best.pt", out / "SignTransformer_last.pt")


@pytest.mark.slow
def test_a_kill_while_last_is_written_leaves_an_agreeing_pair(clips, tmp_path):
    """The other moment: killed while _last.pt of epoch 2 is written. _last.pt (epoch 1) and
    _best.pt (epoch 1) agree, and the resumed run keeps them agreeing."""
    out = tmp_path / "run"
    killed = subprocess.run([*SLR, *_args(clips, out, "--epochs", "2", "--batch-size", "8")], capture_output=True,
                            text=True, env={**os.environ, "SLR_TEST_KILL_DURING_WRITE": "SignTransformer_last.pt:2"})
    assert killed.returncode == -signal.SIGKILL
    for _ in range(2):
        last = ckpt.load_checkpoint(out / "SignTransformer_last.pt")
        best = ckpt.load_checkpoint(out / "SignTransformer_best.pt")
        assert (best["epoch"], best["best_metric"]) == (last["best_epoch"], last["best_metric"])
        subprocess.run([*SLR, "resume", str(out / "SignTransformer_last.pt")], capture_output=True, check=True)
    assert last["epoch"] == 2


# -- stdout goes away (slr/ui/console.py) -------------------------------------------------------


def _with_closed_stdout(args: list[str]) -> tuple[int, str]:
    """Run with stdout a pipe whose reader is gone from the start, as in `slr ... | head -0`."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()
    stderr = child.stderr.read()
    return child.wait(timeout=300), stderr


@pytest.mark.slow
def test_training_goes_on_when_stdout_is_closed(clips, tmp_path):
    """Before: rich's broken-pipe handler ended training after one epoch with status 1, silently."""
    out = tmp_path / "run"
    status, stderr = _with_closed_stdout([*SLR, "--debug", *_args(clips, out, "--epochs", "3", "--batch-size", "8")])
    assert status == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert [row["epoch"] for row in _log(out / "log.csv")] == [1, 2, 3]


@pytest.mark.slow
def test_other_commands_end_quietly_with_141_when_stdout_is_closed(clips, tmp_path, synthetic_dir):
    out = tmp_path / "run"
    subprocess.run([*SLR, *_args(clips, out, "--epochs", "1")], check=True, capture_output=True)
    clip = sorted((clips / "val").glob("*.npz"))[0]
    for args in (["hwinfo"], ["validate", str(synthetic_dir)], ["predict", str(out / "SignTransformer_best.pt"), str(clip)],
                 ["plot", str(out / "log.csv"), "--output", str(tmp_path / "curves.png")]):
        status, stderr = _with_closed_stdout([*SLR, *args])
        assert status == 141, (args, stderr)
        assert stderr == "", (args, stderr)
