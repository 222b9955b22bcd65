"""The training step alone (slr/engine/training.py's TrainStep): it runs without a run folder, and
its closed-form learning rates follow the curves torch's schedulers gave before."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest
import torch

from slr.data.dataset import ClipBatch
from slr.engine.autobatch import probe_step
from slr.engine.training import warmup_cosine_factor
from slr.engine.smoke import run_smoke
from slr.engine.training import TrainStep, lr_schedule
from slr.models.registry import build_model
from slr.settings import SmokeSettings, TrainSettings

TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32)


def _batch(n: int = 4, frames: int = 5, width: int = 12) -> ClipBatch:
    g = torch.Generator().manual_seed(1)
    return ClipBatch(x=torch.randn(n, frames, width, generator=g), mask=torch.ones(n, frames, dtype=torch.bool),
                     lengths=torch.full((n,), frames), gloss=torch.randint(0, 4, (n,), generator=g),
                     cat=torch.randint(0, 2, (n,), generator=g), index=torch.arange(n))


def test_the_step_trains_with_no_run_folder_and_writes_nothing(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    settings = TrainSettings(model="transformer", num_gloss=4, num_cat=2, lr=1e-2, **TINY)
    model = build_model("transformer", settings, 12, 4, 2)
    step = TrainStep(settings, model, torch.device("cpu"), None)
    batch = _batch()
    losses = []
    for _ in range(15):
        loss, _, _ = step.forward_backward(batch)
        assert step.optimizer_step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0] and step.optimizer_steps == 15
    assert list(tmp_path.iterdir()) == []


def test_the_auto_batch_probe_step_runs_without_a_run_folder(one_thread):
    """Before: the probe built a Trainer with paths=None and failed on `paths.output_dir`, on every
    CUDA machine, with `--auto-batch-size`."""
    settings = TrainSettings(model="transformer", num_gloss=4, num_cat=2, **TINY)
    step = probe_step(settings, SimpleNamespace(input_dim=12, longest_clip=6), torch.device("cpu"), None)
    random.seed(3)
    torch.manual_seed(3)
    before = (random.random(), torch.rand(1))
    random.seed(3)
    torch.manual_seed(3)
    step(8)
    step(2)
    assert (random.random(), torch.rand(1)) == before  # the run's random streams stay untouched


def test_smoke_frames_runs_the_step_without_a_run_folder(one_thread):
    """Before: `slr smoke iv3_gru --frames` ended in "AttributeError: 'NoneType' object has no
    attribute 'output_dir'"."""
    report = run_smoke(SmokeSettings(model="iv3_gru", frames=True, pretrained_backbone=False, steps=2,
                                     batch_size=2, gru_hidden=8, gru_layers=1, device="cpu"))
    assert report.steps == 2 and "InceptionV3GRU" in report.header
    assert report.checks["loss is finite"] and report.checks["checkpoint round-trips"]


@pytest.mark.parametrize("scheduler", ["warmup_cosine", "cosine"])
def test_closed_form_rates_match_torchs_lambda_scheduler(scheduler):
    """The curves of before (torch's LambdaLR, stepped per optimizer step or per epoch), computed
    from the step's counters alone."""
    settings = TrainSettings(model="transformer", scheduler=scheduler, epochs=4, warmup_epochs=1.0, lr=3e-3)
    spe = 5
    factor = lr_schedule(settings, spe)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.lr)
    if scheduler == "warmup_cosine":
        reference = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine_factor(4 * spe, spe))
        points = [(n, 0) for n in range(4 * spe + 3)]
    else:
        reference = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, 4) / 4)))
        points = [(0, e) for e in range(6)]
    for steps, epochs in points:
        assert settings.lr * factor(steps, epochs) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        reference.step()


def test_a_resume_from_a_checkpoint_with_torchs_scheduler_state_continues_the_curve():
    """Checkpoints written before the closed form hold LambdaLR's state: its step count is read."""
    settings = TrainSettings(model="transformer", num_gloss=4, num_cat=2, scheduler="warmup_cosine", epochs=2,
                             warmup_epochs=1.0, **TINY)
    model = build_model("transformer", settings, 12, 4, 2)
    old = TrainStep(settings, model, torch.device("cpu"), None, steps_per_epoch=4)
    lambda_state = {"base_lrs": [settings.lr], "last_epoch": 6, "_step_count": 7, "lr_lambdas": [None]}
    state = {"settings": settings.model_dump(mode="json"), "optimizer_state": old.optimizer.state_dict(),
             "scheduler_state": lambda_state, "scaler_state": old.scaler.state_dict(), "epoch": 1}
    resumed = TrainStep(settings, model, torch.device("cpu"), None, steps_per_epoch=4)
    resumed.load_state(state, None)
    assert resumed.optimizer_steps == 6
    assert resumed.lr == pytest.approx(settings.lr * warmup_cosine_factor(8, 4)(6), rel=1e-12)
