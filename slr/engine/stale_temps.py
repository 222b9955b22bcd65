"""Temporary files that killed slr processes left in a folder, removed by the next run there.

An atomic write (slr/atomic.py) fills ``.<target>.<host>-<pid>-<random>.tmp`` and renames
it into place; a process killed in between (SIGKILL, the OOM killer, a power cut, a second Ctrl-C)
leaves the temporary file, as large as a checkpoint. The next training run in the folder, once it
holds the folder's lock (slr/engine/run_lock.py), removes those of this machine whose process is
gone. Files written by another host, by a live process, or under any other name are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from slr.atomic import TEMP_TAG, host_tag

_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(TEMP_TAG)
                        + r"(\.[A-Za-z0-9.]+)?$")


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def stale_temporaries(folder: Path) -> list[Path]:
    """slr's temporary files in ``folder`` whose writer, a process of this machine, no longer runs."""
    here = host_tag()
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != here or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not process_alive(pid):
            found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Remove them; return a note per file removed (its name and size)."""
    notes = []
    for path in stale_temporaries(folder):
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            notes.append(f"removed {path.name} ({size / 2**20:.1f} MiB), left in {folder} by a killed slr process")
    return notes
