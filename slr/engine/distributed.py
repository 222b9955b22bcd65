"""DistributedDataParallel when launched by torchrun; a no-op single process otherwise."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine: what shares its CPUs (world_size spans machines)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device_kind: str, timeout_s: Optional[float] = None) -> DistInfo:
    """Join the process group torchrun set up (NCCL on CUDA, gloo elsewhere).

    ``timeout_s`` bounds every collective: a process whose peer vanished without closing its
    connections (a machine lost, a network cut) stops with an error after that long instead of
    waiting for torch's default of 30 minutes (10 for NCCL)."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s) if timeout_s else None
        dist.init_process_group(backend=backend, timeout=timeout)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    local_world_size=local_world)


def shutdown_distributed(wait_for_peers: bool = True) -> None:
    if dist.is_available() and dist.is_initialized():
        try:
            if wait_for_peers:
                # Rank 0 may still be writing checkpoints and logs: leave together, or the ranks
                # that finish first tear the group down under it.
                dist.barrier()
        finally:
            dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor of per-rank totals across ranks (returns it unchanged in one process)."""
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flags: Sequence[bool], info: DistInfo, device: torch.device) -> tuple[bool, ...]:
    """Each flag true on every rank when any rank says true (interrupted, non-finite loss), all in
    one collective."""
    if not info.enabled:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def min_across_ranks(value: int, info: DistInfo, device: torch.device) -> int:
    """The smallest of every rank's value: ranks must agree on sizes that set the number of steps
    (a batch size one rank picked alone would give it a different number of collectives: a hang)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def peer_failed(exc: BaseException) -> bool:
    """Whether ``exc`` only says that another rank went away (its own error tells the user why)."""
    text = str(exc)
    # gloo reports a peer that stopped answering (a frozen or unreachable machine) as a plain
    # RuntimeError "Timed out waiting ...ms for recv operation" once the group's timeout passes.
    timed_out = "timed out waiting" in text.lower()
    return isinstance(exc, dist.DistError) or "closed by peer" in text or "remote worker" in text or timed_out


def peer_lost_message(
    info: DistInfo, exc: BaseException, timeout_s: Optional[float] = None, last: Optional[Path] = None
) -> str:
    """What a surviving rank says when another went away: which rank it is, what it saw (a closed
    connection, or no answer within the timeout), that the other's own message, if it could print
    one, is above (a killed process or a lost machine prints none), and what resumes the run."""
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        seen = "no answer from another process" + (f" within {timeout_s:g} s" if timeout_s else "")
    else:
        seen = "its connection to another process closed"
    if last is not None and last.is_file():
        resume = f"Checkpoints are only ever replaced whole: the last complete one, {last}, resumes the run"
    else:
        resume = "No checkpoint had been written yet"
    return (
        f"rank {info.rank} of {info.world_size}: stopped because another process of this run failed or was "
        f"lost ({seen}). Its own message is above if it could print one; a killed process or a lost "
        f"machine prints none. {resume}"
    )
