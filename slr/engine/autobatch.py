"""--auto-batch-size: measured by probing the trainer's own step on CUDA, a memory rule elsewhere.

A batch size the user gave is never raised. On CUDA it is lowered only when the probe says it does
not fit, and the accumulation steps then grow by the same factor, so the effective batch (batch x
accumulation) stays what was asked for. With no batch size given, the largest that fits (8-64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from slr.engine import hardware
from slr.errors import ConfigError, setting


@dataclass(frozen=True)
class BatchChoice:
    batch_size: int
    accumulation: int  # gradient accumulation steps to train with
    method: str  # "measured", "memory rule" or "given"
    reason: str


def divisor_sizes(given: int) -> list[int]:
    """``given`` and its exact fractions, largest first: 32 -> 32, 16, 8, 4, 2, 1 (so that
    batch x accumulation stays exactly ``given`` x the accumulation asked for)."""
    return [given // k for k in range(1, given + 1) if given % k == 0]


def choose_batch_size(
    given: Optional[int],
    accumulation: int,
    device: torch.device,
    step: Optional[Callable[[int], None]],
    bytes_per_sample: Callable[[], int],
    frames: int,
) -> BatchChoice:
    """The batch size and accumulation steps to train with.

    ``given``: the batch size the user set (None: pick one). ``step(batch)``: one real training step
    on a worst-case batch of ``frames``-frame clips (CUDA only). ``bytes_per_sample()``: the memory
    rule's estimate for one clip (CPU and MPS).
    """
    if device.type == "cuda" and step is not None:
        return _measured(given, accumulation, device, step)
    if given is not None:
        return BatchChoice(given, accumulation, "given",
                           f"{setting('batch_size', given)} kept: the memory rule only picks a size when none is given")
    if device.type == "mps":
        available = int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory())
    else:
        available = hardware.ram_bytes()[1]
    size, reason = hardware.batch_size_from_memory(available, bytes_per_sample())
    return BatchChoice(size, accumulation, "memory rule", f"{reason} ({frames}-frame clips)")


def _measured(given: Optional[int], accumulation: int, device: torch.device, step) -> BatchChoice:
    sizes = divisor_sizes(given) if given is not None else hardware.auto_batch_sizes()
    size, reason = hardware.probe_batch_size(step, device, sizes=sizes)
    if size is None:
        if given is None:  # the guide's floor: train at 8 and let the user see what happens
            return BatchChoice(hardware.MIN_AUTO_BATCH, accumulation, "measured", reason)
        raise ConfigError(f"{setting('auto_batch_size')}: not even a batch of 1 fits on {device} ({reason})")
    return fit_given_batch(given, accumulation, size, reason)


def fit_given_batch(given: Optional[int], accumulation: int, size: int, reason: str) -> BatchChoice:
    """The probe found ``size`` to be the largest that fits: keep ``given`` when it does; otherwise
    train at ``size`` with as many more accumulation steps as keep the effective batch exact."""
    if given is None or size == given:
        return BatchChoice(size, accumulation, "measured", reason)
    factor = given // size
    return BatchChoice(
        size, accumulation * factor, "measured",
        f"{reason}; {setting('batch_size', given)} does not fit: {size} x {factor} more accumulation steps "
        f"({setting('gradient_accumulation_steps', accumulation * factor)}), the same effective batch",
    )
