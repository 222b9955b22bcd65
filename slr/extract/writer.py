"""Writing clips so that a killed run never leaves a partial one, and knowing which are complete.

A clip is written to a hidden temporary file beside its final name (not named `*.npz`, so no
reader takes it for a clip) and renamed into place once complete (slr/atomic.py). A run
killed mid-write leaves at most such a temporary file, which the next run into that folder removes.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Optional

import numpy as np

from slr.atomic import write_atomically
from slr.engine.run_folder import stale_temporaries
from slr.data.clip_meta import read_meta
from slr.data.clips import MIRROR_SUFFIX
from slr.extract.clip import Clip



def clip_path(output_dir: Path, video: Path) -> Path:
    """The clip of a video: the video's name with .npz, in the output folder."""
    return Path(output_dir) / (Path(video).stem + ".npz")


def write_clip(path: Path, clip: Clip) -> None:
    """The archive is built in memory and written in one call: when the disk (or `ulimit -f`) refuses
    the write, numpy's ZipFile is not left half-closed on the file, to print `Exception ignored in
    ZipFile.__del__` tracebacks when it is collected. A clip is a few MB at most (clip_limits.py)."""
    archive = io.BytesIO()
    np.savez_compressed(archive, **clip.arrays())
    write_atomically(path, lambda f: f.write(archive.getbuffer()))


def completed_settings(path: Path, features: bool, mirror_features: bool = False) -> Optional[dict[str, Any]]:
    """The extraction settings of a complete clip at `path` (one with X, mask, timestamps_ms and a
    meta written by slr, X2048 when `features`, X2048_mirror when `mirror_features`); None when
    there is no such clip."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            needed = {"X", "mask", "timestamps_ms", "meta"} | ({"X2048"} if features else set())
            needed |= {"X2048" + MIRROR_SUFFIX} if features and mirror_features else set()
            if not needed <= set(archive.files):
                return None
    except Exception:
        return None
    meta = read_meta(path)
    if meta and meta.get("incomplete"):  # from a damaged or half-copied video: tried again, it may be whole now
        return None
    settings = meta.get("settings") if meta else None
    return settings if isinstance(settings, dict) else None


def remove_stale_temporaries(output_dir: Path) -> list[Path]:
    """Remove the temporary clip files a killed run left (slr.atomic's names, of a process of this
    machine that is gone; a live run's are left alone); returns those removed."""
    removed: list[Path] = []
    for path in stale_temporaries(Path(output_dir)):
        if ".npz." in path.name:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed
