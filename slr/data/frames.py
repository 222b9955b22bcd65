"""Shortening clips longer than `max_frames` (the `--long-clips` policy).

- "sample": keep `max_frames` frames evenly spread over the whole clip, first and last included,
  so the model sees the whole sign at a lower frame rate. The same frames every time.
- "crop": keep `max_frames` consecutive frames: a random window in training (a mild
  augmentation), the centred window otherwise (repeatable evaluation).

Clips at or under the limit are returned unchanged: padding is the batch's job.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

LongClipPolicy = Literal["sample", "crop"]


def sample_indices(length: int, max_frames: int) -> np.ndarray:
    """`max_frames` frame indices evenly spread over `range(length)`, in order, ends included."""
    return np.linspace(0, length - 1, max_frames).round().astype(np.int64)


def fit_length(
    x: np.ndarray,
    max_frames: Optional[int],
    policy: LongClipPolicy,
    rng: np.random.Generator,
    *,
    random_crop: bool,
) -> np.ndarray:
    """`x` [T, D] shortened to at most `max_frames` frames by `policy` (a view where possible)."""
    length = len(x)
    if not max_frames or length <= max_frames:  # None or 0: no limit
        return x
    if policy == "sample":
        return x[sample_indices(length, max_frames)]
    if policy == "crop":
        spare = length - max_frames
        start = int(rng.integers(0, spare + 1)) if random_crop else spare // 2
        return x[start : start + max_frames]
    raise ValueError(f"unknown long-clip policy {policy!r}; expected 'sample' or 'crop'")
