"""--auto-batch-size: measured by probing real steps on CUDA, a memory rule elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slr.engine import hardware


@dataclass(frozen=True)
class BatchChoice:
    batch_size: int
    method: str  # "measured" or "memory rule"
    reason: str


def choose_batch_size(
    model_name: str,
    settings,
    input_dim: int,
    frames: int,
    device: torch.device,
    num_gloss: int,
    num_cat: int,
) -> BatchChoice:
    """The batch size (8-64) for clips of ``frames`` frames (the longest of the data set)."""
    if device.type == "cuda":
        step = _probe_step(model_name, settings, input_dim, frames, device, num_gloss, num_cat)
        size, reason = hardware.probe_batch_size(step, device)
        return BatchChoice(size, "measured", reason)
    per_sample = hardware.activation_bytes_per_sample(model_name, settings, input_dim, frames)
    if device.type == "mps":
        available = int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory())
    else:
        available = hardware.ram_bytes()[1]
    size, reason = hardware.batch_size_from_memory(available, per_sample)
    return BatchChoice(size, "memory rule", f"{reason} ({frames}-frame clips)")


def _probe_step(model_name, settings, input_dim, frames, device, num_gloss, num_cat):
    """One real optimizer step at a given batch size, with the run's AMP setting; never compiled."""
    from slr.models.registry import build_model

    model = build_model(model_name, settings, input_dim, num_gloss, num_cat).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    dtype = hardware.amp_dtype(device, getattr(settings, "amp_dtype", "auto")) if settings.amp else None

    def step(batch: int) -> None:
        x = torch.randn(batch, frames, input_dim, device=device)
        mask = torch.ones(batch, frames, dtype=torch.bool, device=device)
        gloss = torch.randint(0, num_gloss, (batch,), device=device)
        cat = torch.randint(0, num_cat, (batch,), device=device)
        try:
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                gloss_logits, cat_logits = model(x, mask)
                loss = torch.nn.functional.cross_entropy(gloss_logits, gloss) + torch.nn.functional.cross_entropy(
                    cat_logits, cat
                )
            loss.backward()
            optimizer.step()
        finally:
            # A step that ran out of memory half-way leaves gradients behind; the next, smaller try
            # must not pay for them.
            optimizer.zero_grad(set_to_none=True)

    return step
