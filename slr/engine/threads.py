"""How many CPU threads torch computes with: `threads` (None = auto), chosen from the usable cores
and the machine's load.

Why not torch's default (one thread per core): on a busy machine OpenMP threads wait for each
other at every parallel region, and a core another process holds stalls them all for whole
scheduler slices. On a shared 2-core machine (load 2-6) training with torch's 2 threads ran 3.7-5x
slower than with 1 thread, with identical losses; `benchmarks/cpu_threads.py` measures it
(docs/results.md). So the auto rule only counts cores that are free: usable cores minus the load
that falls on them, at least 1, at most torch's own default. An explicit OMP_NUM_THREADS in the
environment is the user's choice and is kept.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # why, in words (shown in the run header and by `slr hwinfo`)
    method: str  # "setting", "environment" or "auto"
    usable_cores: int
    load: Optional[float]  # 1-minute load average on the usable cores, where known

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_on_usable_cores(cores: int) -> Optional[float]:
    """The 1-minute load average, scaled to the cores this process may use (a container limited
    to 2 of 64 cores sees the whole machine's load)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    machine = os.cpu_count() or cores
    return load * cores / machine if machine > cores else load


def auto_threads(cores: int, load: Optional[float], torch_default: int) -> tuple[int, str]:
    """The rule: min(torch's default, max(1, floor(cores - load + 0.5))). Pure, so it can be tested."""
    ceiling = max(1, min(cores, torch_default))
    if load is None:
        return ceiling, f"{cores} usable core(s), load unknown"
    free = max(1, min(ceiling, math.floor(cores - load + 0.5)))
    why = f"{cores} usable core(s), load {load:.1f}"
    if free < ceiling:
        why += f": {free} free (more threads than free cores wait on each other)"
    return free, why


def choose_threads(requested: Optional[int], *, cores: Optional[int] = None, load: Optional[float] = None,
                   environ: Optional[dict[str, str]] = None) -> ThreadChoice:
    import torch

    cores = usable_cores() if cores is None else cores
    environ = os.environ if environ is None else environ
    if load is None:
        load = load_on_usable_cores(cores)
    if requested is not None:
        return ThreadChoice(requested, "as given", "setting", cores, load)
    env = environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), f"OMP_NUM_THREADS={env} in the environment", "environment", cores, load)
    n, why = auto_threads(cores, load, _torch_default(torch))
    return ThreadChoice(n, f"auto: {why}", "auto", cores, load)


def _torch_default(torch) -> int:
    # torch's own default (one per physical core), remembered before this module first changes it
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = torch.get_num_threads()
    return _DEFAULT


_DEFAULT: Optional[int] = None
_INTEROP_SET = False


def apply_threads(requested: Optional[int]) -> ThreadChoice:
    """Choose and set torch's intra-op threads; inter-op threads too, the first time, where torch
    still allows it (it refuses once any parallel work has run)."""
    import torch

    global _INTEROP_SET
    choice = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    if not _INTEROP_SET:
        _INTEROP_SET = True
        try:
            torch.set_num_interop_threads(choice.threads)
        except RuntimeError:  # already started: leave it (eager training barely uses it)
            pass
    return choice
