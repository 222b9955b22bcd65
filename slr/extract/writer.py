"""Writing clips so that a killed run never leaves a partial one, and knowing which are complete.

A clip is written to a hidden temporary file beside its final name (not named `*.npz`, so no
reader takes it for a clip) and renamed into place once complete (slr/atomic.py). A run
killed mid-write leaves at most such a temporary file, which the next run into that folder removes.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from slr.atomic import write_atomically
from slr.data.clip_meta import read_meta
from slr.extract.clip import Clip

#: The temporary names of slr.atomic (".NAME.npz.1a2b3c4d.tmp").
_TEMPORARY = re.compile(r"^\..+\.npz\.[0-9a-f]{8}\.tmp$")


def clip_path(output_dir: Path, video: Path) -> Path:
    """The clip of a video: the video's name with .npz, in the output folder."""
    return Path(output_dir) / (Path(video).stem + ".npz")


def write_clip(path: Path, clip: Clip) -> None:
    write_atomically(path, lambda f: np.savez_compressed(f, **clip.arrays()))


def completed_settings(path: Path, features: bool) -> Optional[dict[str, Any]]:
    """The extraction settings of a complete clip at `path` (one with X, mask, timestamps_ms and a
    meta written by slr, and X2048 when `features`); None when there is no such clip."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            needed = {"X", "mask", "timestamps_ms", "meta"} | ({"X2048"} if features else set())
            if not needed <= set(archive.files):
                return None
    except Exception:
        return None
    meta = read_meta(path)
    settings = meta.get("settings") if meta else None
    return settings if isinstance(settings, dict) else None


def remove_stale_temporaries(output_dir: Path) -> list[Path]:
    """Remove the temporary clip files a killed run left; returns those removed. (Two runs writing
    into one folder at the same time are not supported: each would also redo the other's clips.)"""
    removed: list[Path] = []
    if not Path(output_dir).is_dir():
        return removed
    for entry in Path(output_dir).iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file():
            with contextlib.suppress(OSError):
                os.unlink(entry)
                removed.append(entry)
    return removed
