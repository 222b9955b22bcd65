"""InceptionV3GRU: a GRU over per-frame InceptionV3 features, with gloss and category heads.

Two inputs, chosen when the model is built:

- features (``frames=False``): ``x [B, T, input_dim]``, usually the 2048-d pooled InceptionV3
  features stored in the clips (``X2048``); no backbone is built, so checkpoints stay small;
- frames (``frames=True``): ``x [B, T, 3, H, W]`` ImageNet-normalised RGB (H, W >= 75, 299 as
  trained), encoded by InceptionV3 (slr/models/backbone.py) in chunks of ``frame_chunk_size``.

With ``feature_norm="clip"`` (slr's default) each clip's features are standardised before the GRU by
one mean and one standard deviation of all its real frames' values, as the plain GRU reference of
issue 24 does (+1 point on synthetic signers never seen, docs/results.md). The intent on real
video: a clip filmed brighter, with more contrast or by another camera shifts and scales many CNN
activations together, which two numbers per clip take out. Old checkpoints, stored before the
setting existed, rebuild with ``"none"``.

Only real frames are encoded and fed to the GRU: real frames are packed to the front of each row
(so a mask with holes also works) and run through ``pack_padded_sequence``, and pooling reads the
real steps only. A clip therefore gives the same logits alone or inside a padded batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from slr.models.backbone import FEATURE_DIM, build_inception_backbone
from slr.models.late_dropout import LateDropout
from slr.models.masking import full_mask, masked_mean, standardise_clips

GRUPooling = Literal["mean", "last", "mean_last"]
GRU_POOLING_MODES: tuple[str, ...] = ("mean", "last", "mean_last")
FeatureNorm = Literal["clip", "none"]
FEATURE_NORMS: tuple[str, ...] = ("clip", "none")


class InceptionV3GRU(nn.Module):
    def __init__(
        self,
        input_dim: int,
        num_gloss: int,
        num_cat: int,
        *,
        gru_hidden: int = 256,
        gru_layers: int = 2,
        gru_bidirectional: bool = True,
        dropout: float = 0.1,
        pooling: GRUPooling = "mean_last",
        frames: bool = False,
        pretrained_backbone: bool = True,
        backbone_weights: Optional[Path] = None,
        finetune_backbone: bool = False,
        frame_chunk_size: int = 32,
        late_dropout: float = 0.0,
        feature_norm: FeatureNorm = "clip",
    ):
        super().__init__()
        if pooling not in GRU_POOLING_MODES:
            raise ValueError(f"pooling must be one of {GRU_POOLING_MODES}, not {pooling!r}")
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, not {feature_norm!r}")
        self.feature_norm = feature_norm
        self.frames = frames
        self.finetune_backbone = finetune_backbone
        self.frame_chunk_size = frame_chunk_size
        self.pooling = pooling
        # With frames the GRU reads the backbone's output whatever width the data reported.
        self.input_dim = FEATURE_DIM if frames else input_dim

        self.backbone: Optional[nn.Module] = None
        if frames:
            self.backbone = build_inception_backbone(pretrained=pretrained_backbone, weights_path=backbone_weights)
            self.backbone.requires_grad_(finetune_backbone)
            if not finetune_backbone:
                self.backbone.eval()

        self.gru = nn.GRU(
            self.input_dim,
            gru_hidden,
            num_layers=gru_layers,
            batch_first=True,
            bidirectional=gru_bidirectional,
            dropout=dropout if gru_layers > 1 else 0.0,  # PyTorch applies it between layers only
        )
        self.directions = 2 if gru_bidirectional else 1
        step_width = gru_hidden * self.directions
        pooled_width = step_width * (2 if pooling == "mean_last" else 1)
        self.head_dropout = nn.Dropout(dropout)
        self.late_dropout = LateDropout(late_dropout)  # switched on by the trainer (slr/models/late_dropout.py)
        self.gloss_head = nn.Linear(pooled_width, num_gloss)
        self.cat_head = nn.Linear(pooled_width, num_cat)

    def train(self, mode: bool = True) -> "InceptionV3GRU":
        super().train(mode)
        # A frozen backbone stays in eval mode so its BatchNorm statistics never move.
        if self.backbone is not None and not self.finetune_backbone:
            self.backbone.eval()
        return self

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mask = full_mask(x, mask)
        batch, steps = mask.shape
        lengths = mask.sum(dim=1)
        # Real frames moved to the front of each row, in their order: the layout packing expects.
        front = torch.arange(steps, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
        real = x[mask]
        encoded = self._encode_frames(real) if self.backbone is not None else real
        features = encoded.new_zeros(batch, steps, encoded.shape[-1])
        features[front] = encoded
        if self.feature_norm == "clip":
            features = standardise_clips(features, front)

        self.gru.flatten_parameters()  # DataParallel replicas otherwise warn and run slower
        # An empty clip runs one zero step (packing refuses length 0); its pooled vector is zeroed.
        packed = pack_padded_sequence(
            features, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, last_hidden = self.gru(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)

        pooled = self._pool(outputs, last_hidden, front)
        pooled = pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)
        pooled = self.late_dropout(self.head_dropout(pooled))
        return self.gloss_head(pooled), self.cat_head(pooled)

    def _pool(self, outputs: Tensor, last_hidden: Tensor, front: Tensor) -> Tensor:
        parts = []
        if self.pooling in ("mean", "mean_last"):
            parts.append(masked_mean(outputs, front))
        if self.pooling in ("last", "mean_last"):
            # The last layer's final state per direction: the forward one after the last real frame,
            # the backward one after the first (packing makes both skip the padding).
            final = last_hidden[-self.directions :].transpose(0, 1)
            parts.append(final.reshape(final.shape[0], -1))
        return torch.cat(parts, dim=-1)

    def _encode_frames(self, images: Tensor) -> Tensor:
        """``[N, 3, H, W]`` → ``[N, 2048]``, a chunk at a time to bound activation memory."""
        assert self.backbone is not None
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.finetune_backbone):
            chunks = [self.backbone(chunk) for chunk in images.split(self.frame_chunk_size)]
        if not chunks:
            return images.new_zeros(0, FEATURE_DIM)
        return torch.cat(chunks)
