"""`slr hwinfo`: the device training would use and why, and what the auto options would pick."""

from __future__ import annotations

import platform
from typing import Any

import torch

from slr import __version__
from slr.engine import hardware
from slr.engine.autobatch import choose_batch_size
from slr.engine.threads import choose_threads
from slr.models.registry import MODELS
from slr.settings import HwinfoSettings, TrainSettings

#: Clip length the batch-size preview assumes; training uses the longest clip of the real data.
PREVIEW_FRAMES = 64


def collect(settings: HwinfoSettings) -> dict[str, Any]:
    choice = hardware.select_device(settings.device)
    total_ram, available_ram = hardware.ram_bytes()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    workers, workers_reason = hardware.auto_workers(choice.kind)
    threads = choose_threads(None).as_dict()  # what a run without --threads would use now
    batch = {}
    for model, spec in MODELS.items():
        defaults = TrainSettings(model=model)
        width = spec.preview_width
        pick = choose_batch_size(
            None, 1, choice.device,
            step=_preview_step(defaults, width, choice.device) if choice.device.type == "cuda" else None,
            bytes_per_sample=lambda: spec.bytes_per_sample(defaults, width, PREVIEW_FRAMES),
            frames=PREVIEW_FRAMES,
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
        "auto_batch_size": {"frames": PREVIEW_FRAMES, **batch},
    }


def _machine_cores() -> int:
    import os

    return os.cpu_count() or 1


def run_hwinfo(settings: HwinfoSettings) -> dict:
    """`slr hwinfo`: the report as JSON-able values; the caller shows it."""
    return collect(settings)


def _preview_step(settings: TrainSettings, width: int, device):
    """The probe's real training step, on clips of the preview's size."""
    from types import SimpleNamespace

    from slr.engine.autobatch import probe_step

    amp = hardware.amp_dtype(device, settings.amp_dtype) if settings.amp else None
    return probe_step(settings, SimpleNamespace(input_dim=width, longest_clip=PREVIEW_FRAMES), device, amp)
