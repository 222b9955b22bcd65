"""What every format's reader returns, and what the importer hands each worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from slr.errors import DataError


class BadSource(DataError):
    """A source sequence that cannot be imported; the message names its file and the problem."""


@dataclass(frozen=True)
class SourceSequence:
    """One sequence found in the sources: where it is, the clip it becomes, its sign and groups."""

    path: Path  # a file (parquet, .pose) or a folder of frame files (OpenPose JSON, npy)
    clip: str  # the clip's name, without .npz
    sign: Optional[str]  # None: the source does not say (not in GISLR's train.csv)
    groups: tuple[tuple[str, str], ...] = ()  # labels.csv columns: signer, sequence_id, folder, ...
    video: Optional[str] = None  # OpenPose: only this video's frames of a folder holding several


@dataclass
class Sequence:
    """A source sequence as read: each part's points in the source's own numbering, NaN where the
    source says the point was not found."""

    parts: dict[str, np.ndarray]  # part -> [T, points of the part, coordinates]
    frames: int
    version: str  # the format's version as the file states it
    coordinates: str  # the coordinate frame, and how x and y were normalised
    timestamps_ms: Optional[np.ndarray] = None
    notes: dict[str, Any] = field(default_factory=dict)  # kept in the clip's meta
    warnings: list[str] = field(default_factory=list)  # for the user: imported, but look at this

    def found_share(self) -> dict[str, float]:
        """For each part the share of frames in which any of its points was found."""
        return {part: float(np.isfinite(a[..., 0]).any(axis=1).mean()) if self.frames else 0.0
                for part, a in self.parts.items()}


def part_array(frames: int, points: int, dims: int = 3) -> np.ndarray:
    return np.full((frames, points, dims), np.nan, np.float32)
