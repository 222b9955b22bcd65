"""A full disk, for real: a small tmpfs mounted for the test (needs root; skipped elsewhere).

Each command that writes must name the file it could not write and say that the disk is full,
keep what was there before, and leave no temporary file, empty folder or half report.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slr.engine import checkpoint as ckpt
from slr.atomic import WriteFailed, write_atomically
from test_interrupt_and_ddp import _args

SLR = [sys.executable, "-m", "slr"]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="mounts a tmpfs (Linux)")


@pytest.fixture
def disk(tmp_path) -> Path:
    """An empty 8 MiB file system of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the file system, then give back ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        chunk = b"\0" * (1 << 16)
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(filler, "r+b") as f:  # r+b: truncating needs no free block
        f.truncate(max(0, filler.stat().st_size - leave))
    return filler


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") and ".tmp" in p.name)


def _says_disk_full(stderr: str, name: str) -> None:
    assert "the disk is full (No space left on device)" in stderr and name in stderr, stderr
    for bad in ("internal error", "Traceback", "enforce fail"):
        assert bad not in stderr, stderr


def test_an_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(disk):
    path = disk / "SignTransformer_last.pt"
    ckpt.save_checkpoint({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model_state": {"w": torch.ones(4)}}, path)
    fill(disk)
    with pytest.raises(WriteFailed, match="the disk is full") as caught:
        ckpt.save_checkpoint({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model_state": {"w": torch.zeros(10**6)}},
                             path)
    assert str(path) in str(caught.value) and "earlier file is kept" in str(caught.value)
    assert torch.equal(torch.load(path, weights_only=True)["model_state"]["w"], torch.ones(4))
    assert _leftovers(disk) == []
    with pytest.raises(WriteFailed, match="log.csv"):
        write_atomically(disk / "log.csv", lambda f: f.write(b"x" * 100_000))


@pytest.mark.slow
def test_training_resume_export_evaluate_and_plot_on_a_full_disk(clips, disk, tmp_path):
    run = disk / "run"
    subprocess.run([*SLR, *_args(clips, run, "--epochs", "1", "--batch-size", "8")], check=True, capture_output=True)
    last = run / "SignTransformer_last.pt"
    before = last.read_bytes()
    filler = fill(disk)

    # resume: its first write is settings.json (before: "No space left on device", no path)
    resumed = subprocess.run([*SLR, "resume", str(last), "--epochs", "2"], capture_output=True, text=True)
    assert resumed.returncode == 2
    _says_disk_full(resumed.stderr, "settings.json")

    # export: before, torch.jit.save aborted the process (status 134, no message) leaving a 0-byte file
    exported = subprocess.run([*SLR, "export", str(run / "SignTransformer_best.pt"), "--format", "torchscript"],
                              capture_output=True, text=True)
    assert exported.returncode == 2, exported.stderr
    _says_disk_full(exported.stderr, "SignTransformer_best.ts.pt")
    assert not (run / "SignTransformer_best.ts.pt").exists()

    # evaluate: before, an empty evaluation/ folder was left
    evaluated = subprocess.run([*SLR, "evaluate", str(run / "SignTransformer_best.pt"), "--keypoints", str(clips / "val")],
                               capture_output=True, text=True)
    assert evaluated.returncode == 2
    _says_disk_full(evaluated.stderr, str(run / "evaluation"))
    assert not (run / "evaluation").exists()

    plotted = subprocess.run([*SLR, "plot", str(run / "log.csv")], capture_output=True, text=True)
    assert plotted.returncode == 2
    _says_disk_full(plotted.stderr, "log.png")

    # training: room for settings.json and the log, not for a checkpoint (before: "internal error:
    # RuntimeError: [enforce fail at inline_container.cc:672]", naming no file)
    os.truncate(filler, max(0, filler.stat().st_size - 64 * 1024))
    trained = subprocess.run([*SLR, "resume", str(last), "--epochs", "2"], capture_output=True, text=True)
    assert trained.returncode == 2
    _says_disk_full(trained.stderr, "SignTransformer_last.pt")
    assert last.read_bytes() == before  # the previous checkpoint, whole
    assert _leftovers(disk) == []
