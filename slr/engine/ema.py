"""An exponential moving average of the weights (as timm's ModelEmaV2), for validation and checkpoints.

After every optimizer step the average moves towards the training weights by (1 - decay); early
on the decay is capped at (1 + n) / (10 + n) after n updates, so the average is not dominated by
the random initial weights. Validation runs on the average, and checkpoints store it as their
`model_state` (what evaluate, predict and export load); the training weights and the update count
travel beside it (`ema_state`) so that a resumed run continues both exactly.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Optional

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for name, value in model.state_dict().items():
            average = self.shadow[name]
            if average.dtype.is_floating_point:
                average.mul_(d).add_(value.detach().to(average.dtype), alpha=1 - d)
            else:  # counters such as BatchNorm's num_batches_tracked follow the model
                average.copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """The averaged weights in `model` inside the block, the training weights back after it."""
        training = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(training)

    def extra_state(self, model: nn.Module) -> dict[str, Any]:
        """What a checkpoint needs beside the averaged weights to resume exactly."""
        return {"decay": self.decay, "updates": self.updates, "training_weights": dict(model.state_dict())}

    def restore(self, model: nn.Module, extra: Optional[Mapping[str, Any]]) -> None:
        """`model` holds the checkpoint's `model_state`: with `extra`, that is the average; without
        (a checkpoint of a run without averaging), the average starts from those weights."""
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if extra:
            self.updates = int(extra.get("updates", 0))
            model.load_state_dict(extra["training_weights"])


def averaged_weights(average: Optional[WeightAverage], model: nn.Module):
    """A context in which `model` holds the averaged weights (nothing changes without averaging)."""
    return average.applied(model) if average is not None else contextlib.nullcontext()
