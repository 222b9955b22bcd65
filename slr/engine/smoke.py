"""`slr smoke MODEL`: a minute-long check of an install, on synthetic clips and no data on disk.

It trains a few steps on one synthetic batch, checks that the loss falls, then writes a
checkpoint, reads it back with ``weights_only=True`` into a fresh model and checks that the two
models give the same outputs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from slr import __version__
from slr.data.dataset import ClipDataset, collate_clips
from slr.data.synthetic import make_synthetic_clips
from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.threads import apply_threads
from slr.models.registry import build_model, count_parameters, model_spec
from slr.settings import MODEL_CLASS_NAMES, SmokeSettings
from slr.ui.console import out, print_error, print_notice

FEATURE_DIM = 2048  # InceptionV3's pooled width
FRAME_SIZE = 299  # InceptionV3's input size
LOSS_MUST_FALL_TO = 0.7  # final loss at most this share of the first


def _batch(settings: SmokeSettings, frames_input: bool):
    """One synthetic batch of variable-length clips (8-24 frames, padded with a mask)."""
    features = model_spec(settings.model).input_kind == "features"
    clips = make_synthetic_clips(
        settings.batch_size,
        num_gloss=settings.num_gloss,
        num_cat=settings.num_cat,
        feature_dim=FEATURE_DIM,
        with_features=features and not frames_input,
        min_frames=2 if frames_input else 8,
        max_frames=3 if frames_input else 24,
        seed=settings.seed,
    )
    arrays = clips.features if (features and not frames_input) else clips.x
    batch = collate_clips([ClipDataset.from_arrays(arrays, clips.gloss, clips.cat)[i] for i in range(len(arrays))])
    if frames_input:
        # Small RGB frames standing in for video: each clip's keypoints painted as a colour field.
        b, t = batch.x.shape[:2]
        colours = batch.x[..., :3].reshape(b, t, 3, 1, 1)
        noise = torch.randn(b, t, 3, FRAME_SIZE, FRAME_SIZE, generator=torch.Generator().manual_seed(settings.seed))
        batch.x = (colours - 0.5) * 2 + 0.1 * noise
    return batch


def run_smoke(settings: SmokeSettings) -> int:
    console = out()
    torch.manual_seed(settings.seed)
    apply_threads(settings.threads)  # slr/engine/threads.py
    choice = hardware.select_device(settings.device)
    device = choice.device
    frames_input = settings.frames and settings.model == "iv3_gru"
    if settings.frames and settings.model != "iv3_gru":
        print_notice("--frames only applies to iv3_gru; the transformer reads keypoints")
    if settings.amp and device.type != "cuda":
        print_notice(f"--amp: mixed precision is for CUDA GPUs; float32 on {device.type}")
    if settings.compile_model and device.type != "cuda":
        print_notice(f"--compile-model: skipped on {device.type}")
    batch = _batch(settings, frames_input).to(device)
    input_dim = batch.x.shape[-1] if not frames_input else FEATURE_DIM
    model = build_model(settings.model, settings, input_dim, settings.num_gloss, settings.num_cat, frames=frames_input)
    model = model.to(device)
    total, trainable = count_parameters(model)
    console.print(
        f"slr {__version__} smoke test: {MODEL_CLASS_NAMES[settings.model]} ({total:,} parameters, "
        f"{trainable:,} trainable) on {device}; {settings.batch_size} synthetic clips of "
        f"{list(batch.x.shape[1:])}, {settings.steps} steps",
        markup=False,
    )
    dtype = hardware.amp_dtype(device, settings.amp_dtype) if settings.amp else None
    net = torch.compile(model, dynamic=True) if settings.compile_model and device.type == "cuda" else model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    losses = []
    started = time.perf_counter()
    model.train()
    for _ in range(settings.steps):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            gloss_logits, cat_logits = net(batch.x, batch.mask)
            loss = 0.5 * F.cross_entropy(gloss_logits.float(), batch.gloss) + 0.5 * F.cross_entropy(
                cat_logits.float(), batch.cat
            )
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    seconds = time.perf_counter() - started
    checks = {}
    finite = all(torch.isfinite(torch.tensor(losses)))
    checks["loss is finite"] = finite
    checks[f"loss fell ({losses[0]:.3f} -> {losses[-1]:.3f})"] = finite and losses[-1] <= LOSS_MUST_FALL_TO * losses[0]
    checks["checkpoint round-trips"] = _round_trip(settings, model, batch, input_dim, frames_input)
    for name, ok in checks.items():
        console.print(f"  {'ok  ' if ok else 'FAIL'} {name}", markup=False)
    console.print(f"{settings.steps} steps in {seconds:.1f}s ({settings.steps * settings.batch_size / seconds:,.0f} samples/s)",
                  markup=False)
    if all(checks.values()):
        console.print("smoke test passed", markup=False)
        return 0
    print_error("smoke test failed: " + ", ".join(n for n, ok in checks.items() if not ok))
    return 1


def _round_trip(settings: SmokeSettings, model, batch, input_dim: int, frames_input: bool) -> bool:
    """Save, load with weights_only=True into a fresh model, and compare outputs in eval mode."""
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{MODEL_CLASS_NAMES[settings.model]}_smoke.pt"
        ckpt.save_checkpoint(
            {
                "format": ckpt.FORMAT,
                "version": ckpt.VERSION,
                "model": settings.model,
                "model_class": MODEL_CLASS_NAMES[settings.model],
                "model_state": ckpt.clean_state_dict(model.state_dict()),
            },
            path,
        )
        state = ckpt.load_checkpoint(path)
    fresh = build_model(settings.model, settings, input_dim, settings.num_gloss, settings.num_cat, frames=frames_input)
    ckpt.load_model_state(fresh, state, path)
    fresh = fresh.to(batch.x.device).eval()
    with torch.no_grad():
        a = model(batch.x, batch.mask)
        b = fresh(batch.x, batch.mask)
    return all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))
