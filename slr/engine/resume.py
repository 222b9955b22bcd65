"""Resuming, in one place: the plan (``slr resume CKPT`` and ``slr train --resume CKPT`` alike), the
checks a checkpoint passes before a run continues from it, ``--resume auto``, "nothing to do",
and continuing on another number of processes.

The plan: the checkpoint's stored settings < the config file < the flags, outputs beside the
checkpoint, and a ``(setting, stored, now)`` triple for each setting the config or flags change.
``engine.run.train(settings, observer, resume=plan)`` then runs it as a new run; ``check_resume``
is the one place the checkpoint's values are checked against the run (model and class counts, the
history, the best checkpoint beside it, what is left to do), once, before any data is read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from slr.config import check_config_values, read_config_file, resolve_settings
from slr.engine import checkpoint as ckpt
from slr.engine.checkpoint import Progress, check_resume_values, reconcile_best
from slr.engine.distributed import DistInfo, all_reduce_sum
from slr.engine.run_folder import last_checkpoints
from slr.errors import CheckpointError, ConfigError, DataError, setting
from slr.models.registry import model_spec
from slr.settings import ResumeSettings, TrainSettings, stored_train_settings

AUTO = "auto"


# -- the plan =======================================================================================


@dataclass
class ResumePlan:
    """A checkpoint to continue from and the settings the continued run will use."""

    path: Path
    state: dict[str, Any]
    settings: TrainSettings
    #: (setting, value stored in the checkpoint, value now) for each setting the config file or the
    #: flags changed
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)


def plan_resume(request: ResumeSettings) -> ResumePlan:
    """Stored settings < config file < flags, for `slr resume` and `slr train --resume` alike."""
    path = Path(request.checkpoint)
    state = ckpt.load_checkpoint(path, need="resume")
    given: dict[str, Any] = {}
    if request.config is not None:
        given = dict(read_config_file(request.config))
        check_config_values(TrainSettings, given, request.config)  # bad values name the file
    given.update(request.overrides)
    given.pop("resume", None)
    # settings added since the checkpoint was written take the value of before they existed
    stored = {k: v for k, v in stored_train_settings(state["settings"]).items() if k not in ("resume", "smoke_test")}
    stored.update(_outputs_beside(path, stored, given))
    settings = resolve_settings(
        TrainSettings, given, base=stored, base_source=f"{path} (settings stored in the checkpoint)"
    )
    _check_stored_data_dirs(settings, given, path)
    before = _as_stored(stored)
    now = settings.model_dump(mode="json")
    changes = [(name, before.get(name), now[name]) for name in now if name in given and before.get(name) != now[name]]
    return ResumePlan(path, state, settings, changes)


def _as_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The stored settings in the form model_dump(mode="json") gives, so that equal values compare equal."""
    try:
        return TrainSettings.model_validate(dict(stored)).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - invalid stored settings were already refused by resolve_settings
        return dict(stored)


