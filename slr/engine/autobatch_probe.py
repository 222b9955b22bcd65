"""The --auto-batch-size probe's step: the trainer's own training step, on a fresh copy of the model.

A fresh model, built and run inside a fork of the random streams, so that probing leaves the run's
weights and random streams as they were (the model's initialisation and dropout draw from them); the
TrainStep, so that what is measured is what training will run (autocast, loss, scaling,
clipping, the optimizer's state).
"""

from __future__ import annotations

from typing import Callable

import torch

from slr.data.dataset import ClipBatch
from slr.engine.trainer import TrainStep


def probe_step(settings, data, device: torch.device, amp) -> Callable[[int], None]:
    """``step(batch)``: one training step on ``batch`` clips of the data set's longest length."""
    from slr.models.registry import build_model

    with _own_random_streams(device):
        model = build_model(settings.model, settings, data.input_dim, settings.num_gloss, settings.num_cat).to(device)
    train_step = TrainStep(settings, model, device, amp)  # no run folder: the probe writes nothing
    frames, width = data.longest_clip, data.input_dim
    generator = torch.Generator().manual_seed(0)

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
            with _own_random_streams(device):
                train_step.forward_backward(clips)
                train_step.optimizer_step()
        finally:
            # A step that ran out of memory half-way leaves gradients behind; the next, smaller try
            # must not pay for them.
            train_step.optimizer.zero_grad(set_to_none=True)

    return step


def _own_random_streams(device: torch.device):
    """The global streams as they were after the block (CPU, and this GPU's on CUDA)."""
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=gpus)
