"""Sinusoidal positional encodings computed for whatever length arrives.

A learned table, or a buffer sized once, caps the clip length (the original model refused clips
over 300 frames). Computing the encodings per call costs one small ``[T, d]`` tensor and works for
any ``T``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_encoding(length: int, width: int, *, device=None, dtype=torch.float32) -> Tensor:
    """The ``[length, width]`` encodings of "Attention Is All You Need" (sin on even, cos on odd)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / width)
    )
    angles = position * frequency
    encoding = torch.zeros(length, width, device=device, dtype=torch.float32)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : width // 2])
    return encoding.to(dtype)


class SinusoidalPositions(nn.Module):
    """Adds position information to ``x [B, T, width]`` for any ``T``; no parameters, no state."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        return x + sinusoidal_encoding(x.shape[1], self.width, device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"width={self.width}"
