"""`slr train` and `slr resume`: turn settings into a device, data, a model and a Trainer, then fit.

One path for both: a resume is planned first (``plan_resume``: the checkpoint's stored settings <
config file < flags), then ``train`` runs it like a new run. Nothing here prints: what happens
goes to the observer the caller hands in (the command line's TrainingView), and the outcome is
returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import torch

from slr import __version__
from slr.engine import checkpoint as ckpt
from slr.engine import hardware
from slr.engine.autobatch import activation_bytes_per_sample, choose_batch_size
from slr.engine.distributed import (
    DistInfo,
    init_distributed,
    min_across_ranks,
    peer_failed,
    peer_lost_message,
    shutdown_distributed,
)
from slr.engine.observer import SilentObserver, TrainingObserver
from slr.engine.resume import (  # noqa: F401 - plan_resume and ResumePlan: the public entry points stay here too
    ResumePlan,
    check_resume,
    check_same_layout,
    fit_batch_to_world,
    plan_resume,
)
from slr.engine.run_folder import (
    RunPaths,
    check_writable,
    files_record,
    hold_output_dir,
    keep_earlier_run,
    release_all,
    remove_stale_temporaries,
    run_paths,
    write_json,
)
from slr.engine.threads import apply_threads, tune_during_training
from slr.engine.training import Interrupted, Trainer
from slr.errors import TrainingStopped, setting
from slr.models.registry import model_spec
from slr.settings import ResumeSettings, TrainSettings

if TYPE_CHECKING:
    from slr.engine.test_split import HeldOutAccuracy


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
    test: Optional["HeldOutAccuracy"] = None  # the chosen checkpoint on the test split, when the run has one


def train(
    settings: TrainSettings,
    observer: Optional[TrainingObserver] = None,
    resume: Optional[ResumePlan] = None,
    capabilities: Optional[hardware.Capabilities] = None,
) -> TrainOutcome:
    """Train (or continue ``resume``) with ``settings``; what happens goes to ``observer``.

    ``capabilities``: what the device can do for the GPU-only options (default: what it can); the
    tests hand the CPU a GPU's, so that every GPU-only branch runs on the CPU too.

    Raises ``training.Interrupted`` after a stop request (Ctrl-C) once a resumable checkpoint is
    written, ``TrainingStopped`` for a run that cannot go on, and other ``SlrError`` for bad input.
    """
    choice = hardware.select_device(settings.device)
    dist = init_distributed(choice.kind, settings.dist_timeout_s)
    watcher = observer if (observer is not None and dist.is_main) else SilentObserver()
    try:
        outcome = _run(settings, choice, dist, resume, watcher, capabilities)
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
        release_all()  # the output folder's lock (slr/engine/run_folder.py)
    shutdown_distributed(wait_for_peers=True)
    return outcome


def _run(settings: TrainSettings, choice, dist: DistInfo, resume: Optional[ResumePlan],
         observer: TrainingObserver, caps: Optional[hardware.Capabilities]) -> TrainOutcome:
    from slr.engine.data_setup import with_class_counts

    settings = with_class_counts(settings)  # --num-gloss / --num-cat not given: what the labels say
    device = choice.device
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    caps = caps or hardware.capabilities(device)
    for text in hardware_notices(settings, device, dist, caps):
        observer.notice(text)
    state = resume.state if resume is not None else None
    if resume is not None:
        for name, before, now in resume.changes:
            observer.note(f"{setting(name)}: {now} (the checkpoint has {before})")
        checked = check_resume(resume, settings, dist)  # slr/engine/resume.py: every check, once
        for text in checked.notes:
            observer.note(text)
        if checked.nothing_to_do is not None:
            observer.note(checked.nothing_to_do)
            return TrainOutcome(run_paths(settings), checked.progress.best_metric, checked.progress.best_epoch,
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
    from slr.engine.test_split import prepare_test_split, score_test_split  # scored once, after the last epoch

    test = prepare_test_split(settings, data.val) if dist.is_main else None
    data.notices.extend(test.notices if test is not None else ())
    for text in data.notices if dist.is_main else ():
        observer.notice(text)
    amp = hardware.autocast_dtype(settings.amp, device, settings.amp_dtype, caps)
    settings, runtime = resolve_auto_options(settings, device, data, dist, state, amp, observer, caps)
    runtime["malloc_mmap_mib"] = _fix_mmap_threshold(settings, observer)
    settings, runtime, world_notes = fit_batch_to_world(settings, runtime, state, dist, resume.path if resume else None)
    train_loader, val_loader = data.loaders(settings, dist, device, runtime["num_workers"], pin=caps.pin_memory)

    from slr.models.registry import build_model, count_parameters

    model = build_model(settings.model, settings, data.input_dim, settings.num_gloss, settings.num_cat, training=True)
    if settings.init_from is not None and resume is None:  # weights only; a resumed run has its own
        from slr.engine.init_from import init_from_checkpoint

        for text in init_from_checkpoint(model, settings.init_from, model_name=settings.model, input_dim=data.input_dim,
                                         keypoint_layout=data.keypoint_layout, settings=settings):
            observer.note(text)
    model = model.to(device)
    total_params, trainable = count_parameters(model)
    model = wrap_model(model, settings, device, dist, caps)

    extras = {
        "slr_version": __version__,
        "model": settings.model,
        "model_class": model_spec(settings.model).class_name,
        "input_dim": data.input_dim,
        "num_gloss": settings.num_gloss,
        "num_cat": settings.num_cat,
        "class_names": data.class_names,
        "extraction": data.extraction,  # read by `slr predict` on videos (slr/analysis/predict.py)
        "clip_frames": data.clip_frames,  # predict's "much longer than the training clips" (slr/analysis/windows.py)
        "keypoint_layout": data.keypoint_layout,  # --keypoint-layout's declaration: inference reads clips alike
        "runtime": runtime,
    }
    if device.type == "cpu" and not dist.enabled:  # auto threads: timed on the first real steps (engine/threads.py)
        observer = tune_during_training(runtime["threads"], observer)
    trainer = Trainer(settings, model, train_loader, val_loader, device, paths, dist, observer, amp, extras,
                      memory=caps.memory)
    if resume is not None:
        trainer.load_state_dict(state, resume.path, checked.progress)
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
    scored = score_test_split(test, paths.best, device, settings.batch_size) if test and paths.best.is_file() else None
    return TrainOutcome(paths, progress.best_metric, progress.best_epoch, progress.epoch, progress.history,
                        is_main=dist.is_main, model=ckpt.unwrap_model(model), test=scored)


def _fix_mmap_threshold(settings: TrainSettings, observer: TrainingObserver) -> int:
    """The allocator's mmap threshold for this process, before the first step (slr/engine/hardware.py);
    returns what was set (0: glibc's own rule), for settings.json."""
    refused = hardware.fix_mmap_threshold(settings.malloc_mmap_mib)
    if refused is not None:
        observer.notice(f"{setting('malloc_mmap_mib', settings.malloc_mmap_mib)} not applied: {refused}")
        return 0
    return settings.malloc_mmap_mib


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
        auto = f" (auto: native bfloat16 on this CPU; {setting('amp', False)} for float32)" if settings.amp is None else ""
        parts.append(f"AMP {str(amp).removeprefix('torch.')}{auto}")
    return "; ".join(parts)


def hardware_notices(settings: TrainSettings, device: torch.device, dist: DistInfo,
                     caps: Optional[hardware.Capabilities] = None) -> list[str]:
    """GPU-only options on hardware that cannot use them: one notice each, never an error."""
    notes = []
    caps = caps or hardware.capabilities(device)
    gpus = caps.gpus
    if settings.amp and hardware.amp_dtype(device, settings.amp_dtype, caps) is None:
        notes.append(f"{setting('amp')}: mixed precision is for CUDA GPUs and CPUs with native bfloat16 "
                     f"(AVX512-BF16, AMX); training in float32 on {device.type}")
    if settings.compile_model and not caps.compile:
        notes.append(f"{setting('compile_model')}: skipped on {device.type} (compilation pays off on CUDA GPUs)")
    if settings.enable_parallel and gpus < 2 and not dist.enabled:
        notes.append(f"{setting('enable_parallel')}: {gpus} GPU(s) visible; DataParallel needs at least 2, "
                     "training on one device")
    if settings.enable_parallel and settings.compile_model and gpus >= 2 and not dist.enabled:
        notes.append(f"{setting('compile_model')}: not combined with DataParallel (no gain, known failures); "
                     "not compiling")
    if settings.pin_memory and not caps.pin_memory:
        notes.append(f"{setting('pin_memory')}: only helps copies to a CUDA GPU; off on {device.type}")
    return notes


def wrap_model(model: torch.nn.Module, settings: TrainSettings, device: torch.device, dist: DistInfo,
               caps: Optional[hardware.Capabilities] = None):
    """compile first (before DDP wrapping), then DDP under torchrun or DataParallel on several GPUs."""
    caps = caps or hardware.capabilities(device)
    data_parallel = settings.enable_parallel and caps.gpus > 1 and not dist.enabled
    if settings.compile_model and caps.compile and not data_parallel:
        # Clip lengths vary from batch to batch: dynamic shapes avoid one recompile per length.
        model = torch.compile(model, dynamic=True)
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if data_parallel:
        return torch.nn.DataParallel(model)
    return model


def resolve_auto_options(settings: TrainSettings, device, data, dist: DistInfo, resume_state, amp,
                         observer: TrainingObserver, caps: Optional[hardware.Capabilities] = None):
    """Replace --auto-batch-size / --auto-workers by the values picked, and record why."""
    caps = caps or hardware.capabilities(device)
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
            from slr.engine.autobatch import probe_step

            given = settings.batch_size if "batch_size" in settings.model_fields_set else None
            pick = choose_batch_size(
                given, settings.gradient_accumulation_steps, device,
                step=probe_step(settings, data, device, amp) if caps.probe else None,
                bytes_per_sample=lambda: activation_bytes_per_sample(
                    settings.model, settings, data.input_dim, data.longest_clip),
                frames=data.longest_clip,
                memory=caps.memory,
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


def resume(request: ResumeSettings, observer: Optional[TrainingObserver] = None,
           capabilities: Optional[hardware.Capabilities] = None) -> TrainOutcome:
    """Continue the run of ``request.checkpoint``: ``train`` with the plan of ``plan_resume``."""
    plan = plan_resume(request)
    return train(plan.settings, observer, resume=plan, capabilities=capabilities)
