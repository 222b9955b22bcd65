"""--auto-batch-size never raises a batch size the user gave; lowered only when it must be, with the
effective batch kept. The CUDA probe itself needs a GPU (benchmarks/gpu_checks.py); its decisions
are tested here with a peak-memory function standing in for the device."""

from __future__ import annotations

import pytest
import torch

from slr.engine import autobatch
from slr.engine.autobatch import choose_batch_size, divisor_sizes, fit_given_batch

CPU = torch.device("cpu")


@pytest.mark.parametrize("given, accumulation", [(8, 1), (16, 1), (32, 1), (16, 4)])
def test_a_given_batch_size_is_kept_on_the_cpu(given, accumulation):
    """Before: the guide's batch 8, 16 and 32 recipes all became batch 64, and 16 x 4 became 256."""
    pick = choose_batch_size(given, accumulation, CPU, step=None, bytes_per_sample=lambda: 1, frames=20)
    assert (pick.batch_size, pick.accumulation, pick.method) == (given, accumulation, "given")


def test_with_no_batch_size_the_memory_rule_picks_within_the_guides_range():
    pick = choose_batch_size(None, 1, CPU, step=None, bytes_per_sample=lambda: 1, frames=20)
    assert pick.method == "memory rule" and pick.batch_size == autobatch.MAX_AUTO_BATCH
    huge = choose_batch_size(None, 1, CPU, step=None, bytes_per_sample=lambda: 2**50, frames=20)
    assert huge.batch_size == autobatch.MIN_AUTO_BATCH


def test_divisor_sizes_keep_the_effective_batch_exact():
    assert divisor_sizes(32) == [32, 16, 8, 4, 2, 1]
    assert divisor_sizes(12) == [12, 6, 4, 3, 2, 1]


def _peaks(limit: int):
    """A device on which a batch of more than ``limit`` clips runs out of memory."""
    def peak_of(size: int) -> int:
        if size > limit:
            raise torch.OutOfMemoryError("simulated")
        return size
    return peak_of


@pytest.mark.parametrize("given, accumulation, limit, expected", [
    (32, 1, 64, (32, 1)),   # fits: kept, never raised to 64
    (32, 1, 20, (16, 2)),   # lowered only as far as needed; accumulation doubles: 32 clips a step still
    (16, 4, 5, (4, 16)),    # the guide's memory-constrained recipe keeps its 64 clips a step
    (12, 1, 5, (4, 3)),
])
def test_on_a_gpu_a_given_size_is_lowered_only_when_it_does_not_fit(given, accumulation, limit, expected):
    size, tried = autobatch.largest_fitting_batch(_peaks(limit), total=10**9, safety=0.85,
                                                 sizes=divisor_sizes(given))
    pick = fit_given_batch(given, accumulation, size, "; ".join(tried))
    assert (pick.batch_size, pick.accumulation) == expected
    assert pick.batch_size * pick.accumulation == given * accumulation