def _outputs_beside(checkpoint: Path, stored: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A resumed run writes beside its checkpoint: the stored output folder was relative to wherever
    the first run started, and may now hold another run."""
    if "output_dir" in given:
        return {}
    updates: dict[str, Any] = {"output_dir": str(checkpoint.parent)}
    log = stored.get("log_csv")
    if log and "log_csv" not in given:
        try:  # a log inside the old output directory moves along; one kept elsewhere stays there
            updates["log_csv"] = str(checkpoint.parent / Path(log).relative_to(stored.get("output_dir", "runs")))
        except ValueError:
            pass
    return updates


def _check_stored_data_dirs(settings: TrainSettings, given: Mapping[str, Any], checkpoint: Path) -> None:
    kind = model_spec(settings.model).input_kind
    for split in ("train", "val"):
        name = f"{kind}_{split}"
        directory = getattr(settings, name)
        if directory is not None and name not in given and not Path(directory).is_dir():
            raise DataError(
                f"{setting(name)} {directory}, stored in the checkpoint (relative to where the run started), is "
                f"not a directory here: run from there, or pass {setting(name, 'DIR')}",
                checkpoint,
            )



# -- the checks, once ===============================================================================


@dataclass(frozen=True)
class ResumeCheck:
    """What the checks of a resume found: the progress the history gives, notes for the user, and
    why there is nothing to do (None when there is)."""

    progress: Progress
    notes: list[str]
    nothing_to_do: Optional[str]


def check_resume(plan: ResumePlan, settings: TrainSettings, dist: DistInfo) -> ResumeCheck:
    """Everything a checkpoint must agree with before a run continues from it, checked once."""
    state, path = plan.state, plan.path
    ckpt.check_compatible(state, path, model=settings.model, num_gloss=settings.num_gloss, num_cat=settings.num_cat)
    progress = check_resume_values(state, path)
    notes = reconcile_best(state, path) if dist.is_main else []  # only rank 0 writes files
    return ResumeCheck(progress, notes, nothing_to_do(settings, state, progress.stale_epochs, path))



def check_same_layout(state: Mapping[str, Any], declared: Optional[dict[str, Any]], path: Path) -> None:
    """A resumed run reads its clips as the checkpoint's run did: the same layout declaration or none."""
    stored = state.get("keypoint_layout")
    if stored != declared:
        now = "none" if declared is None else "another one"
        raise CheckpointError(
            f"trained with {'no' if stored is None else 'a'} {setting('keypoint_layout')} declaration, and this run "
            f"has {now}: a resumed run must read the clips as it was trained (keep the layout file as it was, "
            "or start a new run)",
            path,
        )


def nothing_to_do(settings: TrainSettings, state: Mapping[str, Any], stale: int, path: Path) -> Optional[str]:
    """Why a resumed run has nothing left to train, or None."""
    if state["epoch"] >= settings.epochs:
        return (f"{path} has already trained {state['epoch']} of {setting('epochs', settings.epochs)}: nothing to "
                f"do ({setting('epochs')} is the total; raise it to train further)")
    if settings.early_stop and stale >= settings.early_stop:
        return (f"{path} stopped early after epoch {state['epoch']}: no better val_gloss_acc for {stale} "
                f"epoch{'s' if stale > 1 else ''} ({setting('early_stop', settings.early_stop)}). Nothing to do; "
                f"to train further pass a larger {setting('early_stop')}, or {setting('early_stop', None)} to "
                f"turn it off")
    return None



# -- --resume auto ==================================================================================
# ``resume: auto``: the same job script for a run's first start and for every requeue after it.
#
# A scheduler (SLURM) stops a job and starts it again with the same command. With ``auto`` the run
# continues from its output folder's ``<Model>_last.pt`` when there is one and starts afresh when
# there is none, as Lightning's ``ckpt_path="last"`` does. What it never does is start afresh over a
# checkpoint it could not use: a new run would move that run aside and begin from epoch 0, and a
# requeued job doing so every time would never finish. So:
#
# - no ``_last.pt`` in the folder: a new run (an earlier log or settings.json there is kept in
#   ``earlier/`` as for any new run);
# - this model's ``_last.pt``: resume from it. When it already trained every epoch, the resume says
#   "nothing to do" and the job ends at once, as ``slr resume`` does;
# - only another model's ``_last.pt`` (the folder holds another run): refused, naming both models;
# - a ``_last.pt`` that cannot be read or resumed from: refused, and the file is left as it is.


def find_resumable(settings: TrainSettings) -> Optional[Path]:
    """The checkpoint ``resume: auto`` continues from, or None for a new run (see the module text).

    The model is the one the settings name; when they name none (the model was not given), the
    folder's only ``_last.pt`` decides it, as ``--resume CKPT`` takes the model from CKPT.
    """
    folder = Path(settings.output_dir)
    found = last_checkpoints(folder)
    model_given = "model" in settings.model_fields_set
    if model_given and settings.model in found:
        path = found[settings.model]
    elif not found:
        return None
    elif model_given:
        others = ", ".join(f"{model} ({p.name})" for model, p in found.items())
        raise ConfigError(
            f"{setting('resume')} auto: {folder} holds the last checkpoint of another model, {others}, and none of "
            f"{settings.model}: a folder holds one run. Give this run its own {setting('output_dir')}, or resume "
            "that model"
        )
    elif len(found) > 1:
        names = ", ".join(p.name for p in found.values())
        raise ConfigError(
            f"{setting('resume')} auto: {folder} holds the last checkpoints of several models ({names}): "
            "name the model to resume"
        )
    else:
        path = next(iter(found.values()))
    _check_resumable(path)
    return path


def _check_resumable(path: Path) -> None:
    """Read it now: an unusable last checkpoint stops the job instead of being replaced by a new run."""
    try:
        ckpt.load_checkpoint(path, need="resume")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{setting('resume')} auto cannot continue from it ({_reason(exc, path)}). It is left as it is and "
            "no new run was started over it: resume from another copy of it, or move it away to start afresh",
            path,
        ) from None


def _reason(exc: CheckpointError, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text



# -- another number of processes ====================================================================
# Resuming on a different number of processes than the run trained on (2 -> 1, 1 -> 2, ...).
#
# It continues exactly, with the same global batch, because the order clips are visited in does
# not depend on the number of processes: the sampler draws one permutation per (seed, epoch) and
# rank r of W takes every W-th clip of it, so the k-th step of W processes with ``b`` clips each
# visits the same ``b * W`` clips as the k-th step of one process with ``b * W`` (see
# ``slr/engine/sampler.py``). A step index therefore means the same place in the epoch for any W as
# long as the global batch ``b * W`` stays, and the per-process batch is rescaled to keep it:
# trained with 8 per process on 2 processes, resumed on 1 -> 16; the reverse -> 8.
#
# Refused, with what to pass instead:
# - a global batch the new number of processes cannot split evenly (12 on 5 processes);
# - another global batch in the middle of an epoch: the step index would point at other clips,
#   and the rest of that epoch would skip or repeat some. At an epoch boundary it is allowed
#   (a new batch size from the next epoch on, as on a same-size resume).
#
# Two more things make the numbers match an uninterrupted run: the running totals of the epoch a
# checkpoint stopped in are saved summed over every rank (each rank holds only its own clips'
# totals), and on resume rank 0 alone carries them forward (every rank loads the same file). On
# the same number of processes each rank also continues its own random streams (``rng_ranks``);
# on another, dropout masks cannot match an uninterrupted run anyway, and every rank takes rank 0's.


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


def every_ranks_rng(own: dict[str, Any], dist: DistInfo) -> dict[str, Any]:
    """``{"rng_ranks": [rank 0's, rank 1's, ...]}`` for a checkpoint (a collective), {} in one process.

    Ranks draw different amounts of randomness (dropout over batches of different lengths), so
    their streams part after the first step; rank 0's alone would give every other rank other
    dropout masks after a resume."""
    if not dist.enabled:
        return {}
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
