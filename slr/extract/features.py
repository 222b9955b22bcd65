"""InceptionV3 features of frames: torchvision's network, its pooled 2048-d output (before the classifier).

The weights are torchvision's ImageNet InceptionV3 (`Inception_V3_Weights.IMAGENET1K_V1`), read from
a local file (`backbone_weights`) or from torchvision's own cache; nothing is downloaded. Frames go
through that weights' own preprocessing, `Inception_V3_Weights.IMAGENET1K_V1.transforms()`: resize
the shorter side to 342 (bilinear, antialiased), centre-crop 299x299, scale to [0, 1], normalise
with the ImageNet mean and std. The backbone (slr/models/backbone.py) then applies torchvision's
`transform_input`, as `torchvision.models.inception_v3(weights=IMAGENET1K_V1)` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from slr.errors import ConfigError, setting

FEATURE_KEY = "X2048"
PREPROCESSING = "torchvision Inception_V3_Weights.IMAGENET1K_V1.transforms(): resize 342, centre crop 299, ImageNet mean/std"


def torchvision_cache_file() -> Path:
    """Where torchvision keeps the ImageNet InceptionV3 weights once downloaded."""
    import torch
    from torchvision.models import Inception_V3_Weights

    url = Inception_V3_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def resolve_weights(weights_path: Optional[Path]) -> Path:
    """The weights file to use: the one given, else torchvision's cached copy; never a download."""
    if weights_path is not None:
        return Path(weights_path)
    cached = torchvision_cache_file()
    if cached.is_file():
        return cached
    from torchvision.models import Inception_V3_Weights

    raise ConfigError(
        f"features need InceptionV3 ImageNet weights and none were found: put the file "
        f"{Inception_V3_Weights.IMAGENET1K_V1.url} at {cached} (torchvision's cache), or give its path "
        f"with {setting('backbone_weights')}"
    )


class FeatureExtractor:
    """Frames (uint8 RGB [H, W, 3]) -> float32 [N, 2048], `batch_size` frames per forward pass."""

    def __init__(self, weights_path: Optional[Path], batch_size: int = 16, device: str = "cpu"):
        import torch
        from torchvision.models import Inception_V3_Weights

        from slr.models.backbone import build_inception_backbone

        self.weights_file = resolve_weights(weights_path)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.net = build_inception_backbone(pretrained=True, weights_path=self.weights_file).eval().to(self.device)
        self.preprocess = Inception_V3_Weights.IMAGENET1K_V1.transforms()

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        out = [np.zeros((0, 2048), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = frames[start : start + self.batch_size]
                # Frames of one video share a size, so the batch is one tensor [B, 3, H, W].
                batch = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2)
                x = self.preprocess(batch).to(self.device)
                out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)
