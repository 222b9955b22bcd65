"""What the machine offers, and what the auto options pick from it: device, CPUs, memory, workers,
mixed precision, the memory figures of the log; and the C allocator's hold on freed memory.
The batch size is picked in slr/engine/autobatch.py."""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import torch

from slr.errors import setting

MAX_AUTO_WORKERS = 8
GIB = 1024**3
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


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


# -- what only some devices can do ------------------------------------------------------------------
# Every option that only a GPU can use (mixed precision, compile, pinned memory, DataParallel, a
# measured batch size, the GPU memory figures) is decided from a ``Capabilities`` value, made for
# the device by ``capabilities(device)``: the one place a device's kind decides them. A test hands
# the CPU a GPU's capabilities and so drives every one of those branches on the CPU
# (docs/architecture.md lists each branch and its test).


class DeviceMemory:
    """Where a device's memory figures come from: the probe's peak per step, and the memory panel."""

    kind = "cpu"

    def total(self) -> int:
        raise NotImplementedError

    def available(self) -> int:
        """What the memory rule may plan with."""
        return self.total()

    def peak_of(self, step: Callable[[], None]) -> int:
        """Run ``step`` and return the memory it took at its peak; torch.OutOfMemoryError when it
        does not fit."""
        raise NotImplementedError

    def figures(self) -> tuple[int, int, int]:
        """(allocated, reserved, peak) bytes for the log's gpu_memory_* columns; zeros without a GPU."""
        return 0, 0, 0

    def describe(self) -> str:
        return "resident memory"


class CudaMemory(DeviceMemory):
    """A CUDA GPU: the caching allocator's peak, its total memory."""

    kind = "cuda"

    def __init__(self, device: torch.device):
        self.device = device

    def total(self) -> int:
        return torch.cuda.get_device_properties(self.device).total_memory

    def peak_of(self, step: Callable[[], None]) -> int:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            step()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device)
        finally:
            torch.cuda.empty_cache()  # the next, smaller try must not pay for this one's blocks

    def figures(self) -> tuple[int, int, int]:
        d = self.device
        return torch.cuda.memory_allocated(d), torch.cuda.memory_reserved(d), torch.cuda.max_memory_allocated(d)

    def describe(self) -> str:
        return f"allocator peak on {torch.cuda.get_device_name(self.device)}"


class ResidentMemory(DeviceMemory):
    """The CPU (and MPS, whose memory is the machine's): the growth of this process's peak resident
    memory during a step. ``budget``: the bytes a step may take (default: the memory available
    now); a step whose peak passes it raises torch.OutOfMemoryError, as a full GPU would."""

    def __init__(self, budget: Optional[int] = None, kind: str = "cpu"):
        self.budget = budget
        self.kind = kind

    def total(self) -> int:
        return self.budget if self.budget is not None else self.available()

    def available(self) -> int:
        if self.kind == "mps":
            return int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory())
        return ram_bytes()[1]

    def peak_of(self, step: Callable[[], None]) -> int:
        release_freed_memory()  # freed blocks kept by malloc would hide the next step's growth
        before = _reset_peak_rss()
        step()
        peak = max(0, _peak_rss() - before)
        if self.budget is not None and peak > self.budget:
            raise torch.OutOfMemoryError(f"the step took {peak / GIB:.2f} GiB of a {self.budget / GIB:.2f} GiB budget")
        return peak

    def figures(self) -> tuple[int, int, int]:
        if self.kind == "mps":
            allocated = torch.mps.current_allocated_memory()
            return allocated, torch.mps.driver_allocated_memory(), 0
        return 0, 0, 0

    def describe(self) -> str:
        return "peak resident memory" + (" (MPS shares the machine's memory)" if self.kind == "mps" else "")


