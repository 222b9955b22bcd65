"""`slr smoke MODEL`: a check of an install on synthetic clips, through the real training path.

Synthetic clips are written in the on-disk format, then trained on by the same code as `slr train`
(data checks, dataset, loader and sampler, the Trainer, the checkpoint writer and the log) for
about ``steps`` optimizer steps. A break anywhere in training fails it. Then: the loss must have
fallen, the log must hold every epoch, and ``_last.pt`` read back with ``weights_only=True`` into a
fresh model must give the trained model's outputs.

``--frames`` (iv3_gru) feeds RGB frames through InceptionV3, which clip files do not hold: those
steps run the training step alone (TrainStep: no run folder) on an in-memory batch.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from slr import __version__
from slr.data.dataset import ClipDataset, collate_clips
from slr.data.synthetic import make_synthetic_clips, write_clips
from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.threads import apply_threads
from slr.engine.checkpoint import make_checkpoint
from slr.engine.observer import SilentObserver
from slr.engine.run_folder import checkpoint_path
from slr.engine.training import TrainStep
from slr.errors import setting
from slr.models.registry import build_model, count_parameters, model_spec
from slr.settings import SmokeSettings, TrainSettings

FEATURE_DIM = 2048  # InceptionV3's pooled width
FRAME_SIZE = 299  # InceptionV3's input size
LOSS_MUST_FALL_TO = 0.7  # the last epoch's training loss at most this share of the first's
BATCHES_PER_EPOCH = 2  # so that each clip is seen steps/2 times and the loss can fall


@dataclass
class SmokeReport:
    header: str
    checks: dict[str, bool] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    clips: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def samples_per_s(self) -> float:
        return self.clips / max(self.seconds, 1e-9)


def run_smoke(settings: SmokeSettings, on_note: Optional[Callable[[str], None]] = None) -> SmokeReport:
    note = on_note or (lambda text: None)
    torch.manual_seed(settings.seed)
    apply_threads(settings.threads)  # slr/engine/threads.py
    device = hardware.select_device(settings.device).device
    frames_input = settings.frames and model_spec(settings.model).input_kind == "features"
    if settings.frames and not frames_input:
        note(f"{setting('frames')} only applies to iv3_gru; the transformer reads keypoints")
    caps = hardware.capabilities(device)
    if settings.amp and hardware.amp_dtype(device, settings.amp_dtype, caps) is None:
        note(f"{setting('amp')}: mixed precision is for CUDA GPUs and CPUs with native bfloat16; float32 on {device.type}")
    if settings.compile_model and not caps.compile:
        note(f"{setting('compile_model')}: skipped on {device.type}")
    if frames_input:
        return _smoke_frames(settings, device)
    with tempfile.TemporaryDirectory(prefix="slr-smoke-") as tmp:
        return _smoke_training(settings, device, Path(tmp))


def _smoke_training(settings: SmokeSettings, device: torch.device, tmp: Path) -> SmokeReport:
    from slr.engine.run import train

    spec = model_spec(settings.model)
    features = spec.input_kind == "features"
    clips = make_synthetic_clips(settings.batch_size * BATCHES_PER_EPOCH, num_gloss=settings.num_gloss,
                                 num_cat=settings.num_cat, feature_dim=FEATURE_DIM, with_features=features,
                                 seed=settings.seed)
    write_clips(tmp / "clips", clips)
    epochs = max(2, math.ceil(settings.steps / BATCHES_PER_EPOCH))
    shared = {k: getattr(settings, k) for k in SmokeSettings.model_fields if k in TrainSettings.model_fields}
    data = {f"{spec.input_kind}_train": tmp / "clips", f"{spec.input_kind}_val": tmp / "clips"}
    train_settings = TrainSettings(**{**shared, **data, "epochs": epochs, "output_dir": tmp / "run",
                                      "plots": False, "tensorboard": False, "normalize": False, "augment": False,
                                      # a constant rate and plain cross-entropy: the check is that the loss falls
                                      "scheduler": None, "label_smoothing": 0.0})
    started = time.perf_counter()
    outcome = train(train_settings, SilentObserver())
    seconds = time.perf_counter() - started
    report = SmokeReport(_header(settings, outcome.model, device, f"{len(clips)} synthetic clip files",
                                 epochs * BATCHES_PER_EPOCH),
                         steps=epochs * BATCHES_PER_EPOCH, seconds=seconds, clips=epochs * len(clips))
    losses = [row["train_loss"] for row in outcome.history]
    finite = all(math.isfinite(v) for v in losses)
    report.checks["loss is finite"] = finite
    report.checks[f"loss fell ({losses[0]:.3f} -> {losses[-1]:.3f} over {epochs} epochs)"] = (
        finite and losses[-1] <= LOSS_MUST_FALL_TO * losses[0])
    report.checks[f"log holds {epochs} epochs"] = _log_rows(outcome.paths.log_csv) == epochs
    batch = collate_clips([ClipDataset.from_arrays(clips.features if features else clips.x, clips.gloss,
                                                   clips.cat)[i] for i in range(len(clips))]).to(device)
    report.checks["checkpoint round-trips"] = _round_trip(outcome.paths.last, outcome.model, batch, device)
    return report


def _smoke_frames(settings: SmokeSettings, device: torch.device) -> SmokeReport:
    """RGB frames through InceptionV3: the training step (TrainStep) on one in-memory batch, repeated."""
    batch = _frames_batch(settings).to(device)
    model = build_model(settings.model, settings, FEATURE_DIM, settings.num_gloss, settings.num_cat,
                        frames=True).to(device)
    shared = {k: getattr(settings, k) for k in SmokeSettings.model_fields if k in TrainSettings.model_fields}
    train_settings = TrainSettings(**shared)
    amp = hardware.autocast_dtype(settings.amp, device, settings.amp_dtype)
    step = TrainStep(train_settings, model, device, amp)  # the training step alone: no run folder
    model.train()
    losses, started = [], time.perf_counter()
    for _ in range(settings.steps):
        loss, _, _ = step.forward_backward(batch)
        step.optimizer_step()
        losses.append(loss.item())
    seconds = time.perf_counter() - started
    report = SmokeReport(_header(settings, model, device, f"{len(batch)} synthetic frame clips", settings.steps),
                         steps=settings.steps, seconds=seconds, clips=settings.steps * len(batch))
    finite = all(math.isfinite(v) for v in losses)
    report.checks["loss is finite"] = finite
    report.checks[f"loss fell ({losses[0]:.3f} -> {losses[-1]:.3f})"] = finite and losses[-1] <= LOSS_MUST_FALL_TO * losses[0]
    with tempfile.TemporaryDirectory(prefix="slr-smoke-") as tmp:
        path = checkpoint_path(Path(tmp), settings.model, "smoke")
        ckpt.save_checkpoint(make_checkpoint("weights", model=settings.model,
                                             model_class=model_spec(settings.model).class_name,
                                             model_state=ckpt.clean_state_dict(model.state_dict())), path)
        fresh = build_model(settings.model, settings, FEATURE_DIM, settings.num_gloss, settings.num_cat, frames=True)
        ckpt.load_model_state(fresh, ckpt.load_checkpoint(path), path)
    report.checks["checkpoint round-trips"] = _same_outputs(model, fresh.to(device), batch)
    return report


def _frames_batch(settings: SmokeSettings):
    """Small variable-length clips of RGB frames: each clip's keypoints painted as a colour field."""
    clips = make_synthetic_clips(settings.batch_size, num_gloss=settings.num_gloss, num_cat=settings.num_cat,
                                 with_features=False, min_frames=2, max_frames=3, seed=settings.seed)
    batch = collate_clips([ClipDataset.from_arrays(clips.x, clips.gloss, clips.cat)[i] for i in range(len(clips))])
    b, t = batch.x.shape[:2]
    colours = batch.x[..., :3].reshape(b, t, 3, 1, 1)
    noise = torch.randn(b, t, 3, FRAME_SIZE, FRAME_SIZE, generator=torch.Generator().manual_seed(settings.seed))
    batch.x = (colours - 0.5) * 2 + 0.1 * noise
    return batch


def _header(settings: SmokeSettings, model, device, what: str, steps: int) -> str:
    total, trainable = count_parameters(model)
    return (f"slr {__version__} smoke test: {model_spec(settings.model).class_name} ({total:,} parameters, "
            f"{trainable:,} trainable) on {device}; {what}, batch {settings.batch_size}, {steps} steps")


def _log_rows(log_csv: Path) -> int:
    try:
        return max(0, len(log_csv.read_text(encoding="utf-8").splitlines()) - 1)
    except OSError:
        return -1


def _round_trip(path: Path, model, batch, device) -> bool:
    """``_last.pt`` read back (weights_only=True) into a fresh model gives the trained model's outputs."""
    fresh, _ = ckpt.load_trained_model(path, device)
    return _same_outputs(model, fresh, batch)


def _same_outputs(model, fresh, batch) -> bool:
    model.eval()
    fresh.eval()
    with torch.no_grad():
        a = model(batch.x, batch.mask)
        b = fresh(batch.x, batch.mask)
    return all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))
