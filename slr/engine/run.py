"""`slr train` and `slr resume`: turn settings into a device, data, a model and a Trainer, then fit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from slr import __version__
from slr.config import resolve_settings
from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.autobatch import choose_batch_size
from slr.engine.distributed import (
    DistInfo,
    init_distributed,
    min_across_ranks,
    peer_failed,
    peer_lost_message,
    shutdown_distributed,
)
from slr.engine.logbook import write_json
from slr.engine.run_files import check_writable, keep_earlier_run
from slr.engine.trainer import Interrupted, RunPaths, Trainer
from slr.errors import DataError, SlrError, TrainingStopped
from slr.settings import MODEL_CLASS_NAMES, ResumeSettings, TrainSettings
from slr.ui.console import print_notice
from slr.ui.training_view import TrainingView


@dataclass
class TrainOutcome:
    paths: RunPaths
    best_metric: float
    best_epoch: int
    epochs_done: int
    history: list[dict[str, Any]]
    interrupted: bool = False


def resume_from_settings(settings: ResumeSettings) -> TrainOutcome:
    """Continue a run: the checkpoint's settings, overridden by any flags given to `slr resume`."""
    path = Path(settings.checkpoint)
    state = ckpt.load_checkpoint(path, need="resume")
    stored = dict(state["settings"])
    stored.pop("resume", None)
    stored.update(_outputs_beside(path, stored, settings.overrides))
    train_settings = resolve_settings(
        TrainSettings, settings.overrides, base=stored, base_source=f"{path} (settings stored in the checkpoint)"
    )
    _check_stored_data_dirs(train_settings, settings.overrides, path)
    return run_training(train_settings, resume_state=state, resume_path=path)


def train_from_settings(settings: TrainSettings) -> TrainOutcome:
    """`slr train`; with --resume, the given settings continue from that checkpoint's state."""
    if settings.resume == "auto":  # the output folder's _last.pt, or a new run (slr/engine/resume_auto.py)
        from slr.engine.resume_auto import find_resumable

        settings = settings.model_copy(update={"resume": find_resumable(settings)})
    if settings.resume is not None:
        path = Path(settings.resume)
        state = ckpt.load_checkpoint(path, need="resume")
        given = settings.model_fields_set
        updates: dict[str, Any] = {}
        if "model" not in given:  # the guide's `train.py --resume CKPT ...` names no model
            updates["model"] = state.get("model", settings.model)
        if "output_dir" not in given:
            updates["output_dir"] = path.parent
        if updates:
            settings = settings.model_copy(update=updates)
        return run_training(settings, resume_state=state, resume_path=path)
    return run_training(settings)


