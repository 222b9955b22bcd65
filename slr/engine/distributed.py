"""DistributedDataParallel when launched by torchrun; a no-op single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group torchrun set up (NCCL on CUDA, gloo elsewhere)."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


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


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank says True (e.g. stop early, interrupted, non-finite loss)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


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
    return isinstance(exc, dist.DistError) or "closed by peer" in text or "remote worker" in text
