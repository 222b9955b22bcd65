"""--auto-batch-size: measured by probing the training step on CUDA, a memory rule elsewhere
(`slr hwinfo --probe` measures on any device).

A batch size the user gave is never raised. On CUDA it is lowered only when the probe says it does
not fit, and the accumulation steps then grow by the same factor, so the effective batch (batch x
accumulation) stays what was asked for. With no batch size given, the largest that fits (8-64).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from slr.data.dataset import ClipBatch
from slr.engine import hardware
from slr.engine.hardware import GIB, DeviceMemory
from slr.engine.training import TrainStep
from slr.errors import ConfigError, setting

MIN_AUTO_BATCH, MAX_AUTO_BATCH = 8, 64  # the training guide's range for --auto-batch-size


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
    memory: Optional[DeviceMemory] = None,
) -> BatchChoice:
    """The batch size and accumulation steps to train with.

    ``given``: the batch size the user set (None: pick one). ``step(batch)``: one real training step
    on a worst-case batch of ``frames``-frame clips, given where the device can probe (CUDA; any
    device for ``slr hwinfo --probe``): then the size is measured with ``memory`` (default: the
    device's own source). ``bytes_per_sample()``: the memory rule's estimate for one clip.
    """
    memory = memory or hardware.capabilities(device).memory
    if step is not None:
        return _measured(given, accumulation, device, step, memory)
    if given is not None:
        return BatchChoice(given, accumulation, "given",
                           f"{setting('batch_size', given)} kept: the memory rule only picks a size when none is given")
    size, reason = batch_size_from_memory(memory.available(), bytes_per_sample())
    return BatchChoice(size, accumulation, "memory rule", f"{reason} ({frames}-frame clips)")


def _measured(given: Optional[int], accumulation: int, device: torch.device, step, memory: DeviceMemory) -> BatchChoice:
    sizes = divisor_sizes(given) if given is not None else auto_batch_sizes()
    size, reason = probe_batch_size(step, memory, sizes=sizes)
    if size is None:
        if given is None:  # the guide's floor: train at 8 and let the user see what happens
            return BatchChoice(MIN_AUTO_BATCH, accumulation, "measured", reason)
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



# -- the memory rule and the probe ------------------------------------------------------------------


def _clamp_pow2(n: float) -> int:
    n = max(MIN_AUTO_BATCH, min(MAX_AUTO_BATCH, int(n)))
    return 1 << (n.bit_length() - 1)  # round down to a power of two


def batch_size_from_memory(available_bytes: int, bytes_per_sample: int, share: float = 0.25) -> tuple[int, str]:
    """The memory rule: use at most ``share`` of the available memory for one step's activations."""
    fits = available_bytes * share / max(1, bytes_per_sample)
    batch = _clamp_pow2(fits)
    return batch, (
        f"{share:.0%} of {available_bytes / GIB:.1f} GiB available / "
        f"~{bytes_per_sample / 2**20:.1f} MiB per sample = {fits:.0f}, clamped to "
        f"{MIN_AUTO_BATCH}-{MAX_AUTO_BATCH} and rounded down to a power of two"
    )


def probe_batch_size(
    step: Callable[[int], None],
    memory: DeviceMemory,
    safety: float = 0.85,
    sizes: Optional[list[int]] = None,
) -> tuple[Optional[int], str]:
    """Run real training steps at each of ``sizes`` (default 64, 32, 16, 8) and keep the first,
    largest, that fits; None when none does.

    ``step(batch)`` runs one training step on a worst-case batch (longest clips). A size fits when it
    neither runs out of memory nor peaks above ``safety`` of ``memory``'s total (a GPU's memory; on
    the CPU the memory available, or a budget).
    """
    total = memory.total()

    def peak_of(size: int) -> int:
        gc.collect()
        try:
            return memory.peak_of(lambda: step(size))
        finally:
            gc.collect()  # a step that ran out of memory half-way leaves tensors for the collector

    size, tried = largest_fitting_batch(peak_of, total, safety, sizes)
    if size is None:
        return None, "measured: even the smallest size did not fit comfortably; " + "; ".join(tried)
    return size, f"measured ({memory.describe()}): " + "; ".join(tried)


def auto_batch_sizes() -> list[int]:
    """The sizes --auto-batch-size tries when no batch size was given: 64, 32, 16, 8."""
    sizes, size = [], MAX_AUTO_BATCH
    while size >= MIN_AUTO_BATCH:
        sizes.append(size)
        size //= 2
    return sizes


def largest_fitting_batch(
    peak_of: Callable[[int], int], total: int, safety: float, sizes: Optional[list[int]] = None
) -> tuple[Optional[int], list[str]]:
    """Try ``sizes`` from the largest until one step neither runs out of memory nor peaks above
    ``safety * total`` bytes. Returns that size (None when none fits) and what each try measured.

    ``peak_of(size)`` runs one step and returns its peak memory, or raises torch.OutOfMemoryError.
    """
    tried = []
    for size in sizes or auto_batch_sizes():
        try:
            peak = peak_of(size)
        except torch.OutOfMemoryError:
            tried.append(f"{size}: out of memory")
            continue
        if peak <= safety * total:
            tried.append(f"{size}: peak {peak / GIB:.2f} GiB")
            return size, tried
        tried.append(f"{size}: peak {peak / GIB:.2f} GiB over {safety:.0%} of {total / GIB:.1f} GiB")
    return None, tried


def activation_bytes_per_sample(model_name: str, settings, input_dim: int, frames: int) -> int:
    """A rough upper bound of one clip's training memory (activations kept for backward), in bytes.

    Used by the memory rule on CPU and MPS, where probing is neither needed nor reliable; each
    model's estimate lives in its registry entry.
    """
    from slr.models.registry import model_spec

    return model_spec(model_name).bytes_per_sample(settings, input_dim, frames)



# -- the probe's step: the training step, on a fresh copy of the model ------------------------------


# A fresh model, built and run inside a fork of the random streams, so that probing leaves the run's
# weights and random streams as they were (the model's initialisation and dropout draw from them);
# the TrainStep, so that what is measured is what training will run (autocast, loss, scaling,
# clipping, the optimizer's state).


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
