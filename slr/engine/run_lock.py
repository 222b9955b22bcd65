"""One training run per output folder at a time.

Two runs into one --output-dir would write the same checkpoint paths, and the second would move
the first's files to ``earlier/`` in mid-run. A run therefore holds an exclusive ``flock`` on
``<output-dir>/.slr-run.lock`` for its whole life (only rank 0 under torchrun: the only writer).
The kernel drops the lock when the process ends in any way, SIGKILL included, so a dead run's
lock never blocks the next one; the pid, host and start time written in the file only serve
to name the holder in the refusal. The lock is given back, and the file removed, when the run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from slr.errors import ConfigError, setting

LOCK_NAME = ".slr-run.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]


class OutputDirInUse(ConfigError):
    """Another live slr run writes into this output folder."""


class RunLock:
    """An output folder held by this process; ``release()`` (or the process's end) gives it back."""

    def __init__(self, folder: Path, fd: Optional[int], created_folder: bool):
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd = fd
        self._created_folder = created_folder

    def release(self) -> None:
        if self._fd is None:
            return
        # Remove the file while still holding the lock: a run that opened it meanwhile notices the
        # file is gone (see _lock_file) instead of holding a lock nobody else can see.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        if self._created_folder:  # a run refused before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                self.folder.rmdir()


_held: list[RunLock] = []


def hold_output_dir(folder: Path) -> RunLock:
    """Lock ``folder`` for this run (creating it), or refuse naming the run that holds it."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        lock = RunLock(folder, None, created)
    else:
        try:
            fd = _lock_file(folder / LOCK_NAME)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        lock = RunLock(folder, fd, created)
    _held.append(lock)
    return lock


def release_all() -> None:
    """Give back every folder this process holds (the end of a run, however it ended)."""
    while _held:
        _held.pop().release()


def _lock_file(path: Path) -> int:
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise OutputDirInUse(
                f"{path.parent} is in use by another slr run ({holder}): two runs there would overwrite "
                f"each other's checkpoints. Wait for it to end, or give this run another {setting('output_dir')}"
            ) from None
        except OSError:
            # A file system without locks (some network mounts): run unlocked rather than not at all.
            return fd
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _write_holder(fd)
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: again
    raise OutputDirInUse(f"{path.parent}: could not take the run lock {path.name} (it keeps being replaced)")


def _write_holder(fd: int) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:500],
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "its process has not said who it is yet"
    where = f" on {info['host']}" if info.get("host") and info.get("host") != socket.gethostname() else ""
    since = f", started {info['started']}" if info.get("started") else ""
    return f"pid {info['pid']}{where}{since}"
