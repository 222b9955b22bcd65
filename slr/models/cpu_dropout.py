"""Dropout whose mask is cheap on the CPU: the same dropout in about half the time.

Why: on the CPU, torch's dropout draws its mask with `bernoulli_`, one call of the Mersenne
Twister per element on one thread. At the guide's sizes (d-model 256, ff-dim 1024, batch 32 of
20 frames) the transformer's dropouts draw about 4 million elements a step, and `bernoulli_` was
the largest single cost of a bfloat16 step: 32% of its CPU time, more than the matrix products
(torch.profiler, 2 threads). Here one 64-bit draw makes four 16-bit numbers, and an element is
kept where its number is at or above `p` of the range: a dropout's forward and backward take about
half as long as torch's, the guide's whole step 0.85x (`benchmarks/cpu_dropout.py`).

What stays the same: the random numbers come from torch's default generator, so `--seed`, the
checkpoints' random state and `slr resume` cover them as before; the kept elements are scaled
by 1 / (1 - p) as in `nn.Dropout`. What differs: `p` is rounded to a multiple of 1/65536 (0.1
becomes 0.100006; the scale uses the rounded value, so the mean is kept exactly), and the masks
are other draws than torch's, so a run is not bit for bit the run of an earlier slr. Where the
rounding would move `p` by more than 1% of itself (p below about 0.0015), on a GPU (whose dropout
kernel is already fused), in evaluation and at p 0 or 1, torch's own dropout runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: 16-bit numbers: four from each 64-bit draw
_LEVELS = 1 << 16
#: the largest relative change rounding may make to p before torch's own dropout is used instead
_MAX_P_ROUNDING = 0.01


def rounded_drop_levels(p: float) -> int | None:
    """How many of the 65536 levels drop an element, or None where rounding moves p by over 1%."""
    levels = round(p * _LEVELS)
    if not 0 < levels < _LEVELS or abs(levels / _LEVELS - p) > _MAX_P_ROUNDING * p:
        return None
    return levels


def keep_mask(shape: torch.Size, drop_levels: int, dtype: torch.dtype,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A CPU tensor of `shape` and `dtype`: 1 where an element is kept, 0 where it is dropped."""
    count = math.prod(shape)
    draws = torch.empty((count + 3) // 4, dtype=torch.int64)
    # The whole int64 range (random_() alone leaves the sign bit 0, which would bias every fourth number).
    draws.random_(-(2**63), 2**63 - 1, generator=generator)
    numbers = draws.view(torch.int16)[:count].view(shape)  # uniform over -32768 .. 32767
    return (numbers >= drop_levels - _LEVELS // 2).to(dtype)


def keep_scale(drop_levels: int) -> float:
    """1 / (1 - p) for the rounded p."""
    return _LEVELS / (_LEVELS - drop_levels)


class CpuDropout(nn.Dropout):
    """`nn.Dropout` with the mask above on the CPU; torch's own elsewhere. Same state (none), same
    `p`; `inplace` is ignored on the CPU path (the product is a new tensor, always safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = rounded_drop_levels(self.p) if self.training else None
        if levels is None or x.device.type != "cpu":
            return super().forward(x)
        # The scale as a Python number, so that the product is rounded once from float, as torch's
        # dropout does: a mask holding 1 / (1 - p) in bfloat16 would be 1.109 for 1.111.
        return x * keep_mask(x.shape, levels, x.dtype) * keep_scale(levels)


def use_cpu_dropout(model: nn.Module) -> nn.Module:
    """Every plain `nn.Dropout` in `model` replaced, in place, by `CpuDropout` of the same p."""
    for name, child in model.named_children():
        if type(child) is nn.Dropout:
            setattr(model, name, CpuDropout(child.p, child.inplace))
        else:
            use_cpu_dropout(child)
    return model
