"""The trainer's mixed-precision path (autocast, GradScaler, unscale before clipping, the scaler in
checkpoints), run on the CPU.

`--amp` itself stays off on the CPU (a notice, float32), so these tests hand the run a GPU's
capabilities (`hardware.Capabilities`: mixed precision, float16 or bfloat16) for the CPU. The
trainer code under test is the code CUDA runs; what only a GPU can show (speed, CUDA kernels) is in
benchmarks/gpu_checks.py.
"""

from __future__ import annotations


import pytest
import torch

from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.run import resume, train
from slr.settings import ResumeSettings

from test_training import settings

COMMON = dict(amp=True, grad_clip=1.0, dropout=0.0, scheduler="plateau")


def gpu_like(**overrides) -> hardware.Capabilities:
    """A GPU's capabilities for the CPU (none unless named): the GPU-only branches run here."""
    values = dict(amp=False, compile=False, pin_memory=False, gpus=0, probe=False, bf16=False,
                  memory=hardware.ResidentMemory())
    return hardware.Capabilities(**{**values, **overrides})


@pytest.fixture
def force_amp():
    def use(dtype: torch.dtype) -> hardware.Capabilities:
        return gpu_like(amp=True, bf16=dtype == torch.bfloat16)

    return use


def _curve(history):
    return [(row["train_loss"], row["val_loss"], row["val_gloss_acc"]) for row in history]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_mixed_precision_training_tracks_float32(clips, tmp_path, force_amp, dtype):
    reference = train(settings(clips, tmp_path / "fp32", epochs=3, **{**COMMON, "amp": False}))
    mixed = train(settings(clips, tmp_path / "amp", epochs=3, **COMMON), capabilities=force_amp(dtype))
    assert mixed.history[-1]["train_loss"] < 0.6 * mixed.history[0]["train_loss"]  # it learns
    for (loss, val_loss, acc), (ref_loss, ref_val_loss, ref_acc) in zip(_curve(mixed.history), _curve(reference.history)):
        # Rounding to 8 or 11 bits of mantissa moves the losses a little; it must not change the run.
        assert loss == pytest.approx(ref_loss, rel=0.02)
        assert val_loss == pytest.approx(ref_val_loss, rel=0.02)
        assert abs(acc - ref_acc) <= 1 / 24 + 1e-9  # at most one of the 24 validation clips differs
    state = ckpt.load_checkpoint(tmp_path / "amp" / "SignTransformer_last.pt")
    if dtype is torch.float16:
        assert state["scaler_state"]["scale"] > 1.0  # float16 trains with loss scaling ...
    else:
        assert not state["scaler_state"]  # ... bfloat16 has float32's range and needs none


def test_float16_resume_restores_the_loss_scale_and_continues_exactly(clips, tmp_path, force_amp):
    caps = force_amp(torch.float16)
    # One epoch (5 clean steps) already gives the scaler a count to lose: 2 epochs straight, 1 + 1 resumed.
    straight = train(settings(clips, tmp_path / "straight", epochs=2, **COMMON), capabilities=caps)
    train(settings(clips, tmp_path / "resumed", epochs=1, **COMMON), capabilities=caps)
    half = tmp_path / "resumed" / "SignTransformer_last.pt"
    assert ckpt.load_checkpoint(half)["scaler_state"]["_growth_tracker"] > 0  # the scaler has state to lose
    resumed = resume(ResumeSettings(checkpoint=half, overrides={"epochs": 2}), capabilities=caps)
    flat = [value for row in _curve(resumed.history) for value in row]
    assert flat == pytest.approx([value for row in _curve(straight.history) for value in row], abs=1e-6)
    # The scale and its count of clean steps went on from the checkpoint, not from a fresh scaler.
    end = ckpt.load_checkpoint(tmp_path / "resumed" / "SignTransformer_last.pt")["scaler_state"]
    assert end == ckpt.load_checkpoint(tmp_path / "straight" / "SignTransformer_last.pt")["scaler_state"]

def test_iv3_gru_trains_under_float16(clips, tmp_path, force_amp):
    caps = force_amp(torch.float16)
    run = train(settings(clips, tmp_path, model="iv3_gru", epochs=3, **COMMON), capabilities=caps)
    losses = [row["train_loss"] for row in run.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
