"""Saying what a path is when it is not the regular file a clip, labels or classes file must be.

"not found" is wrong for a directory, a broken symbolic link or a FIFO that is right there:
the user would look for a missing file instead of the thing in the way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "something other than a regular file")


def describe_non_file(path: Path) -> str:
    """What `path` is, for a path that is not a readable regular file: "not found", "a directory", ...

    Phrased to follow "is": `f"{path} is {describe_non_file(path)}"`.
    """
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return f"not accessible ({exc.strerror or exc})"
    if not stat.S_ISLNK(info.st_mode):
        return _kind(info.st_mode)
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        pointed = path.stat()
    except OSError:  # the target is missing, or the links loop
        return f"a broken symbolic link (to {target})"
    return f"a symbolic link to {_kind(pointed.st_mode)} ({target})"
