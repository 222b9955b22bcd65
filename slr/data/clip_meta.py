"""The `meta` a clip may carry (a JSON string, as the original FSL-105 files and `slr extract` write
it), and the part of it that says how a directory's clips were extracted from video.

Training stores that part in its checkpoints so that `slr predict` can extract videos the same way.
numpy only, like the rest of slr/data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

#: The meta entries that describe the extraction, not one video (its name, size, frame count).
EXTRACTION_KEYS = ("extractor", "extractor_version", "layout", "order", "coordinates", "settings", "features",
                   "slr_version", "frame_size")


def read_meta(path: Path) -> Optional[dict[str, Any]]:
    """A clip's meta as a dict; None when it has none, or it is not a JSON object."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                return None
            meta = json.loads(str(archive["meta"][()]))
    except Exception:  # unreadable clips are reported by the clip checks, not here
        return None
    return meta if isinstance(meta, dict) else None


def extraction_of(directory: Path) -> Optional[dict[str, Any]]:
    """How the first clip of `directory` (by name) was extracted, from its meta; None when it does
    not say (clips made elsewhere, or without a meta)."""
    first = next(iter(sorted(Path(directory).glob("*.npz"))), None)
    meta = read_meta(first) if first is not None else None
    if not meta or not isinstance(meta.get("settings"), dict):
        return None
    return {k: meta[k] for k in EXTRACTION_KEYS if k in meta}
