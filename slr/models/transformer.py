"""SignTransformer: a pre-norm Transformer encoder over keypoint frames, with gloss and category heads.

Shape: ``x [B, T, input_dim]`` → linear projection → sinusoidal positions (any T) → encoder with a
key padding mask → mask-aware pooling → two linear heads. Padded frames influence nothing: they are
zeroed on the way in, hidden from attention as keys, and left out of the pooling.

With ``conv_kernel > 0`` every encoder layer is preceded by ``conv_blocks`` depthwise convolution
blocks (slr/models/conv_block.py), the convolution + transformer stack of the 2023 Kaggle
isolated-sign winner; at 0 (the default) the model is the plain transformer, weight for weight.
``late_dropout`` (slr/models/late_dropout.py) is a dropout before the heads that the trainer
switches on from a chosen epoch.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor, nn

from slr.models.conv_block import ConvStack
from slr.models.cpu_dropout import use_cpu_dropout
from slr.models.late_dropout import LateDropout
from slr.models.masking import full_mask, masked_max, masked_mean, zero_padding
from slr.models.positional import SinusoidalPositions

Pooling = Literal["mean", "max", "cls"]
POOLING_MODES: tuple[str, ...] = ("mean", "max", "cls")


class SignTransformer(nn.Module):
    def __init__(
        self,
        input_dim: int,
        num_gloss: int,
        num_cat: int,
        *,
        d_model: int = 256,
        num_heads: int = 8,
        num_layers: int = 4,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        pooling: Pooling = "mean",
        motion_features: bool = False,
        conv_kernel: int = 0,
        conv_blocks: int = 1,
        late_dropout: float = 0.0,
        attention_dropout: Optional[float] = None,
    ):
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, not {pooling!r}")
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        if conv_kernel < 0 or (conv_kernel and conv_blocks < 1):
            raise ValueError(f"conv_kernel {conv_kernel} / conv_blocks {conv_blocks}: need kernel 0 (off), or >= 1 with blocks >= 1")
        self.input_dim = input_dim
        self.pooling = pooling
        self.motion_features = motion_features

        # With motion features the projection also reads each frame's change from the previous one.
        self.input_proj = nn.Linear(2 * input_dim if motion_features else input_dim, d_model)
        self.positions = SinusoidalPositions(d_model)
        self.input_dropout = nn.Dropout(dropout)
        # The CLS token is added after the positions, so it has no place in time: it only gathers.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=ff_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # The attention weights' own dropout (None: `dropout`, as nn.TransformerEncoderLayer has it).
        # At 0, PyTorch's fused attention kernel runs in training too; with dropout > 0 a CPU has
        # only the plain path, which keeps every layer's [B, heads, T, T] maps for the backward.
        layer.self_attn.dropout = dropout if attention_dropout is None else float(attention_dropout)
        # Nested tensors (the eval fast path) drop padded frames and change the numerics of real
        # ones. norm_first already rules them out in today's PyTorch; saying so keeps them off
        # (and a clip's logits the same alone or in a padded batch) whatever the layer becomes.
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        # Absent, not empty, when off: a plain transformer's weights keep their names and number.
        self.conv_stacks = (
            nn.ModuleList(ConvStack(d_model, conv_kernel, conv_blocks, dropout) for _ in range(num_layers))
            if conv_kernel
            else None
        )
        self.head_dropout = nn.Dropout(dropout)
        self.late_dropout = LateDropout(late_dropout)
        self.gloss_head = nn.Linear(d_model, num_gloss)
        self.cat_head = nn.Linear(d_model, num_cat)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        # Its dropouts (the encoder layers' included) draw their masks at half the cost on the CPU.
        use_cpu_dropout(self)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mask = full_mask(x, mask)
        x = zero_padding(x, mask)
        if self.motion_features:
            x = torch.cat([x, frame_differences(x, mask)], dim=-1)
        h = self.input_proj(x)
        h = self.input_dropout(self.positions(h))
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1).to(h.dtype), h], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)

        if self.conv_stacks is None:
            h = self.encoder(h, src_key_padding_mask=self._key_padding(mask))
        else:
            h = self._conv_and_encode(h, mask)
        pooled = self._pool(h, mask)
        pooled = self.late_dropout(self.head_dropout(pooled))
        return self.gloss_head(pooled), self.cat_head(pooled)

    def _conv_and_encode(self, h: Tensor, mask: Tensor) -> Tensor:
        """Each encoder layer after its convolution blocks; the CLS token (which has no place in
        time) is left out of the convolutions and joins the frames in attention only."""
        assert self.conv_stacks is not None
        ignore = self._key_padding(mask)
        first = 1 if self.cls_token is not None else 0
        frames_mask = mask[:, first:]
        for stack, layer in zip(self.conv_stacks, self.encoder.layers):
            frames = stack(h[:, first:], frames_mask)
            h = torch.cat([h[:, :first], frames], dim=1) if first else frames
            h = layer(h, src_key_padding_mask=ignore)
        return self.encoder.norm(h) if self.encoder.norm is not None else h

    @staticmethod
    def _key_padding(mask: Tensor) -> Tensor:
        """True where attention must not look. A row with no real frame would softmax over nothing
        (NaN), so such a row attends to its padding instead; pooling discards it afterwards."""
        ignore = ~mask
        return ignore & ~ignore.all(dim=1, keepdim=True)

    def _pool(self, h: Tensor, mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return h[:, 0]
        if self.pooling == "max":
            return masked_max(h, mask)
        return masked_mean(h, mask)


def frame_differences(x: Tensor, mask: Tensor) -> Tensor:
    """[B, T, D] change of every frame from the one before; 0 on the first frame and wherever
    either frame is padding, so a clip's differences are the same alone or in a padded batch."""
    both = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1).to(x.dtype)
    return torch.cat([torch.zeros_like(x[:, :1]), (x[:, 1:] - x[:, :-1]) * both], dim=1)
