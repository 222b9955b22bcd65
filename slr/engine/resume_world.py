"""Resuming on a different number of processes than the run trained on (2 -> 1, 1 -> 2, ...).

It continues exactly, with the same global batch, because the order clips are visited in does
not depend on the number of processes: the sampler draws one permutation per (seed, epoch) and
rank r of W takes every W-th clip of it, so the k-th step of W processes with ``b`` clips each
visits the same ``b * W`` clips as the k-th step of one process with ``b * W`` (see
``slr/engine/sampler.py``). A step index therefore means the same place in the epoch for any W as
long as the global batch ``b * W`` stays, and the per-process batch is rescaled to keep it:
trained with 8 per process on 2 processes, resumed on 1 -> 16; the reverse -> 8.

Refused, with what to pass instead:
- a global batch the new number of processes cannot split evenly (12 on 5 processes);
- another global batch in the middle of an epoch: the step index would point at other clips,
  and the rest of that epoch would skip or repeat some. At an epoch boundary it is allowed
  (a new batch size from the next epoch on, as on a same-size resume).

Two more things make the numbers match an uninterrupted run: the running totals of the epoch a
checkpoint stopped in are saved summed over every rank (each rank holds only its own clips'
totals), and on resume rank 0 alone carries them forward (every rank loads the same file). On
the same number of processes each rank also continues its own random streams (``rng_ranks``);
on another, dropout masks cannot match an uninterrupted run anyway, and every rank takes rank 0's.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from slr.engine.distributed import DistInfo, all_reduce_sum
from slr.errors import CheckpointError, setting
from slr.settings import TrainSettings


def fit_batch_to_world(
    settings: TrainSettings, runtime: dict[str, Any], state: Optional[dict[str, Any]], dist: DistInfo, path=None
) -> tuple[TrainSettings, dict[str, Any], list[str]]:
    """The settings (per-process batch size) and runtime record that continue ``state`` exactly on
    ``dist.world_size`` processes, and the notices that say what changed. Unchanged when not resuming."""
    if state is None:
        return settings, runtime, []
    trained_world = int((state.get("runtime") or {}).get("world_size", 1) or 1)
    trained_batch = int((state.get("settings") or {}).get("batch_size", settings.batch_size))
    global_batch = trained_batch * trained_world
    world, batch = dist.world_size, settings.batch_size
    step = int(state.get("step_in_epoch", 0) or 0)
    if batch * world == global_batch:
        return settings, runtime, []
    trained = f"{trained_batch} per process x {trained_world} process{'es' if trained_world > 1 else ''}"
    if batch == trained_batch and world != trained_world:
        if global_batch % world:
            divisors = ", ".join(str(n) for n in range(1, global_batch + 1) if global_batch % n == 0)
            other = (f"; another batch size ({setting('batch_size')}) can start from a checkpoint written at the "
                     "end of an epoch" if step else f", or pass {setting('batch_size')} to choose another batch size")
            raise CheckpointError(
                f"trained with a global batch of {global_batch} ({trained}), which {world} processes cannot "
                f"share evenly, so the run cannot continue exactly. Resume on a number of processes that divides "
                f"{global_batch} ({divisors}){other}",
                path,
            )
        per_process = global_batch // world
        runtime = dict(runtime)
        if isinstance(runtime.get("batch_size"), dict):  # --auto-batch-size: the next resume reads this
            runtime["batch_size"] = {**runtime["batch_size"], "value": per_process}
        note = (
            f"resuming on {world} process{'es' if world > 1 else ''}, trained on {trained_world}: batch "
            f"{per_process} per process keeps the global batch of {global_batch} ({trained}), so the run "
            "continues with the same steps over the same clips"
        )
        return settings.model_copy(update={"batch_size": per_process}), runtime, [note]
    if step:
        keep = global_batch // world if global_batch % world == 0 else None
        raise CheckpointError(
            f"stopped inside epoch {int(state.get('epoch', 0)) + 1} (after step {step}) with a global batch of "
            f"{global_batch} ({trained}); {setting('batch_size')} {batch} on {world} process"
            f"{'es' if world > 1 else ''} makes it {batch * world}, and the rest of that epoch would visit other "
            "clips than it should. "
            + (f"Keep the global batch ({setting('batch_size')} {keep} here), or change it " if keep else
               "Change it ")
            + "from a checkpoint written at the end of an epoch",
            path,
        )
    # At an epoch boundary: a new global batch from the next epoch on, as asked.
    return settings, runtime, [f"global batch {batch * world} from here on (trained with {global_batch}: {trained})"]


def totals_to_save(values: torch.Tensor, dist: DistInfo) -> list[float]:
    """The epoch's running totals summed over every rank, for a checkpoint written mid-epoch (a
    collective: every rank calls it at the same point)."""
    return [float(v) for v in all_reduce_sum(values.detach().clone(), dist).tolist()]


def totals_to_resume(totals: list[float], dist: DistInfo) -> list[float]:
    """The stored epoch totals hold every rank's clips: rank 0 carries them on, the others start at 0."""
    return list(totals) if dist.is_main else [0.0] * len(totals)


def every_ranks_rng(own: dict[str, Any], dist: DistInfo) -> dict[str, Any]:
    """``{"rng_ranks": [rank 0's, rank 1's, ...]}`` for a checkpoint (a collective), {} in one process.

    Ranks draw different amounts of randomness (dropout over batches of different lengths), so
    their streams part after the first step; rank 0's alone would give every other rank other
    dropout masks after a resume."""
    if not dist.enabled:
        return {}
    import io

    import torch.distributed as tdist

    # As bytes: all_gather_object's pickling of the state's tensors fails ("UntypedStorage has no
    # attribute dtype"); torch.save of plain tensors and containers reads back with weights_only.
    buffer = io.BytesIO()
    torch.save(own, buffer)
    gathered: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(gathered, buffer.getvalue())
    if not dist.is_main:  # only rank 0 writes the checkpoint
        return {}
    return {"rng_ranks": [torch.load(io.BytesIO(data), weights_only=True) for data in gathered]}


def rng_for_rank(state: dict[str, Any], dist: DistInfo) -> dict[str, Any]:
    """This rank's own random streams when the checkpoint has them for this number of processes;
    rank 0's otherwise (another number of processes: dropout masks cannot match anyway)."""
    ranks = state.get("rng_ranks")
    if isinstance(ranks, list) and len(ranks) == dist.world_size and isinstance(ranks[dist.rank], dict):
        return ranks[dist.rank]
    return state["rng"]
