"""The order clips are visited in: a fixed permutation per (seed, epoch), sharded across ranks.

Because the order depends only on (seed, epoch), a resumed run sees exactly the batches the
interrupted one would have seen, and `skip` lets it continue in the middle of an epoch.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(self, num_samples: int, *, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Visit epoch ``epoch``'s order, leaving out this rank's first ``skip`` samples."""
        self.epoch = epoch
        self.skip = skip

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def _shard(self) -> list[int]:
        # Strided shards: the union of every rank's k-th batch is the single-process k-th batch
        # when the per-rank batch is the global batch divided by the world size.
        order = self._order()
        if self.shuffle and self.world_size > 1:
            # Training: every rank must run the same number of steps or the gradient all-reduce
            # waits forever, so the order is padded with its own start (as DistributedSampler does).
            padded = -(-self.num_samples // self.world_size) * self.world_size
            order = (order * (padded // max(1, len(order)) + 1))[:padded]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.skip :])

    def __len__(self) -> int:
        if self.shuffle and self.world_size > 1:
            per_rank = -(-self.num_samples // self.world_size)
        else:
            per_rank = len(range(self.rank, self.num_samples, self.world_size))
        return max(0, per_rank - self.skip)
