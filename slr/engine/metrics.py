"""Running sums for an epoch, kept on the device so reading them does not sync every step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slr.engine.distributed import DistInfo, all_reduce_sum


class RunningTotals:
    """Sample-weighted loss and correct counts: the epoch mean, not the last batch's value."""

    def __init__(self, device: torch.device, initial: list[float] | None = None):
        # [loss_sum, gloss_correct, cat_correct, samples]
        self.values = torch.tensor(initial or [0.0, 0.0, 0.0, 0.0], dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, gloss_logits, cat_logits, gloss, cat) -> None:
        n = gloss.shape[0]
        update = torch.stack(
            [
                loss.detach().double() * n,
                (gloss_logits.argmax(-1) == gloss).sum().double(),
                (cat_logits.argmax(-1) == cat).sum().double(),
                torch.tensor(float(n), dtype=torch.float64, device=gloss.device),
            ]
        )
        self.values += update

    def loss_is_finite(self) -> bool:
        return bool(torch.isfinite(self.values[0]).item())

    def as_list(self) -> list[float]:
        return [float(v) for v in self.values.tolist()]

    def summary(self, info: DistInfo) -> "EpochTotals":
        totals = all_reduce_sum(self.values.clone(), info).tolist()
        return EpochTotals(*totals)


@dataclass(frozen=True)
class EpochTotals:
    loss_sum: float
    gloss_correct: float
    cat_correct: float
    samples: float

    @property
    def loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def gloss_acc(self) -> float:
        return self.gloss_correct / self.samples if self.samples else 0.0

    @property
    def cat_acc(self) -> float:
        return self.cat_correct / self.samples if self.samples else 0.0
