"""What the machine offers and what the auto options pick: device, CPUs, memory, workers, batch size."""

from __future__ import annotations

import gc
import os
import resource
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from slr.errors import setting

MIN_AUTO_BATCH, MAX_AUTO_BATCH = 8, 64  # the training guide's range for --auto-batch-size
MAX_AUTO_WORKERS = 8
GIB = 1024**3


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    reason: str

    @property
    def kind(self) -> str:
        return self.device.type


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def select_device(preference: str = "auto") -> DeviceChoice:
    """CUDA, then MPS, then CPU; an explicit preference that is not available falls back with a reason."""
    cuda = torch.cuda.is_available()
    if preference == "cuda" or (preference == "auto" and cuda):
        if cuda:
            n = torch.cuda.device_count()
            return DeviceChoice(torch.device("cuda"), f"CUDA is available ({n} GPU{'s' if n > 1 else ''})")
        fallback = f"{setting('device', 'cuda')} asked for, but torch sees no CUDA GPU"
    elif preference == "mps" or (preference == "auto" and mps_available()):
        if mps_available():
            return DeviceChoice(torch.device("mps"), "Apple MPS is available and CUDA is not")
        fallback = f"{setting('device', 'mps')} asked for, but MPS is not available"
    elif preference == "cpu":
        return DeviceChoice(torch.device("cpu"), f"{setting('device', 'cpu')} asked for")
    else:
        fallback = "no CUDA GPU or Apple MPS device is visible to torch"
    return DeviceChoice(torch.device("cpu"), f"{fallback}; using the CPU")


def usable_cpus() -> int:
    """CPUs this process may run on (affinity / container limits), not all CPUs of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def ram_bytes() -> tuple[int, int]:
    """(total, available) system memory in bytes; available falls back to total where unknown."""
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"], info.get("MemAvailable", info.get("MemFree", info["MemTotal"]))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    return total, total


def process_rss() -> int:
    """Resident memory of this process in bytes (current on Linux, peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    capability: str
    bf16: bool


def gpu_infos() -> list[GpuInfo]:
    if not torch.cuda.is_available():
        return []
    infos = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        infos.append(
            GpuInfo(
                index=i,
                name=props.name,
                total_bytes=total,
                free_bytes=free,
                capability=f"{props.major}.{props.minor}",
                bf16=props.major >= 8,  # bfloat16 tensor cores arrived with Ampere (sm_80)
            )
        )
    return infos


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): there --amp's
    bfloat16 autocast made the guide's training step 1.5x faster (docs/results.md); elsewhere
    torch emulates it, slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def amp_dtype(device: torch.device, preference: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype for --amp on this device, or None where mixed precision stays off."""
    if device.type == "cpu":  # bfloat16 only (float32's range, no loss scaling), and only where it is fast
        return torch.bfloat16 if preference != "float16" and cpu_has_fast_bf16() else None
    if device.type != "cuda":
        return None
    if preference == "float16":
        return torch.float16
    bf16 = torch.cuda.is_bf16_supported()
    if preference == "bfloat16" or bf16:
        return torch.bfloat16 if bf16 else torch.float16
    return torch.float16


# ---------------------------------------------------------------------------------------------
# --auto-workers
# ---------------------------------------------------------------------------------------------


def auto_workers(device_kind: str, cpus: Optional[int] = None) -> tuple[int, str]:
    cpus = usable_cpus() if cpus is None else cpus
    if device_kind == "cpu":
        return 0, (
            f"training on the CPU: the model step already uses all {cpus} usable CPU(s) and clips come "
            "from the in-memory cache, so worker processes would only compete with it"
        )
    n = max(1, min(MAX_AUTO_WORKERS, cpus - 1))
    return n, f"{cpus} usable CPU(s): one left for the training process, at most {MAX_AUTO_WORKERS}"


# ---------------------------------------------------------------------------------------------
# --auto-batch-size
# ---------------------------------------------------------------------------------------------


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
    device: torch.device,
    safety: float = 0.85,
    sizes: Optional[list[int]] = None,
) -> tuple[Optional[int], str]:
    """Measure on CUDA: run real training steps at each of ``sizes`` (default 64, 32, 16, 8) and keep
    the first, largest, that fits; None when none does.

    ``step(batch)`` runs one training step on a worst-case batch (longest clips). A size fits when it
    neither runs out of memory nor peaks above ``safety`` of the GPU's total memory.
    """
    total = torch.cuda.get_device_properties(device).total_memory

    def peak_of(size: int) -> int:
        _release(device)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            step(size)
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device)
        finally:
            _release(device)

    size, tried = largest_fitting_batch(peak_of, total, safety, sizes)
    if size is None:
        return None, "measured: even the smallest size did not fit comfortably; " + "; ".join(tried)
    return size, f"measured on {torch.cuda.get_device_name(device)}: " + "; ".join(tried)


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


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def activation_bytes_per_sample(model_name: str, settings, input_dim: int, frames: int) -> int:
    """A rough upper bound of one clip's training memory (activations kept for backward), in bytes.

    Used by the memory rule on CPU and MPS, where probing is neither needed nor reliable; each
    model's estimate lives in its registry entry.
    """
    from slr.models.registry import model_spec

    return model_spec(model_name).bytes_per_sample(settings, input_dim, frames)


@dataclass(frozen=True)
class MemorySnapshot:
    device_kind: str
    allocated: int = 0
    reserved: int = 0
    peak: int = 0
    rss: int = 0

    def as_row(self) -> dict[str, float]:
        """The log columns, in MiB (zero where the device has no such figure)."""
        mib = 2**20
        return {
            "gpu_memory_allocated": round(self.allocated / mib, 1),
            "gpu_memory_reserved": round(self.reserved / mib, 1),
            "gpu_memory_peak": round(self.peak / mib, 1),
            "rss": round(self.rss / mib, 1),
        }


def memory_snapshot(device: torch.device) -> MemorySnapshot:
    rss = process_rss()
    if device.type == "cuda":
        return MemorySnapshot(
            "cuda",
            allocated=torch.cuda.memory_allocated(device),
            reserved=torch.cuda.memory_reserved(device),
            peak=torch.cuda.max_memory_allocated(device),
            rss=rss,
        )
    if device.type == "mps":
        allocated = torch.mps.current_allocated_memory()
        return MemorySnapshot("mps", allocated=allocated, reserved=torch.mps.driver_allocated_memory(), rss=rss)
    return MemorySnapshot("cpu", rss=rss)
