"""The --auto-batch-size probe's step: the trainer's own training step, on a fresh copy of the model.

A fresh model, so that probing leaves the run's weights and random streams as they were; the
trainer's step, so that what is measured is what training will run (autocast, loss, scaling,
clipping, the optimizer's state).
"""

from __future__ import annotations

from typing import Callable

import torch

from slr.data.dataset import ClipBatch
from slr.engine.distributed import DistInfo
from slr.engine.observer import SilentObserver
from slr.engine.trainer import Trainer


def probe_step(settings, data, device: torch.device, amp) -> Callable[[int], None]:
    """``step(batch)``: one training step on ``batch`` clips of the data set's longest length."""
    from slr.models.registry import build_model

    model = build_model(settings.model, settings, data.input_dim, settings.num_gloss, settings.num_cat).to(device)
    trainer = Trainer(settings, model, None, None, device, None, DistInfo(), SilentObserver(), amp, {})
    frames, width = data.longest_clip, data.input_dim
    generator = torch.Generator().manual_seed(0)  # never the global stream: the run's RNG stays untouched

    def step(batch: int) -> None:
        clips = ClipBatch(
            x=torch.randn(batch, frames, width, generator=generator).to(device),
            mask=torch.ones(batch, frames, dtype=torch.bool, device=device),
            lengths=torch.full((batch,), frames, device=device),
            gloss=torch.randint(0, settings.num_gloss, (batch,), generator=generator).to(device),
            cat=torch.randint(0, settings.num_cat, (batch,), generator=generator).to(device),
            index=torch.arange(batch, device=device),
        )
        try:
            trainer.train_step(clips, window=1)
            trainer.optimizer_step()
        finally:
            # A step that ran out of memory half-way leaves gradients behind; the next, smaller try
            # must not pay for them.
            trainer.optimizer.zero_grad(set_to_none=True)

    return step
