"""Late dropout: a strong dropout before the classifier heads that is switched on only after the
first epochs (the 2023 Kaggle isolated-sign winner's ``LateDropout``, 0.8 there).

Early on the model has to find any signal at all, and a high dropout slows that; once it fits the
training clips, the same dropout keeps the heads from memorising them. The module has no weights,
so a model with it and one without have the same state dict: checkpoints load either way.

The trainer switches it (``switch_late_dropout``) at the start of every training epoch from the
epoch's number alone, so a resumed run has it exactly where a run straight through would.
Evaluation (eval mode) never drops anything.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LateDropout(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"late dropout must be in [0, 1), not {p}")
        self.p = float(p)
        self.active = False  # switched by the trainer; off until then (and in every fresh model)

    def forward(self, x: Tensor) -> Tensor:
        if self.active and self.training and self.p > 0:
            return F.dropout(x, self.p, training=True)
        return x

    def extra_repr(self) -> str:
        return f"p={self.p}, active={self.active}"


def switch_late_dropout(model: nn.Module, active: bool) -> None:
    """Every LateDropout inside ``model`` (through DataParallel / DDP / compile wrappers) on or off."""
    for module in model.modules():
        if isinstance(module, LateDropout):
            module.active = bool(active)
