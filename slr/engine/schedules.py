"""Learning-rate schedules stepped once per optimizer step (the epoch-level ones live in the trainer).

`warmup_cosine`: a linear warm-up to the full --lr over --warmup-epochs, then a cosine to 0 at the
end of --epochs. The curve is closed-form in the step number and the total, so a resumed run that
raises --epochs follows the longer curve from where it stands. Small data sets give few steps per
epoch (234 clips in batches of 32 are 8 steps); a per-epoch warm-up would waste whole epochs.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

PER_STEP_SCHEDULERS = ("warmup_cosine",)


def optimizer_steps_per_epoch(batches_per_epoch: int, accumulation: int) -> int:
    return max(1, math.ceil(batches_per_epoch / max(1, accumulation)))


def warmup_cosine_factor(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr factor at optimizer step `step` (0 before the first step)."""
    total = max(1, total_steps)
    warmup = min(max(0, warmup_steps), total - 1) if total > 1 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_warmup_cosine(optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: float, steps_per_epoch: int):
    factor = warmup_cosine_factor(epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
