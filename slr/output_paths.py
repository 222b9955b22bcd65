"""Checks on where slr will write (training outputs, `slr evaluate`, `slr export`, `slr plot`), made before any work.

Without them a bad path fails only at the end, after minutes of work, with an OS message such as
"File exists" that names neither the flag nor what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional


def check_output_dir(directory: Path, flag: str) -> None:
    """Refuse a directory that is a file, lies below a file, or cannot be written to."""
    _check_place(Path(directory), Path(directory), flag)


def check_output_file(path: Path, flag: str) -> None:
    """Refuse a file path that is a directory, or whose directory cannot be made or written to."""
    from slr.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} is a directory; give a file name", path)
    _check_place(path.parent, path, flag)


def _check_place(directory: Path, given: Path, flag: str) -> None:
    """``directory`` (where ``given``, the flag's value, is written) can be made and written to."""
    from slr.errors import ConfigError

    existing = _nearest_existing(directory)
    if existing is None:
        return
    if not existing.is_dir():
        if existing == given:
            raise ConfigError(f"{flag} exists and is not a directory", given)
        raise ConfigError(f"{flag} {given}: {existing} exists and is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {given}: cannot write in {existing} (permission denied)")


def same_file(a: Path, b: Path) -> bool:
    """True when both paths name one existing file (same path after links, or a hard link)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def clashing_input(outputs: Iterable[Path], inputs: Iterable[Optional[Path]]) -> Optional[tuple[Path, Path]]:
    """The first (output, input) pair that are one file: writing there would destroy an input."""
    inputs = [Path(p) for p in inputs if p is not None]
    for output in outputs:
        for source in inputs:
            if same_file(output, source):
                return Path(output), source
    return None


def _nearest_existing(path: Path) -> Optional[Path]:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None
