"""Mask helpers shared by the models: padded frames must never reach a result.

A mask is bool ``[B, T]`` with True on real frames (see docs/architecture.md); ``None`` means every
frame is real. Padded positions are filled with ``masked_fill`` rather than multiplied by zero, so
that a NaN or inf stored in padding cannot leak through ``0 * nan``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def full_mask(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """The mask to use: ``mask`` as bool, or all True for ``[B, T, ...]`` input when it is None."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match input batch/time {tuple(x.shape[:2])}")
    return mask.to(device=x.device, dtype=torch.bool)


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """``x [B, T, ...]`` with its padded frames set to exactly zero."""
    keep = mask.view(*mask.shape, *([1] * (x.dim() - 2)))
    return x.masked_fill(~keep, 0.0)


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h [B, T, C]`` over real frames; a row with no real frame gives zeros, not NaN."""
    total = zero_padding(h, mask).sum(dim=1)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
    return total / count


def masked_max(h: Tensor, mask: Tensor) -> Tensor:
    """Max of ``h [B, T, C]`` over real frames; a row with no real frame gives zeros, not -inf."""
    lowest = torch.finfo(h.dtype).min
    best = h.masked_fill(~mask.unsqueeze(-1), lowest).amax(dim=1)
    return best.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)


def standardise_clips(h: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """``h [B, T, C]`` with each clip's real frames shifted and scaled by one mean and one standard
    deviation of all their values (a scalar each per clip); padding comes back as zeros. Statistics
    are taken in float32, so half-precision features summed over thousands of values cannot overflow."""
    keep = mask.unsqueeze(-1)
    values = zero_padding(h, mask).float()
    count = (mask.sum(dim=1).clamp(min=1) * h.shape[-1]).to(values.dtype).view(-1, 1, 1)
    mean = values.sum(dim=(1, 2), keepdim=True) / count
    centred = (values - mean).masked_fill(~keep, 0.0)  # padding back to zero, and out of the spread
    sd = ((centred**2).sum(dim=(1, 2), keepdim=True) / count).sqrt()
    sd = torch.where(sd > eps, sd, torch.ones_like(sd))  # a constant clip is only shifted
    return (centred / sd).to(h.dtype)
