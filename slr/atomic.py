"""Write a file so that a crash at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import stat
import zlib
from pathlib import Path
from typing import IO, Callable, Optional

from slr.errors import SlrError

#: Temporary files are named ``.<target>.<host>-<pid>-<random>.tmp`` (an optional suffix may follow,
#: e.g. export's ``.onnx``): the host and process id say whether the writer still lives, so a later
#: run can remove what a killed one left (slr/engine/run_folder.py reads this pattern).
TEMP_TAG = ".tmp"


class WriteFailed(SlrError):
    """A file could not be written (a full disk, a quota): the file it would replace is kept."""


def host_tag() -> str:
    """Six hex digits for this machine: temporary files of a shared folder name the host that wrote them."""
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')) & 0xFFFFFF:06x}"


#: The longest file name most file systems take (ext4, XFS, btrfs, APFS: 255 bytes).
MAX_NAME_BYTES = 255


def temporary_name(path: Path, suffix: str = "") -> Path:
    """A fresh temporary name beside ``path`` that names this host and process.

    The temporary adds about 30 bytes to the name; for a long name (a 244-byte video name) the part
    taken from ``path`` is shortened, keeping its suffix (``.npz``), so that it stays under 255 bytes
    and the file it becomes can be written at all."""
    path = Path(path)
    tail = f".{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{TEMP_TAG}{suffix}"
    return path.parent / f".{_shortened(path.name, MAX_NAME_BYTES - 1 - len(tail))}{tail}"


def _shortened(name: str, room: int) -> str:
    if len(os.fsencode(name)) <= room:
        return name
    ext = Path(name).suffix if len(os.fsencode(Path(name).suffix)) < room // 2 else ""
    stem = name[: len(name) - len(ext)]
    while stem and len(os.fsencode(stem + ext)) > room:  # by characters: never half of a UTF-8 one
        stem = stem[:-1]
    return stem + ext


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it into place.

    The file gets the mode a plain ``open(path, "w")`` would give it: that of the file it replaces,
    or 0666 minus the umask for a new one (not the 0600 of ``tempfile.mkstemp``, which kept other
    users of a shared machine from reading the logs and checkpoints).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
    except OSError as exc:
        raise_if_disk_full(exc, path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            _copy_mode(path, f.fileno())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _test_kill_point(path)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise_if_disk_full(exc, path)
        raise
    _fsync_directory(path.parent)


_DISK_FULL = {errno.ENOSPC: "the disk is full (No space left on device)",
              errno.EDQUOT: "the disk quota is exceeded (Disk quota exceeded)",
              errno.EFBIG: "the file is larger than this file system or the process's file size limit allows (File too large)"}


def disk_full_reason(exc: BaseException) -> Optional[str]:
    """Why ``exc`` means that the disk cannot take the file, or None when it means something else.

    torch.save reports a failed write as ``RuntimeError: [enforce fail at inline_container.cc...]``
    that names neither the file nor the cause; the OSError behind it travels as its context.
    """
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return _DISK_FULL[exc.errno]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def raise_if_disk_full(exc: BaseException, path: Path) -> None:
    """Raise one message naming ``path`` when ``exc`` says the disk is full; return otherwise."""
    reason = disk_full_reason(exc)
    if reason is None:
        return
    kept = "; the earlier file is kept as it was" if Path(path).exists() else "; nothing was written"
    raise WriteFailed(f"could not be written: {reason}{kept}. Free some space and run again", path) from None


def _test_kill_point(path: Path) -> None:
    """Tests only: SLR_TEST_KILL_DURING_WRITE=NAME[:N] kills this process (SIGKILL, as the kernel's
    OOM killer or a scheduler would) on the N-th write of a file called NAME, after the temporary
    file is complete and before it replaces NAME: the worst moment for a crash. Unset: nothing."""
    spec = os.environ.get("SLR_TEST_KILL_DURING_WRITE")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if Path(path).name != name:
        return
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if _kill_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_kill_counts: dict[str, int] = {}


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path``, created with mode 0666 so that the kernel applies the umask
    (and any default ACL) exactly as for an ordinary new file. O_EXCL: never reuse or follow a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = temporary_name(path)
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


@contextlib.contextmanager
def removed_on_failure(folder: Path):
    """Files written into ``folder`` inside the block that were not there before, and the folders
    the block created, are removed when it fails: a set of outputs is written whole or not at all
    (files it replaced were replaced atomically and stay new)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    before = set(os.listdir(folder)) if folder.is_dir() else set()
    try:
        yield
    except BaseException:
        if folder.is_dir():
            for name in set(os.listdir(folder)) - before:
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)
        for directory in missing:  # deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
