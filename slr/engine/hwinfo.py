"""`slr hwinfo`: the device training would use and why, and what the auto options would pick;
with ``--probe MODEL``, the auto batch size measured with real training steps on this device."""

from __future__ import annotations

import platform
import time
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from slr import __version__
from slr.engine import hardware
from slr.engine.autobatch import choose_batch_size
from slr.engine.threads import choose_threads
from slr.errors import ConfigError, DataError, setting
from slr.models.registry import MODELS, model_spec
from slr.settings import ClassCountSettings, HwinfoSettings, TrainSettings

#: Clip length the batch-size preview assumes; training uses the longest clip of the real data.
PREVIEW_FRAMES = 64


def collect(settings: HwinfoSettings) -> dict[str, Any]:
    choice = hardware.select_device(settings.device)
    caps = hardware.capabilities(choice.device)
    total_ram, available_ram = hardware.ram_bytes()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    workers, workers_reason = hardware.auto_workers(choice.kind)
    threads = choose_threads(None).as_dict()  # what a run without --threads would use now
    batch = {}
    for model, spec in MODELS.items():
        defaults = _preview_settings(model)
        width = spec.preview_width
        pick = choose_batch_size(  # the preview: the rule, or on a device that probes, the probe
            None, 1, choice.device,
            step=_preview_step(defaults, width, PREVIEW_FRAMES, choice.device) if caps.probe else None,
            bytes_per_sample=lambda: spec.bytes_per_sample(defaults, width, PREVIEW_FRAMES),
            frames=PREVIEW_FRAMES, memory=caps.memory,
        )
        batch[model] = {"batch_size": pick.batch_size, "method": pick.method, "reason": pick.reason}
    return {
        "slr_version": __version__,
        "device": {"selected": str(choice.device), "reason": choice.reason},
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "total_memory_gib": round(g.total_bytes / hardware.GIB, 2),
                "free_memory_gib": round(g.free_bytes / hardware.GIB, 2),
                "compute_capability": g.capability,
                "bf16": g.bf16,
            }
            for g in hardware.gpu_infos()
        ],
        "mps_available": hardware.mps_available(),
        "cpu": {"usable_cores": hardware.usable_cpus(), "machine_cores": _machine_cores()},
        "memory": {
            "total_gib": round(total_ram / hardware.GIB, 2),
            "available_gib": round(available_ram / hardware.GIB, 2),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": cudnn,
        },
        "auto_workers": {"workers": workers, "reason": workers_reason},
        "threads": threads,
        "precision": precision(choice.device, caps),
        "auto_batch_size": {"frames": PREVIEW_FRAMES, **batch},
    }


def precision(device: torch.device, caps: hardware.Capabilities) -> dict[str, str]:
    """What a run given neither --amp nor --no-amp computes in here, and why."""
    dtype = hardware.autocast_dtype(None, device, "auto", caps)
    if dtype is not None:
        return {"autocast": "bfloat16",
                "reason": f"auto: this CPU multiplies bfloat16 natively (avx512_bf16 or amx_bf16); "
                          f"{setting('amp', False)} for float32"}
    if device.type == "cpu":
        return {"autocast": "none (float32)", "reason": "auto: this CPU has no native bfloat16, which torch would emulate "
                                                        "more slowly than float32"}
    return {"autocast": "none (float32)", "reason": f"auto: on a GPU mixed precision is opt-in ({setting('amp')})"}


def _machine_cores() -> int:
    import os

    return os.cpu_count() or 1


def run_hwinfo(settings: HwinfoSettings) -> dict:
    """`slr hwinfo`: the report as JSON-able values; the caller shows it."""
    report = collect(settings)
    if settings.probe is not None:
        report["probe"] = probe(settings)
    return report


#: Timed steps at the measured batch size, after one that warms up.
TIMED_STEPS = 3