def _outputs_beside(checkpoint: Path, stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A resumed run writes beside its checkpoint: the stored --output-dir was relative to wherever
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


def _check_stored_data_dirs(settings: TrainSettings, given: dict[str, Any], checkpoint: Path) -> None:
    kind = "keypoints" if settings.model == "transformer" else "features"
    for split in ("train", "val"):
        field = f"{kind}_{split}"
        directory = getattr(settings, field)
        if directory is not None and field not in given and not Path(directory).is_dir():
            flag = f"--{kind}-{split}"
            raise DataError(
                f"{flag} {directory}, stored in the checkpoint (relative to where the run started), is not a "
                f"directory here: run from there, or pass {flag} DIR",
                checkpoint,
            )


def run_training(
    settings: TrainSettings,
    resume_state: Optional[dict[str, Any]] = None,
    resume_path: Optional[Path] = None,
    view: Optional[TrainingView] = None,
) -> TrainOutcome:
    choice = hardware.select_device(settings.device)
    dist = init_distributed(choice.kind, settings.dist_timeout_s)
    try:
        outcome = _run(settings, choice, dist, resume_state, resume_path, view)
    except (SystemExit, TrainingStopped):
        # Stops every rank agreed on (Ctrl-C, a non-finite loss): leave together, after rank 0 has
        # written its checkpoint.
        shutdown_distributed(wait_for_peers=True)
        raise
    except BaseException as exc:
        # An error on this rank alone (e.g. rank 0 cannot write to --output-dir): the others may be
        # waiting in a collective it will never join. Waiting for them would hang; leave now, and
        # torchrun stops them.
        shutdown_distributed(wait_for_peers=False)
        if dist.enabled and peer_failed(exc):
            raise TrainingStopped(peer_lost_message(dist, exc, settings.dist_timeout_s, run_paths(settings).last)) from None
        raise
    shutdown_distributed(wait_for_peers=True)
    return outcome


def _run(settings, choice, dist: DistInfo, resume_state, resume_path, view) -> TrainOutcome:
    device = choice.device
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    notices = hardware_notices(settings, device, dist) if dist.is_main else []
    for text in notices:
        print_notice(text)
    view = view or TrainingView(enabled=dist.is_main)
    if resume_state is not None:
        ckpt.check_compatible(
            resume_state, resume_path, model=settings.model, num_gloss=settings.num_gloss, num_cat=settings.num_cat
        )
        if resume_state["epoch"] >= settings.epochs:
            view.note(
                f"{resume_path} has already trained {resume_state['epoch']} of --epochs {settings.epochs}: "
                "nothing to do (--epochs is the total; raise it to train further)"
            )
            return _nothing_to_do(settings, resume_state)
        stale = resume_state["early_stop"]["stale_epochs"]
        if settings.early_stop and stale >= settings.early_stop:
            view.note(
                f"{resume_path} stopped early after epoch {resume_state['epoch']}: no better val_gloss_acc for "
                f"{stale} epoch{'s' if stale > 1 else ''} (--early-stop {settings.early_stop}). Nothing to do; to "
                f"train further pass a larger --early-stop, or --early-stop none to turn it off"
            )
            return _nothing_to_do(settings, resume_state)

    paths = run_paths(settings)
    if dist.is_main:
        check_writable(paths)  # now, not after the first epoch
    torch.manual_seed(settings.seed)
    from slr.engine.data_setup import build_data

    data = build_data(settings, dist, device)
    settings, runtime = resolve_auto_options(settings, device, data, dist, resume_state)
    from slr.engine.resume_world import fit_batch_to_world, totals_to_resume  # another number of processes

    settings, runtime, world_notes = fit_batch_to_world(settings, runtime, resume_state, dist, resume_path)
    train_loader, val_loader = data.loaders(settings, dist, device, runtime["num_workers"])

    from slr.models.registry import build_model, count_parameters

    model = build_model(settings.model, settings, data.input_dim, settings.num_gloss, settings.num_cat)
    model = model.to(device)
    total_params, trainable = count_parameters(model)
    model = wrap_model(model, settings, device, dist)

    amp = hardware.amp_dtype(device, settings.amp_dtype) if settings.amp else None
    extras = {
        "slr_version": __version__,
        "model": settings.model,
        "model_class": MODEL_CLASS_NAMES[settings.model],
        "input_dim": data.input_dim,
        "num_gloss": settings.num_gloss,
        "num_cat": settings.num_cat,
        "class_names": data.class_names,
        "runtime": runtime,
    }
    trainer = Trainer(settings, model, train_loader, val_loader, device, paths, dist, view, amp, extras)
    if resume_state is not None:
        trainer.load_state_dict(resume_state, resume_path)
        trainer.progress.totals = totals_to_resume(trainer.progress.totals, dist)
    if dist.is_main:
        for names, folder in keep_earlier_run(paths, settings.model, resume_path):
            view.note(f"kept the earlier run's {', '.join(names)}: moved to {folder}")
        write_json(paths.settings_json, {"slr_version": __version__, "settings": settings.model_dump(mode="json"),
                                         "runtime": runtime})
        view.note(_run_header(settings, device, choice.reason, data, runtime, amp, total_params, trainable))
        for text in world_notes:
            view.note(text)
        if resume_state is not None:
            at = f" step {trainer.progress.step}" if trainer.progress.step else ""
            view.note(f"resuming {resume_path} after epoch {trainer.progress.epoch}{at}")
    try:
        progress = trainer.fit()
    except Interrupted as stop:
        view.note(f"interrupted: resumable checkpoint written to {stop.path}; continue with `slr resume {stop.path}`")
        raise SystemExit(130) from None
    outcome = TrainOutcome(paths, progress.best_metric, progress.best_epoch, progress.epoch, progress.history)
    if dist.is_main:
        finish(settings, outcome, view)
    return outcome


def _nothing_to_do(settings: TrainSettings, state: dict[str, Any]) -> TrainOutcome:
    return TrainOutcome(run_paths(settings), state["best_metric"], state.get("best_epoch", 0), state["epoch"],
                        state["history"])


def _run_header(settings, device, reason, data, runtime, amp, total_params, trainable) -> str:
    accumulation = settings.gradient_accumulation_steps
    parts = [
        f"{MODEL_CLASS_NAMES[settings.model]}: {total_params:,} parameters ({trainable:,} trainable) "
        f"on {device} ({reason})",
        data.summary,
        f"batch {settings.batch_size}"
        + (f" per process x {runtime['world_size']} processes" if runtime["world_size"] > 1 else "")
        + (f" x {accumulation} accumulated" if accumulation > 1 else ""),
        f"{runtime['num_workers']} workers",
    ]
    if amp is not None:
        parts.append(f"AMP {str(amp).removeprefix('torch.')}")
    return "; ".join(parts)


def finish(settings: TrainSettings, outcome: TrainOutcome, view: TrainingView) -> None:
    last = outcome.history[-1] if outcome.history else None
    if last is not None:
        view.note(
            f"done: best val_gloss_acc {outcome.best_metric:.4f} at epoch {outcome.best_epoch} "
            f"(last epoch: val_gloss_acc {last['val_gloss_acc']:.4f}, val_cat_acc {last['val_cat_acc']:.4f})"
        )
    view.note(
        f"checkpoints: {outcome.paths.best} (best), {outcome.paths.last} (last); log: {outcome.paths.log_csv}"
    )
    if settings.plots and outcome.history:
        try:
            from slr.analysis.plots import plot_training_curves

            png = plot_training_curves(outcome.paths.log_csv)
            view.note(f"training curves: {png}")
        except (SlrError, OSError) as exc:  # the run itself succeeded: the curves are a bonus
            print_notice(f"training curves not drawn: {exc}; `slr plot {outcome.paths.log_csv}` draws them later")
        except ImportError:
            pass


def run_paths(settings: TrainSettings) -> RunPaths:
    out = Path(settings.output_dir)
    name = MODEL_CLASS_NAMES[settings.model]
    return RunPaths(
        output_dir=out,
        last=out / f"{name}_last.pt",
        best=out / f"{name}_best.pt",
        log_csv=Path(settings.log_csv) if settings.log_csv else out / "log.csv",
        settings_json=out / "settings.json",
    )


def hardware_notices(settings: TrainSettings, device: torch.device, dist: DistInfo) -> list[str]:
    """GPU-only options on hardware that cannot use them: one notice each, never an error."""
    notes = []
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if settings.amp and device.type != "cuda":
        notes.append(f"--amp: mixed precision is for CUDA GPUs; training in float32 on {device.type}")
    if settings.compile_model and device.type != "cuda":
        notes.append(f"--compile-model: skipped on {device.type} (compilation pays off on CUDA GPUs)")
    if settings.enable_parallel and gpus < 2 and not dist.enabled:
        notes.append(f"--enable-parallel: {gpus} GPU(s) visible; DataParallel needs at least 2, training on one device")
    if settings.enable_parallel and settings.compile_model and gpus >= 2 and not dist.enabled:
        notes.append("--compile-model: not combined with DataParallel (no gain, known failures); not compiling")
    if settings.pin_memory and device.type != "cuda":
        notes.append(f"--pin-memory: only helps copies to a CUDA GPU; off on {device.type}")
    return notes


def wrap_model(model: torch.nn.Module, settings: TrainSettings, device: torch.device, dist: DistInfo):
    """compile first (before DDP wrapping), then DDP under torchrun or DataParallel on several GPUs."""
    data_parallel = (
        settings.enable_parallel and device.type == "cuda" and torch.cuda.device_count() > 1 and not dist.enabled
    )
    if settings.compile_model and device.type == "cuda" and not data_parallel:
        # Clip lengths vary from batch to batch: dynamic shapes avoid one recompile per length.
        model = torch.compile(model, dynamic=True)
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if data_parallel:
        return torch.nn.DataParallel(model)
    return model


def resolve_auto_options(settings: TrainSettings, device, data, dist: DistInfo, resume_state):
    """Replace --auto-batch-size / --auto-workers by the values picked, and record why."""
    runtime: dict[str, Any] = {"device": str(device), "world_size": dist.world_size}
    updates: dict[str, Any] = {}
    if settings.auto_batch_size:
        stored = (resume_state or {}).get("runtime", {}).get("batch_size")
        if stored:  # a resumed run keeps the batch size it started with, so it continues exactly
            updates["batch_size"] = stored["value"]
            runtime["batch_size"] = stored
        else:
            pick = choose_batch_size(settings.model, settings, data.input_dim, data.longest_clip, device,
                                     settings.num_gloss, settings.num_cat)
            size, reason = min_across_ranks(pick.batch_size, dist, device), pick.reason
            if size != pick.batch_size:
                reason += f"; {size}, the smallest any of the {dist.world_size} ranks picked"
            if "batch_size" in settings.model_fields_set and size != settings.batch_size:
                reason += f"; replaces --batch-size {settings.batch_size}"
            updates["batch_size"] = size
            runtime["batch_size"] = {"value": size, "method": pick.method, "reason": reason}
            if dist.is_main:
                print_notice(f"--auto-batch-size: {size} ({pick.method}: {reason})")
    workers, reason = settings.num_workers, "--num-workers"
    if settings.auto_workers or settings.num_workers == 0:
        workers, reason = hardware.auto_workers(device.type)
        if dist.enabled:
            workers = max(0, min(workers, hardware.usable_cpus() // dist.local_world_size - 1))  # this machine's
    runtime["num_workers"] = workers
    runtime["num_workers_reason"] = reason
    if updates:
        settings = settings.model_copy(update=updates)
    return settings, runtime
