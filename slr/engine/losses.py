"""The training objective: alpha * CE(gloss) + beta * CE(category), with optional label smoothing.

Label smoothing is applied to the training loss only; validation reports the plain cross-entropy,
so val_loss stays comparable between runs with and without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gloss_and_category_loss(
    gloss_logits: torch.Tensor,
    cat_logits: torch.Tensor,
    gloss: torch.Tensor,
    cat: torch.Tensor,
    alpha: float,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    return alpha * F.cross_entropy(gloss_logits.float(), gloss, label_smoothing=label_smoothing) + beta * F.cross_entropy(
        cat_logits.float(), cat, label_smoothing=label_smoothing
    )
