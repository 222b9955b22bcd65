"""`slr train` and `slr resume`: turn settings into a device, data, a model and a Trainer, then fit.

One path for both: a resume is planned first (``plan_resume``: the checkpoint's stored settings <
config file < flags), then ``train`` runs it like a new run. Nothing here prints: what happens
goes to the observer the caller hands in (the command line's TrainingView), and the outcome is
returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from slr import __version__
from slr.config import read_config_file, check_config_values, resolve_settings
from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.autobatch import choose_batch_size
from slr.engine.checkpoint_schema import check_resume_values
from slr.engine.distributed import (
    DistInfo,
    init_distributed,
    min_across_ranks,
    peer_failed,
    peer_lost_message,
    shutdown_distributed,
)
from slr.engine.logbook import write_json
from slr.engine.memory_release import fix_mmap_threshold
from slr.engine.best_agreement import reconcile_best
from slr.engine.observer import SilentObserver, TrainingObserver
from slr.engine.run_files import check_writable, files_record, keep_earlier_run
from slr.engine.run_lock import hold_output_dir, release_all
from slr.engine.stale_temps import remove_stale_temporaries
from slr.engine.threads import apply_threads, tune_during_training
from slr.engine.trainer import Interrupted, RunPaths, Trainer
from slr.errors import CheckpointError, DataError, TrainingStopped, setting
from slr.models.registry import model_spec
from slr.settings import ResumeSettings, TrainSettings, stored_train_settings


@dataclass
class TrainOutcome:
    paths: RunPaths
    best_metric: float
    best_epoch: int
    epochs_done: int
    history: list[dict[str, Any]]
    is_main: bool = True  # rank 0 (or the only process): the one that wrote the files
    trained: bool = True  # False when a resumed run had nothing left to do
    model: Optional[torch.nn.Module] = None  # the trained model, unwrapped (None when nothing trained)


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


def train(
    settings: TrainSettings,
    observer: Optional[TrainingObserver] = None,
    resume: Optional[ResumePlan] = None,
) -> TrainOutcome:
    """Train (or continue ``resume``) with ``settings``; what happens goes to ``observer``.

    Raises ``trainer.Interrupted`` after a stop request (Ctrl-C) once a resumable checkpoint is
    written, ``TrainingStopped`` for a run that cannot go on, and other ``SlrError`` for bad input.
    """
    choice = hardware.select_device(settings.device)
    dist = init_distributed(choice.kind, settings.dist_timeout_s)
    watcher = observer if (observer is not None and dist.is_main) else SilentObserver()
    try:
        outcome = _run(settings, choice, dist, resume, watcher)
    except (SystemExit, TrainingStopped, Interrupted):
        # Stops every rank agreed on (a stop signal, a non-finite loss): leave together, after rank 0
        # has written its checkpoint.
        shutdown_distributed(wait_for_peers=True)
        raise
    except BaseException as exc:
        # An error on this rank alone (e.g. rank 0 cannot write to the output folder): the others may
        # be waiting in a collective it will never join. Waiting for them would hang; leave now, and
        # torchrun stops them.
        shutdown_distributed(wait_for_peers=False)
        if dist.enabled and peer_failed(exc):
            raise TrainingStopped(peer_lost_message(dist, exc, settings.dist_timeout_s, run_paths(settings).last)) from None
        raise
    finally:
        release_all()  # the output folder's lock (slr/engine/run_lock.py)
    shutdown_distributed(wait_for_peers=True)
    return outcome


def _run(settings: TrainSettings, choice, dist: DistInfo, resume: Optional[ResumePlan],
         observer: TrainingObserver) -> TrainOutcome:
    device = choice.device
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    for text in hardware_notices(settings, device, dist):
        observer.notice(text)
    state = resume.state if resume is not None else None
    if resume is not None:
        for name, before, now in resume.changes:
            observer.note(f"{setting(name)}: {now} (the checkpoint has {before})")
        ckpt.check_compatible(state, resume.path, model=settings.model, num_gloss=settings.num_gloss,
                              num_cat=settings.num_cat)
        derived = check_resume_values(state, resume.path)
        for text in reconcile_best(state, resume.path) if dist.is_main else []:
            observer.note(text)
        done = _nothing_to_do(settings, state, derived.stale_epochs, resume.path)
        if done is not None:
            observer.note(done)
            return TrainOutcome(run_paths(settings), derived.best_metric, derived.best_epoch,
                                state["epoch"], state["history"], is_main=dist.is_main, trained=False)

    paths = run_paths(settings)
    if dist.is_main:
        check_writable(paths)  # now, not after the first epoch
        hold_output_dir(paths.output_dir)  # one run per folder; refused naming the holder
        for text in remove_stale_temporaries(paths.output_dir):
            observer.note(text)
    torch.manual_seed(settings.seed)
    from slr.engine.data_setup import build_data

    data = build_data(settings, dist, device)
    if resume is not None:
        check_same_layout(state, data.keypoint_layout, resume.path)
    for text in data.notices if dist.is_main else ():
        observer.notice(text)
    amp = hardware.amp_dtype(device, settings.amp_dtype) if settings.amp else None
    settings, runtime = resolve_auto_options(settings, device, data, dist, state, amp, observer)
    runtime["malloc_mmap_mib"] = _fix_mmap_threshold(settings, observer)
    from slr.engine.resume_world import fit_batch_to_world, totals_to_resume  # another number of processes

    settings, runtime, world_notes = fit_batch_to_world(settings, runtime, state, dist, resume.path if resume else None)
    train_loader, val_loader = data.loaders(settings, dist, device, runtime["num_workers"])

    from slr.models.registry import build_model, count_parameters

    model = build_model(settings.model, settings, data.input_dim, settings.num_gloss, settings.num_cat)
    model = model.to(device)
    total_params, trainable = count_parameters(model)
    model = wrap_model(model, settings, device, dist)

    extras = {
        "slr_version": __version__,
        "model": settings.model,
        "model_class": model_spec(settings.model).class_name,
        "input_dim": data.input_dim,
        "num_gloss": settings.num_gloss,
        "num_cat": settings.num_cat,
        "class_names": data.class_names,
        "extraction": data.extraction,  # read by `slr predict` on videos (slr/analysis/predict.py)
        "keypoint_layout": data.keypoint_layout,  # --keypoint-layout's declaration: inference reads clips alike
        "runtime": runtime,
    }
    if device.type == "cpu" and not dist.enabled:  # auto threads: timed on the first real steps (engine/threads.py)
        observer = tune_during_training(runtime["threads"], observer)
    trainer = Trainer(settings, model, train_loader, val_loader, device, paths, dist, observer, amp, extras)
    if resume is not None:
        trainer.load_state_dict(state, resume.path)
        trainer.progress.totals = totals_to_resume(trainer.progress.totals, dist)
    if dist.is_main:
        for names, folder in keep_earlier_run(paths, settings.model, resume.path if resume else None):
            observer.note(f"kept the earlier run's {', '.join(names)}: moved to {folder}")
        write_json(paths.settings_json, {"slr_version": __version__, "settings": settings.model_dump(mode="json"),
                                         "runtime": runtime, "files": files_record(paths)})
        observer.note(_run_header(settings, device, choice.reason, data, runtime, amp, total_params, trainable))
        for text in world_notes:
            observer.note(text)
        if resume is not None:
            at = f" step {trainer.progress.step}" if trainer.progress.step else ""
            observer.note(f"resuming {resume.path} after epoch {trainer.progress.epoch}{at}")
    progress = trainer.fit()
    return TrainOutcome(paths, progress.best_metric, progress.best_epoch, progress.epoch, progress.history,
                        is_main=dist.is_main, model=ckpt.unwrap_model(model))


def _fix_mmap_threshold(settings: TrainSettings, observer: TrainingObserver) -> int:
    """The allocator's mmap threshold for this process, before the first step (slr/engine/memory_release.py);
    returns what was set (0: glibc's own rule), for settings.json."""
    refused = fix_mmap_threshold(settings.malloc_mmap_mib)
    if refused is not None:
        observer.notice(f"{setting('malloc_mmap_mib', settings.malloc_mmap_mib)} not applied: {refused}")
        return 0
    return settings.malloc_mmap_mib


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


def _nothing_to_do(settings: TrainSettings, state: Mapping[str, Any], stale: int, path: Path) -> Optional[str]:
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


def _run_header(settings, device, reason, data, runtime, amp, total_params, trainable) -> str:
    accumulation = settings.gradient_accumulation_steps
    parts = [
        f"{model_spec(settings.model).class_name}: {total_params:,} parameters ({trainable:,} trainable) "
        f"on {device} ({reason})",
        data.summary,
        f"batch {settings.batch_size}"
        + (f" per process x {runtime['world_size']} processes" if runtime["world_size"] > 1 else "")
        + (f" x {accumulation} accumulated" if accumulation > 1 else ""),
        f"{runtime['num_workers']} workers",
        f"{runtime['threads']['threads']} CPU thread(s) ({runtime['threads']['reason']})",
    ]
    if amp is not None:
        parts.append(f"AMP {str(amp).removeprefix('torch.')}")
    return "; ".join(parts)


def run_paths(settings: TrainSettings) -> RunPaths:
    out = Path(settings.output_dir)
    name = model_spec(settings.model).class_name
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
    if settings.amp and hardware.amp_dtype(device, settings.amp_dtype) is None:
        notes.append(f"{setting('amp')}: mixed precision is for CUDA GPUs and CPUs with native bfloat16 "
                     f"(AVX512-BF16, AMX); training in float32 on {device.type}")
    if settings.compile_model and device.type != "cuda":
        notes.append(f"{setting('compile_model')}: skipped on {device.type} (compilation pays off on CUDA GPUs)")
    if settings.enable_parallel and gpus < 2 and not dist.enabled:
        notes.append(f"{setting('enable_parallel')}: {gpus} GPU(s) visible; DataParallel needs at least 2, "
                     "training on one device")
    if settings.enable_parallel and settings.compile_model and gpus >= 2 and not dist.enabled:
        notes.append(f"{setting('compile_model')}: not combined with DataParallel (no gain, known failures); "
                     "not compiling")
    if settings.pin_memory and device.type != "cuda":
        notes.append(f"{setting('pin_memory')}: only helps copies to a CUDA GPU; off on {device.type}")
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


def resolve_auto_options(settings: TrainSettings, device, data, dist: DistInfo, resume_state, amp,
                         observer: TrainingObserver):
    """Replace --auto-batch-size / --auto-workers by the values picked, and record why."""
    runtime: dict[str, Any] = {"device": str(device), "world_size": dist.world_size}
    runtime["threads"] = apply_threads(settings.threads).as_dict()  # slr/engine/threads.py
    updates: dict[str, Any] = {}
    if settings.auto_batch_size:
        stored = (resume_state or {}).get("runtime", {}).get("batch_size")
        if stored:  # a resumed run keeps the batch it started with, so that it continues exactly
            updates["batch_size"] = stored["value"]
            if "accumulation" in stored:
                updates["gradient_accumulation_steps"] = stored["accumulation"]
            runtime["batch_size"] = stored
        else:
            from slr.engine.autobatch_probe import probe_step

            given = settings.batch_size if "batch_size" in settings.model_fields_set else None
            pick = choose_batch_size(
                given, settings.gradient_accumulation_steps, device,
                step=probe_step(settings, data, device, amp) if device.type == "cuda" else None,
                bytes_per_sample=lambda: hardware.activation_bytes_per_sample(
                    settings.model, settings, data.input_dim, data.longest_clip),
                frames=data.longest_clip,
            )
            size, reason = min_across_ranks(pick.batch_size, dist, device), pick.reason
            accumulation = pick.accumulation
            if size != pick.batch_size:
                reason += f"; {size}, the smallest any of the {dist.world_size} ranks picked"
                if given is not None:
                    accumulation = settings.gradient_accumulation_steps * max(1, given // size)
            updates["batch_size"] = size
            updates["gradient_accumulation_steps"] = accumulation
            runtime["batch_size"] = {"value": size, "accumulation": accumulation, "method": pick.method,
                                     "reason": reason}
            observer.notice(f"{setting('auto_batch_size')}: batch {size}"
                            + (f" x {accumulation} accumulated" if accumulation > 1 else "")
                            + f" ({pick.method}: {reason})")
    workers, reason = settings.num_workers, "num_workers"
    if settings.auto_workers or settings.num_workers == 0:
        workers, reason = hardware.auto_workers(device.type)
        if dist.enabled:
            workers = max(0, min(workers, hardware.usable_cpus() // dist.local_world_size - 1))  # this machine's
    runtime["num_workers"] = workers
    runtime["num_workers_reason"] = reason
    if updates:
        settings = settings.model_copy(update=updates)
    return settings, runtime


def resume(request: ResumeSettings, observer: Optional[TrainingObserver] = None) -> TrainOutcome:
    """Continue the run of ``request.checkpoint``: ``train`` with the plan of ``plan_resume``."""
    plan = plan_resume(request)
    return train(plan.settings, observer, resume=plan)
