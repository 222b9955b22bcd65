"""Keep the C allocator from holding on to freed memory (glibc; a no-op elsewhere).

Why: PyTorch's CPU tensors come from malloc. glibc serves a large request with its own mmap and
unmaps it on free, but the first time such a block is freed it raises its mmap threshold to that
block's size (up to 32 MiB): from then on every activation of a step, 3-30 MB each with clips of
up to 225 frames, comes from the heap, and with batch shapes that vary the freed blocks rarely fit
the next request. The heap then holds freed holes beside the live tensors: the resident memory
climbs over epochs although nothing leaks (docs/results.md, "Memory": 2.1 GB to 3.6 GB in the
issue; 820 MB with MALLOC_ARENA_MAX=1 MALLOC_TRIM_THRESHOLD_=0, which slowed every step).

Two measures, each from a setting:

- ``release_freed_memory``: one malloc_trim per epoch returns the free pages in every arena at a
  cost of milliseconds, so the memory between epochs stays flat;
- ``fix_mmap_threshold``: mallopt(M_MMAP_THRESHOLD) at the start of a run, which keeps the
  threshold where it is set (glibc's dynamic raise stops once it is set), so blocks above it are
  mapped and unmapped on their own and never leave holes in the heap. That lowers the peak inside
  an epoch, but each such block then comes from fresh pages, a page fault per 4 KiB at every
  step: measured, 16 MiB took a 98 MB data set's peak from 1.43-1.51 GB to 1.33 GB at 0.86x the
  speed (benchmarks/memory_buckets.py, docs/results.md), so it is off unless asked for. It holds
  for the rest of the process: glibc has no way back to its dynamic rule.
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache
from typing import Optional

M_MMAP_THRESHOLD = -3  # glibc's malloc.h


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
