"""Depthwise 1-D convolution blocks that SignTransformer can put before each encoder layer.

After the 2023 Kaggle isolated-sign (ISLR) winner (hoyso48's ``Conv1DBlock``): expand each frame
(a linear layer, SiLU), a causal depthwise convolution over time, batch normalisation, efficient
channel attention (ECA), project back, and add to the input. Attention sees the whole clip at
once; the convolution adds what attention is slow to learn from few clips: the local shape of the
motion over a few frames.

Padding must not matter, as everywhere in the models (slr/models/masking.py):

- the convolution's input is zeroed on padded frames, so a real frame near the end of a clip sees
  zeros after it, as it does alone (where the convolution pads with zeros); the convolution is
  causal (a frame sees itself and the ``kernel - 1`` before it), as the winner's was;
- batch normalisation takes its statistics over real frames only, so the amount of padding in a
  batch never moves them (``nn.BatchNorm1d`` would count the padded frames);
- the channel attention averages over real frames only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slr.models.masking import masked_mean, zero_padding

#: The winner's choices: each frame is widened 2x inside the block; ECA's kernel over channels is 5.
EXPAND = 2
ECA_KERNEL = 5


class MaskedBatchNorm(nn.Module):
    """BatchNorm over ``x [B, T, C]`` whose training statistics count real frames only.

    In eval mode it is ``nn.BatchNorm1d`` (running statistics); the statistics are computed in
    float32 whatever the autocast type. A batch with no real frame leaves the running statistics
    as they were.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        values = x.float()
        if self.training:
            real = mask.unsqueeze(-1)
            count = real.sum().to(torch.float32)
            kept = count.clamp(min=1)
            mean = values.masked_fill(~real, 0.0).sum(dim=(0, 1)) / kept
            var = (values - mean).masked_fill(~real, 0.0).square().sum(dim=(0, 1)) / kept
            with torch.no_grad():
                step = self.momentum * (count > 0).to(torch.float32)  # nothing real: no update
                unbiased = var * kept / (kept - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), step)
                self.running_var.lerp_(unbiased.detach(), step)
        else:
            mean, var = self.running_mean, self.running_var
        out = (values - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, momentum={self.momentum}, eps={self.eps}"


class ChannelAttention(nn.Module):
    """ECA: each channel weighted by a sigmoid of a small convolution across the clip's channel means."""

    def __init__(self, kernel: int = ECA_KERNEL):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        means = masked_mean(x.float(), mask).to(x.dtype)  # [B, C], real frames only
        weights = torch.sigmoid(self.conv(means.unsqueeze(1)).squeeze(1))
        return x * weights.unsqueeze(1)


class ConvBlock(nn.Module):
    """``h + block(h)`` for ``h [B, T, width]``; ``dropout`` drops a whole clip's block output
    (the winner's ``noise_shape=(None, 1, 1)``), so the block is sometimes skipped for a clip."""

    def __init__(self, width: int, kernel: int, dropout: float = 0.0):
        super().__init__()
        if kernel < 1:
            raise ValueError(f"convolution kernel must be at least 1, not {kernel}")
        inner = width * EXPAND
        self.kernel = kernel
        self.dropout = dropout
        self.expand = nn.Linear(width, inner)
        self.depthwise = nn.Conv1d(inner, inner, kernel, groups=inner, bias=False)
        self.norm = MaskedBatchNorm(inner)
        self.attention = ChannelAttention()
        self.project = nn.Linear(inner, width)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        x = zero_padding(F.silu(self.expand(h)), mask)  # padded frames: the zeros a clip alone is padded with
        x = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # causal: only earlier frames
        x = self.depthwise(x).transpose(1, 2)
        x = self.attention(self.norm(x, mask), mask)
        x = self.project(x)
        if self.training and self.dropout > 0:
            keep = F.dropout(x.new_ones(x.shape[0], 1, 1), self.dropout, training=True)
            x = x * keep
        return h + x

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, dropout={self.dropout}"


class ConvStack(nn.Module):
    """``blocks`` ConvBlocks in a row (the winner ran 3 before each transformer block)."""

    def __init__(self, width: int, kernel: int, blocks: int, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(ConvBlock(width, kernel, dropout) for _ in range(blocks))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        for block in self.blocks:
            h = block(h, mask)
        return h