def _reset_peak_rss() -> int:
    """Reset the kernel's peak resident size of this process to now (Linux); return the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # elsewhere: the peak stays the process's lifetime peak, and growth reads as 0
    return process_rss()


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return process_rss()


@dataclass(frozen=True)
class Capabilities:
    amp: bool  # mixed precision (autocast; float16 with a GradScaler)
    compile: bool  # torch.compile pays off
    pin_memory: bool  # pinned host memory for copies to the device
    gpus: int  # devices DataParallel can spread one process over
    probe: bool  # --auto-batch-size measures real steps (otherwise the memory rule)
    bf16: bool  # bfloat16 autocast is supported (and fast: a CPU without native bfloat16 emulates it)
    memory: DeviceMemory
    float16: bool = True  # float16 autocast with a GradScaler pays off (GPUs; not CPUs)


def capabilities(device: torch.device) -> Capabilities:
    """What ``device`` can do for the GPU-only options."""
    if device.type == "cuda":
        return Capabilities(amp=True, compile=True, pin_memory=True, gpus=torch.cuda.device_count(), probe=True,
                            bf16=torch.cuda.is_bf16_supported(), memory=CudaMemory(device))
    # a CPU with native bfloat16 (AVX512-BF16, AMX) runs --amp as bfloat16 autocast; elsewhere float32
    bf16 = device.type == "cpu" and cpu_has_fast_bf16()
    return Capabilities(amp=bf16, compile=False, pin_memory=False, gpus=0, probe=False, bf16=bf16,
                        memory=ResidentMemory(kind=device.type), float16=False)


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


def amp_dtype(device: torch.device, preference: str = "auto",
              caps: Optional[Capabilities] = None) -> Optional[torch.dtype]:
    """The autocast dtype for --amp on this device, or None where mixed precision stays off."""
    caps = caps or capabilities(device)
    if not caps.amp:
        return None
    if preference == "float16":
        return torch.float16 if caps.float16 else None
    if preference == "bfloat16" or caps.bf16:
        return torch.bfloat16 if caps.bf16 else torch.float16
    return torch.float16


def autocast_dtype(amp: Optional[bool], device: torch.device, preference: str = "auto",
                   caps: Optional[Capabilities] = None) -> Optional[torch.dtype]:
    """The autocast dtype a run uses: --amp on: `amp_dtype`; --no-amp: None (float32); auto (None):
    bfloat16 on a CPU with native bfloat16, where paired runs were level in accuracy and the step
    took 0.65x as long (docs/results.md); on a GPU mixed precision stays opt-in, as it was (not
    measured there)."""
    caps = caps or capabilities(device)
    if amp is None:
        return torch.bfloat16 if device.type == "cpu" and caps.bf16 and preference != "float16" else None
    return amp_dtype(device, preference, caps) if amp else None


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


def memory_snapshot(device: torch.device, memory: Optional[DeviceMemory] = None) -> MemorySnapshot:
    """The memory figures of the log and the panel; ``memory``: where the GPU figures come from
    (default: the device's own source)."""
    memory = memory or capabilities(device).memory
    allocated, reserved, peak = memory.figures()
    return MemorySnapshot(memory.kind, allocated=allocated, reserved=reserved, peak=peak, rss=process_rss())


# -- the C allocator ------------------------------------------------------------------------------
# Keep the C allocator from holding on to freed memory (glibc; a no-op elsewhere).
#
# Why: PyTorch's CPU tensors come from malloc. glibc serves a large request with its own mmap and
# unmaps it on free, but the first time such a block is freed it raises its mmap threshold to that
# block's size (up to 32 MiB): from then on every activation of a step, 3-30 MB each with clips of
# up to 225 frames, comes from the heap, and with batch shapes that vary the freed blocks rarely fit
# the next request. The heap then holds freed holes beside the live tensors: the resident memory
# climbs over epochs although nothing leaks (docs/results.md, "Memory": 2.1 GB to 3.6 GB in the
# issue; 820 MB with MALLOC_ARENA_MAX=1 MALLOC_TRIM_THRESHOLD_=0, which slowed every step).
#
# Two measures, each from a setting:
#
# - ``release_freed_memory``: one malloc_trim per epoch returns the free pages in every arena at a
#   cost of milliseconds, so the memory between epochs stays flat;
# - ``fix_mmap_threshold``: mallopt(M_MMAP_THRESHOLD) at the start of a run, which keeps the
#   threshold where it is set (glibc's dynamic raise stops once it is set), so blocks above it are
#   mapped and unmapped on their own and never leave holes in the heap. That lowers the peak inside
#   an epoch, but each such block then comes from fresh pages, a page fault per 4 KiB at every
#   step: measured, 16 MiB took a 98 MB data set's peak from 1.43-1.51 GB to 1.33 GB at 0.86x the
#   speed (benchmarks/memory_buckets.py, docs/results.md), so it is off unless asked for. It holds
#   for the rest of the process: glibc has no way back to its dynamic rule.


@lru_cache(maxsize=None)
def _glibc() -> Optional[ctypes.CDLL]:
    """The process's C library when it is glibc, else None.

    ``ctypes.CDLL(None)`` gives the symbols already loaded into the process; unlike
    ``ctypes.util.find_library`` it starts no ldconfig/gcc subprocess (a fork of a process that may
    hold a gigabyte by then).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has neither this nor malloc_trim
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def release_freed_memory() -> bool:
    """Return free heap pages to the system; False where the C library cannot."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def fix_mmap_threshold(mib: int) -> Optional[str]:
    """Serve blocks of ``mib`` MiB and more with their own mapping from now on, in this process.

    Returns None once set, else why not (not glibc, or glibc refused the value); ``mib`` 0 leaves
    glibc's own rule and returns None.
    """
    if mib <= 0:
        return None
    libc = _glibc()
    if libc is None:
        return "the C library is not glibc"
    if not libc.mallopt(M_MMAP_THRESHOLD, mib * 2**20):  # 0: refused (glibc 2.36 takes any value)
        return f"glibc refused an mmap threshold of {mib} MiB"
    return None