def probe(settings: HwinfoSettings, memory: Optional[hardware.DeviceMemory] = None) -> dict[str, Any]:
    """``--probe MODEL``: the batch size --auto-batch-size would measure here, beside the memory
    rule's guess, and the time of one training step at that size. On CUDA the allocator's peak
    decides; on the CPU and MPS the process's peak resident memory, against the memory available
    (``memory``: another source, e.g. a budget)."""
    model = settings.probe
    spec = model_spec(model)
    device = hardware.select_device(settings.device).device
    memory = memory or hardware.capabilities(device).memory
    frames, width, source = _probe_shape(settings, spec)
    run = _preview_settings(model)
    step = _preview_step(run, width, frames, device)
    rule = choose_batch_size(None, 1, device, step=None, frames=frames, memory=memory,
                             bytes_per_sample=lambda: spec.bytes_per_sample(run, width, frames))
    measured = choose_batch_size(None, 1, device, step=step, frames=frames, memory=memory,
                                 bytes_per_sample=lambda: spec.bytes_per_sample(run, width, frames))
    step(measured.batch_size)  # warm-up: first-call allocations and kernel choices
    started = time.perf_counter()
    for _ in range(TIMED_STEPS):
        step(measured.batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / TIMED_STEPS
    return {
        "model": model, "device": str(device), "frames": frames, "width": width, "shape_from": source,
        "measured": {"batch_size": measured.batch_size, "reason": measured.reason},
        "rule": {"batch_size": rule.batch_size, "reason": rule.reason},
        "seconds_per_step": round(seconds, 4),
        "samples_per_s": round(measured.batch_size / max(seconds, 1e-9), 1),
    }


def _preview_settings(model: str) -> TrainSettings:
    """A run's defaults, with the guide's class counts: a preview has no labels to count them from."""
    return TrainSettings(model=model, **ClassCountSettings().model_dump())


def _probe_shape(settings: HwinfoSettings, spec) -> tuple[int, int, str]:
    """(frames, width, where they came from): the clips of --keypoints / --features (their longest
    clip), else --frames / --width, else the preview's 64 frames of the model's usual width."""
    directory = settings.keypoints or settings.features
    if directory is not None:
        if settings.frames is not None or settings.width is not None:
            raise ConfigError(f"{setting('probe')}: give the clips ({setting('keypoints', 'DIR')}) or "
                              f"{setting('frames')} and {setting('width')}, not both")
        frames, width = _longest_clip(Path(directory), spec.clip_keys(TrainSettings(model=spec.name)))
        return frames, width, f"the longest clip in {directory}"
    frames = settings.frames or PREVIEW_FRAMES
    width = settings.width or spec.preview_width
    return frames, width, "--frames/--width" if settings.frames or settings.width else "the preview's defaults"


def _longest_clip(directory: Path, keys: tuple[str, Optional[str]]) -> tuple[int, int]:
    """The most frames of any clip in ``directory`` and their width, from the arrays' headers alone."""
    if not directory.is_dir():
        raise DataError("not a directory of clips", directory)
    frames, width = 0, None
    for path in sorted(directory.glob("*.npz")):
        shape = _array_shape(path, keys)
        if shape is None or len(shape) != 2:
            raise DataError(f"no 2-D array under {' or '.join(repr(k) for k in keys if k)}", path)
        if width is not None and shape[1] != width:
            raise DataError(f"{shape[1]} values per frame; the clips before it have {width}", path)
        frames, width = max(frames, shape[0]), shape[1]
    if width is None:
        raise DataError("no clip files (*.npz)", directory)
    return frames, width


def _array_shape(path: Path, keys: tuple[str, Optional[str]]) -> Optional[tuple[int, ...]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for key in keys:
                if key and f"{key}.npy" in names:
                    with archive.open(f"{key}.npy") as f:
                        major, _ = np.lib.format.read_magic(f)
                        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                        shape, _, _ = read(f)
                        return tuple(shape)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise DataError(f"not a readable clip file ({type(exc).__name__}: {str(exc)[:120]})", path) from None
    return None


def _preview_step(settings: TrainSettings, width: int, frames: int, device):
    """The probe's real training step, on clips of ``frames`` x ``width``."""
    from types import SimpleNamespace

    from slr.engine.autobatch import probe_step

    amp = hardware.autocast_dtype(settings.amp, device, settings.amp_dtype)
    return probe_step(settings, SimpleNamespace(input_dim=width, longest_clip=frames), device, amp)
