"""The files of a run: checked before any work starts, and an earlier run's kept, never overwritten.

Every guide example writes to the default --output-dir, so a second run there is normal use, not
a mistake: the files it would replace (checkpoints, log, curves, settings.json) are moved into
``<output-dir>/earlier/<time>/`` first, and the run says so.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from slr.engine.trainer import RunPaths
from slr.errors import ConfigError

LOG_HEADER_START = "epoch,"


def check_writable(paths: RunPaths) -> None:
    """Fail now, naming the flag, rather than after the first epoch when the log is first written."""
    _writable_dir(paths.output_dir, "--output-dir")
    log = paths.log_csv
    if log.is_dir() or str(log) in ("", "."):
        raise ConfigError(f"--log-csv: {log} is a directory; give a file name such as {log / 'log.csv'}")
    _writable_dir(log.parent, "--log-csv")
    if log.is_file() and not _is_slr_log(log):
        raise ConfigError(
            f"--log-csv: {log} exists and is not an slr training log (it does not start with "
            f"'{LOG_HEADER_START}...'); it is left as it is: choose another file"
        )


def _writable_dir(directory: Path, flag: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{flag}: {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write in {directory}: {exc.strerror or exc}") from None


def _is_slr_log(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return first == "" or first.startswith(LOG_HEADER_START)


def keep_earlier_run(paths: RunPaths, resume_path: Optional[Path] = None) -> tuple[Optional[Path], list[str]]:
    """Move the files this run would overwrite into ``earlier/<time>/``; return that folder and
    the names moved (None and [] when there is nothing to keep).

    A run resumed from its own ``_last.pt`` (or an identical copy) continues in place: nothing
    moves. The checkpoint a run resumes from stays where it is.
    """
    targets = [paths.last, paths.best, paths.log_csv, paths.log_csv.with_suffix(".png"), paths.settings_json]
    if resume_path is not None and _same_file(resume_path, paths.last):
        return None, []
    source = resume_path.resolve() if resume_path is not None else None
    present = [p for p in dict.fromkeys(targets) if p.is_file() and p.resolve() != source]
    if not present:
        return None, []
    folder = _fresh_folder(paths.output_dir / "earlier")
    for path in present:
        shutil.move(path, folder / path.name)  # a --log-csv elsewhere may sit on another file system
    return folder, [p.name for p in present]


def _same_file(a: Path, b: Path) -> bool:
    if not b.is_file():
        return False
    if a.resolve() == b.resolve():
        return True
    return filecmp.cmp(a, b, shallow=False)


def _fresh_folder(parent: Path) -> Path:
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{parent} is a file: cannot keep the earlier run's files there; move it away")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise ConfigError(f"{parent}: too many earlier runs with the same time stamp")
