"""Length buckets: the few frame counts a batch is padded up to, taken from the data.

Why: clips of varying length (and speed augmentation, which changes lengths every epoch) give
nearly every batch a new shape. The C allocator keeps the freed blocks of every shape it has
seen, so a process training on 14 MB of clips of up to 180 frames grew from 2.1 GB to 3.6 GB
(docs/results.md). Padding each batch up to one of a few lengths bounds the number of shapes.
Padding is masked, so the model's outputs do not change (tested on both models).

The lengths come from the data so that padding costs little: quantiles of the clip lengths (a
data set whose clips all have 20 frames gets the bucket 20 and no padding at all), then steps
of 5% up to the longest a clip can become after speed augmentation.
"""

from __future__ import annotations

import bisect
import math
from typing import Optional, Sequence

#: The top of the range (longest clip to longest after speed-up) is covered in steps this fine.
TOP_STEP = 0.05


def length_buckets(
    lengths: Sequence[int], count: int, *, stretch: float = 0.0, max_frames: Optional[int] = None
) -> list[int]:
    """About ``count`` increasing frame counts covering every length a batch can have.

    lengths: the clips' frame counts; stretch: the largest relative lengthening by augmentation
    (speed jitter 0.2 plays a clip at 0.8x, 1.25x as long); max_frames: the cap on any clip.
    """
    if count <= 0 or not lengths:
        return []
    ordered = sorted(int(n) for n in lengths)
    cap = max_frames or math.inf
    edges = {min(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * k / count) - 1)], cap) for k in range(1, count + 1)}
    longest = ordered[-1]
    top = min(math.ceil(longest * (1 + stretch)), cap) if stretch > 0 else min(longest, cap)
    step = longest * (1 + TOP_STEP)
    while step < top:
        edges.add(math.ceil(step))
        step *= 1 + TOP_STEP
    edges.add(top)
    return sorted(int(e) for e in edges)


def bucket_length(frames: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``frames`` (``frames`` itself above every bucket)."""
    i = bisect.bisect_left(buckets, frames)
    return buckets[i] if i < len(buckets) else frames


def buckets_for(settings, lengths: Sequence[int], train: bool) -> list[int]:
    """The buckets of one split from its settings: ``length_buckets`` lengths, stretched for speed
    augmentation in training (a clip played at 0.8x speed is 1.25x as long)."""
    jitter = settings.speed_jitter if (train and settings.augment) else 0.0
    stretch = 1 / (1 - jitter) - 1 if jitter else 0.0
    return length_buckets(lengths, settings.length_buckets, stretch=stretch, max_frames=settings.max_frames)
