"""Write a file so that a crash at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Callable


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it into place.

    The file gets the mode a plain ``open(path, "w")`` would give it: that of the file it replaces,
    or 0666 minus the umask for a new one (not the 0600 of ``tempfile.mkstemp``, which kept other
    users of a shared machine from reading the logs and checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            _copy_mode(path, f.fileno())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path``, created with mode 0666 so that the kernel applies the umask
    (and any default ACL) exactly as for an ordinary new file. O_EXCL: never reuse or follow a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _copy_mode(path: Path, fd: int) -> None:
    """Replacing a file keeps its permission bits (a log the user made group-readable stays so)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:  # no file yet (or unreadable metadata): the umask-based mode stands
        return
    if hasattr(os, "fchmod"):  # not on Windows, where the bits mean little anyway
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
