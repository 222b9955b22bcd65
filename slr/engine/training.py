"""Training, read top to bottom: the run's loop (``Trainer``: epochs, validation, the log row,
checkpoint calls, stops), the step it repeats (``TrainStep``), and what the step is made of (the
loss, the learning-rate schedules, the weight average, the epoch's running totals).

``TrainStep`` owns everything one optimizer step needs and nothing of a run: it exists without a
run folder, so the --auto-batch-size probe and ``slr smoke --frames`` build it alone. ``Trainer``
adds the run: data loaders, the observer, checkpoints (slr/engine/checkpoint.py), the log and the
run folder's files (slr/engine/run_folder.py). Everything a resumed run needs to continue as if
it had never stopped is in ``Trainer.state_dict()``: the model, the step's optimizer, loss scale,
schedule counters and weight average, the early-stopping counters, the epoch and the step inside
it, the epoch's running totals, the history and the random streams.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from slr.data.clip_limits import batch_value_note
from slr.engine import checkpoint as ckpt
from slr.engine.checkpoint import Progress, capture_rng, check_resume_values, make_checkpoint, restore_rng
from slr.engine.distributed import DistInfo, all_reduce_sum, any_rank
from slr.engine.hardware import DeviceMemory, memory_snapshot, release_freed_memory
from slr.engine.init_from import drop_gradients, frozen_parameters, hold_frozen_statistics
from slr.engine.observer import TrainingObserver
from slr.engine.resume import every_ranks_rng, rng_for_rank, totals_to_save
from slr.engine.run_folder import RunPaths, open_tensorboard_log, write_log_csv
from slr.engine.stop_signals import StopSignals
from slr.errors import CheckpointError, TrainingStopped, setting
from slr.models.late_dropout import switch_late_dropout
from slr.settings import TrainSettings


#: Micro-batches between reads of the loss and agreements between ranks, on a GPU or under DDP.
SYNC_WINDOW = 20


@dataclass
class RunProgress:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs fully done
    step: int = 0  # optimizer windows' micro-batches done inside the current epoch
    totals: EpochTotals = field(default_factory=lambda: EpochTotals())  # of the current epoch so far
    epoch_seconds: float = 0.0  # time already spent in the current epoch before an interruption
    best_metric: float = -math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP arrived; a resumable checkpoint has been written."""

    def __init__(self, path: Path, stop: Optional[StopSignals] = None):
        self.path = path
        self.exit_status = stop.exit_status if stop else 130
        self.description = stop.description if stop else "interrupt"


class Trainer:
    """The loop around a ``TrainStep``: epochs, validation, the log row, checkpoints, stops."""

    def __init__(
        self,
        settings: TrainSettings,
        model: torch.nn.Module,
        train_loader,
        val_loader,
        device: torch.device,
        paths: RunPaths,
        dist: DistInfo,
        view: TrainingObserver,
        amp_dtype: Optional[torch.dtype],
        checkpoint_extras: dict[str, Any],
        memory: Optional[DeviceMemory] = None,
    ):
        self.s = settings
        self.model = model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = device
        self.paths = paths
        self.dist = dist
        self.view = view
        self.extras = checkpoint_extras
        self.memory = memory  # where the GPU memory figures come from (default: the device's own)
        self.step = TrainStep(settings, model, device, amp_dtype, self._steps_per_epoch(), dist)
        self.progress = RunProgress()
        self.tensorboard = open_tensorboard_log(settings, paths.output_dir, dist.is_main)  # rank 0 writes
        self._pending_rng: Optional[dict[str, Any]] = None
        self._stop = StopSignals()
        # How often (in micro-batches, at the next optimizer step) the loss is read and the ranks agree
        # on stopping: .item() syncs a GPU, and under DDP each agreement is a collective.
        self.sync_every = 1 if device.type == "cpu" and not dist.enabled else SYNC_WINDOW

    def _steps_per_epoch(self) -> int:
        if self.train_loader is None:  # a trainer built only to test its messages has no epochs
            return 1
        batches = math.ceil(len(self.train_loader.sampler) / self.s.batch_size)
        return optimizer_steps_per_epoch(batches, self.s.gradient_accumulation_steps)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.progress
        raw, ema = ckpt.unwrap_model(self.model), self.step.ema
        model_state = ckpt.clean_state_dict(raw.state_dict() if ema is None else ema.shadow)
        ema_state = ema.extra_state(raw) if ema is not None else None
        if ema_state is not None:
            ema_state["training_weights"] = ckpt.clean_state_dict(ema_state["training_weights"])
        return make_checkpoint(
            **self.extras,
            settings=self.s.model_dump(mode="json"),
            model_state=model_state,
            ema_state=ema_state,
            optimizer_state=self.step.optimizer.state_dict(),
            scheduler_state=self.step.schedule_state(),
            scaler_state=self.step.scaler.state_dict(),
            epoch=p.epoch,
            step_in_epoch=p.step,
            epoch_totals=p.totals.as_list(),
            epoch_seconds=p.epoch_seconds,
            best_metric=p.best_metric,
            best_epoch=p.best_epoch,
            early_stop={"stale_epochs": p.stale_epochs, "patience": self.s.early_stop},
            history=list(p.history),
            rng=capture_rng(),
        )

    def load_state_dict(self, state: dict[str, Any], path: Path, derived: Optional[Progress] = None) -> None:
        """Continue from ``state``; ``derived``: what its history says (slr/engine/resume.py's
        check_resume has checked it; derived here when not given)."""
        ckpt.load_model_state(self.model, state, path, settings=self.s, input_dim=self.extras["input_dim"])
        self.step.load_state(state, path)
        derived = derived or check_resume_values(state, path)  # the best epoch and stale epochs: from the history
        self._check_step_in_epoch(state, path)
        self.progress = RunProgress(
            epoch=state["epoch"],
            step=state["step_in_epoch"],
            # summed over every rank when saved: rank 0 alone carries them on (slr/engine/resume.py)
            totals=EpochTotals(*state["epoch_totals"]) if self.dist.is_main else EpochTotals(),
            epoch_seconds=state["epoch_seconds"],
            best_metric=derived.best_metric,
            best_epoch=derived.best_epoch,
            stale_epochs=derived.stale_epochs,
            history=list(state["history"]),
        )
        self._pending_rng = rng_for_rank(state, self.dist)  # this rank's own streams (slr/engine/resume.py)

    def _check_step_in_epoch(self, state: dict[str, Any], path: Path) -> None:
        """A step inside the epoch must lie inside it: one beyond would skip the epoch unseen."""
        if self.train_loader is None or not state["step_in_epoch"]:
            return
        sampler = self.train_loader.sampler
        batches = math.ceil((len(sampler) + sampler.skip) / self.s.batch_size)
        if state["step_in_epoch"] >= batches:
            raise CheckpointError(
                f"damaged checkpoint: 'step_in_epoch' is {state['step_in_epoch']} but an epoch of this run has "
                f"{batches} steps", path)

    def save(self, path: Path) -> None:
        ranks_rng = every_ranks_rng(capture_rng(), self.dist)  # a collective: every rank saves together
        if self.dist.is_main:
            ckpt.save_checkpoint({**self.state_dict(), **ranks_rng}, path)

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> RunProgress:
        s, p = self.s, self.progress
        self._stop = StopSignals(self.view.note).install()  # Ctrl-C, SIGTERM, SIGHUP: save, then stop
        self.view.start(s.epochs, p.epoch)
        try:
            while p.epoch < s.epochs:
                if s.early_stop and p.stale_epochs >= s.early_stop:
                    break
                row = self._run_epoch(p.epoch + 1)
                if row.get("stopped_early"):
                    break
        finally:
            self.tensorboard.close()
            self.view.close()
            self._stop.restore()
        return p

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        s, p = self.s, self.progress
        if self._pending_rng is not None:  # resume: continue the random streams exactly where they were
            restore_rng(self._pending_rng)
            self._pending_rng = None
        started = time.perf_counter() - p.epoch_seconds
        totals = self.train_epoch(epoch)
        train_time = time.perf_counter() - started
        val_started = time.perf_counter()
        val = self.validate()
        if s.release_memory:
            release_freed_memory()  # slr/engine/hardware.py: before the RSS is logged
        epoch_time = time.perf_counter() - started
        snapshot = memory_snapshot(self.device, self.memory)
        improved = val.gloss_acc > p.best_metric
        if improved:
            p.best_metric, p.best_epoch, p.stale_epochs = val.gloss_acc, epoch, 0
        else:
            p.stale_epochs += 1
        lr = self.step.lr
        row = {
            "epoch": epoch,
            "train_loss": totals.loss,
            "val_loss": val.loss,
            "val_gloss_acc": val.gloss_acc,
            "val_cat_acc": val.cat_acc,
            "lr": lr,
            "epoch_time": round(epoch_time, 3),
            **snapshot.as_row(),
            "train_gloss_acc": totals.gloss_acc,
            "train_cat_acc": totals.cat_acc,
            "samples_per_s": round(totals.samples / max(train_time, 1e-9), 1),
            "val_time": round(time.perf_counter() - val_started, 3),
        }
        p.history.append(row)
        self.step.end_epoch(val.gloss_acc)
        p.epoch, p.step, p.totals, p.epoch_seconds = epoch, 0, EpochTotals(), 0.0
        self.save(self.paths.last)
        if improved and self.dist.is_main:
            ckpt.copy_checkpoint(self.paths.last, self.paths.best)  # the same state: copied, not saved again
        (interrupted,) = self._agree(self._stop_asked())  # asked during the last window or validation
        if self.dist.is_main:
            write_log_csv(self.paths.log_csv, p.history)
            self.tensorboard.write(row)
        self.view.epoch_end({**row, "best": p.best_metric}, s.epochs, improved, snapshot)
        if interrupted:  # the epoch is complete and saved: a resume starts the next one
            raise Interrupted(self.paths.last, self._stop)
        stop = bool(s.early_stop and p.stale_epochs >= s.early_stop)
        if stop:
            self.view.note(
                f"early stop: no better val_gloss_acc for {p.stale_epochs} epoch{'s' if p.stale_epochs > 1 else ''} "
                f"(best {p.best_metric:.4f} at epoch {p.best_epoch})"
            )
        return {**row, "stopped_early": stop}

    def train_epoch(self, epoch: int):
        s, p = self.s, self.progress
        self.model.train()
        # from the epoch's number alone, so that a resumed run has it where a run straight through has
        switch_late_dropout(self.model, bool(s.late_dropout) and epoch >= s.late_dropout_epoch)
        self.step.frozen = frozen_parameters(self.model, epoch, s.freeze_encoder_epochs)
        hold_frozen_statistics(self.model, epoch, s.freeze_encoder_epochs)
        sampler = self.train_loader.sampler
        sampler.set_epoch(epoch, skip=p.step * s.batch_size)
        dataset = self.train_loader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        n_batches = math.ceil((len(sampler) + sampler.skip) / s.batch_size)
        k = s.gradient_accumulation_steps
        totals = RunningTotals(self.device, p.totals)
        next_check = p.step + self.sync_every
        self.view.epoch_start(epoch, s.epochs, n_batches, p.step)
        epoch_started = time.perf_counter()
        samples_seen = 0
        for i, batch in enumerate(self.train_loader, start=p.step):
            batch = batch.to(self.device, non_blocking=True)
            window_start = (i // k) * k
            window = min(k, n_batches - window_start)  # the last window of an epoch may be shorter
            last_micro = i + 1 == window_start + window
            loss, gloss_logits, cat_logits = self.step.forward_backward(batch, window, sync_gradients=last_micro)
            totals.add(loss, gloss_logits, cat_logits, batch.gloss, batch.cat)
            samples_seen += batch.gloss.shape[0]
            if not last_micro:
                continue
            self.step.optimizer_step()
            done = i + 1
            at_end = done == n_batches
            if done < next_check and not at_end and not (self._stop_asked() and not self.dist.enabled):
                continue  # (one process asks no other: it stops at the next step)
            next_check = done + self.sync_every
            # One agreement per window: a stop asked for in the epoch's last window waits for the
            # epoch's end (_run_epoch), where the finished epoch is saved first.
            non_finite, stop = self._agree(not totals.loss_is_finite(), self._stop_asked() and not at_end)
            if non_finite:
                self._stop_non_finite(epoch, done, batch)
            elapsed = time.perf_counter() - epoch_started
            self.view.step(done, samples_seen / max(elapsed, 1e-9), totals.mean_loss())
            if self.view.wants_memory:
                self.view.memory(memory_snapshot(self.device, self.memory))
            if stop:
                p.step, p.totals = done, EpochTotals(*totals_to_save(totals.values, self.dist))  # every rank's clips
                p.epoch_seconds = time.perf_counter() - epoch_started
                self.save(self.paths.last)
                raise Interrupted(self.paths.last, self._stop)
        return totals.summary(self.dist)

    @torch.no_grad()
    def validate(self):
        # Ranks hold different numbers of validation clips; DDP's forward may talk to the other
        # ranks (buffer broadcasts), so validation runs the module inside it.
        model = self.model.module if isinstance(self.model, torch.nn.parallel.DistributedDataParallel) else self.model
        model.eval()
        totals = RunningTotals(self.device)
        with averaged_weights(self.step.ema, ckpt.unwrap_model(model)):
            self._validate_batches(model, totals)
        return totals.summary(self.dist)

    def _validate_batches(self, model, totals) -> None:
        for batch in self.val_loader:
            batch = batch.to(self.device, non_blocking=True)
            with self.step.autocast():
                gloss_logits, cat_logits = model(batch.x, batch.mask)
                loss = self.step.loss(gloss_logits, cat_logits, batch.gloss, batch.cat)
            totals.add(loss.float(), gloss_logits, cat_logits, batch.gloss, batch.cat)

    # -- stops ------------------------------------------------------------------------------
    def _stop_non_finite(self, epoch: int, step: int, batch=None) -> None:
        s, p = self.s, self.progress
        kept = f"{self.paths.last.name} (epoch {p.epoch})" if p.epoch else "no checkpoint yet"
        best = f"{self.paths.best.name} (epoch {p.best_epoch})" if p.best_epoch else "no best checkpoint yet"
        stopped = (f"the training loss became non-finite in epoch {epoch} by step {step}; training stopped and "
                   f"nothing was overwritten: {kept}, {best}. ")
        from_data = batch_value_note(batch.x, self._clip_names(batch)) if batch is not None else None
        if from_data is not None:  # the learning rate is not to blame: say what is
            raise TrainingStopped(stopped + from_data[0].upper() + from_data[1:] + ".")
        raise TrainingStopped(
            stopped + f"Try a lower {setting('lr')}, {setting('grad_clip', 1.0)}"
            + (f", or {setting('amp', False)}" if self.step.amp_dtype is not None else "")
            + (f" (and check {setting('alpha', f'{s.alpha:g}')} / {setting('beta', f'{s.beta:g}')})"
               if max(s.alpha, s.beta) > 100 else "")
            + "."
        )

    def _clip_names(self, batch) -> list[str]:
        names = getattr(self.train_loader.dataset, "names", None) if self.train_loader is not None else None
        if not names:
            return []
        return [names[int(i)] for i in batch.index.tolist() if 0 <= int(i) < len(names)]

    def _stop_asked(self) -> bool:
        return self._stop.requested is not None

    def _agree(self, *flags: bool) -> tuple[bool, ...]:
        """Decisions that end the run are taken by all ranks at once (each flag: true on any rank), in
        one collective: a rank that stopped alone would leave the others waiting in the next one."""
        return any_rank(flags, self.dist, self.device)  # the flags themselves in one process



# -- the step ---------------------------------------------------------------------------------------


class TrainStep:
    """One training step, and nothing of a run: the model, AdamW, the loss scaler, autocast, the
    loss, clipping, the weight average and the learning rate. It needs no run folder, data loader or
    observer, so the --auto-batch-size probe and ``slr smoke --frames`` build it alone, and the
    Trainer builds its loop around one.

    The learning rate of the closed-form schedules (``cosine`` per epoch, ``warmup_cosine`` per
    optimizer step) is computed from the step's counters, as nanoGPT's ``get_lr(it)``: a resume
    restores two numbers, never a scheduler's internals, and flags given on resume (--lr,
    --epochs) take effect on the spot. ``plateau`` depends on the metrics seen, so it keeps
    torch's ReduceLROnPlateau and its state.
    """

    def __init__(self, settings: TrainSettings, model: torch.nn.Module, device: torch.device,
                 amp_dtype: Optional[torch.dtype], steps_per_epoch: int = 1, dist: DistInfo = DistInfo()):
        self.s = settings
        self.model = model
        self.device = device
        self.amp_dtype = amp_dtype
        self.dist = dist
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay,
                                           fused=fused_adamw(device))
        # float16 needs loss scaling; bfloat16 has float32's range and does not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.ema = WeightAverage(ckpt.unwrap_model(model), settings.ema_decay) if settings.ema_decay else None
        self.plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=0.5, patience=settings.scheduler_patience)
            if settings.scheduler == "plateau" else None)  # the original tracked val gloss accuracy: higher is better
        self.lr_factor = lr_schedule(settings, steps_per_epoch)
        self.optimizer_steps = 0  # steps taken (a float16 step skipped for inf gradients does not count)
        self.epochs_done = 0
        self.frozen: list[torch.nn.Parameter] = []  # --freeze-encoder-epochs (slr/engine/init_from.py)
        self._set_lr()

    def forward_backward(self, batch, window: int = 1, sync_gradients: bool = True):
        """Forward and backward of one micro-batch, its loss divided by its window's size; the
        optimizer steps separately (``optimizer_step``)."""
        sync = contextlib.nullcontext()
        if self.dist.enabled and not sync_gradients and hasattr(self.model, "no_sync"):
            sync = self.model.no_sync()  # gradients are all-reduced once per window, not per micro-step
        with sync:
            with self.autocast():
                gloss_logits, cat_logits = self.model(batch.x, batch.mask)
                loss = self.loss(gloss_logits, cat_logits, batch.gloss, batch.cat, self.s.label_smoothing)
            self.scaler.scale(loss / window).backward()
        return loss, gloss_logits, cat_logits

    def loss(self, gloss_logits, cat_logits, gloss, cat, label_smoothing: float = 0.0) -> torch.Tensor:
        return gloss_and_category_loss(gloss_logits, cat_logits, gloss, cat, self.s.alpha, self.s.beta,
                                       label_smoothing)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def optimizer_step(self) -> bool:
        """Clip, step, update the loss scale, the average and the learning rate; False when float16
        gradients held inf and the step was skipped."""
        drop_gradients(self.frozen)  # the encoder's, in the first --freeze-encoder-epochs
        if self.s.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], self.s.grad_clip
            )
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if scale is not None and self.scaler.get_scale() < scale:  # inf gradients: no step was taken
            return False
        self.optimizer_steps += 1
        self._set_lr()
        if self.ema is not None:
            self.ema.update(ckpt.unwrap_model(self.model))
        return True

    def end_epoch(self, val_gloss_acc: float) -> None:
        self.epochs_done += 1
        if self.plateau is not None:
            self.plateau.step(val_gloss_acc)
        self._set_lr()

    def _set_lr(self) -> None:
        if self.lr_factor is None:  # plateau lowers the optimizer's own rate; none keeps it
            return
        for group in self.optimizer.param_groups:
            group["lr"] = self.s.lr * self.lr_factor(self.optimizer_steps, self.epochs_done)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def schedule_state(self) -> Optional[dict[str, Any]]:
        if self.plateau is not None:
            return self.plateau.state_dict()
        if self.lr_factor is not None:
            return {"optimizer_steps": self.optimizer_steps}
        return None

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        """The optimizer, scaler, schedule and average of a checkpoint; flags given on resume win over
        what the optimizer state carries (lr, weight decay, patience)."""
        stored = state.get("settings", {})
        if stored.get("scheduler", self.s.scheduler) != self.s.scheduler:
            raise CheckpointError(
                f"trained with {setting('scheduler', stored.get('scheduler'))}; a resumed run keeps its schedule "
                f"(got {setting('scheduler', self.s.scheduler)}). Start a new run to use another one",
                path,
            )
        if self.ema is not None:
            self.ema.restore(ckpt.unwrap_model(self.model), state.get("ema_state"))
        schedule = state.get("scheduler_state") or {}
        try:
            self.optimizer.load_state_dict(state["optimizer_state"])
            if self.plateau is not None and schedule:
                self.plateau.load_state_dict(schedule)
            if state.get("scaler_state"):
                self.scaler.load_state_dict(state["scaler_state"])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"optimizer or scheduler state does not fit this run: {exc}", path) from None
        # checkpoints of slr before the closed form hold torch's LambdaLR state: its step count
        steps = schedule.get("optimizer_steps", schedule.get("last_epoch", 0)) if self.lr_factor else 0
        if not (isinstance(steps, int) and steps >= 0):
            raise CheckpointError(f"damaged checkpoint: the schedule's step count is {steps!r}", path)
        self.optimizer_steps, self.epochs_done = steps, state["epoch"]
        new_lr = stored.get("lr", self.s.lr) != self.s.lr
        for group in self.optimizer.param_groups:
            group["weight_decay"] = self.s.weight_decay
            if new_lr or self.s.scheduler is None:
                group["lr"] = self.s.lr
        if self.plateau is not None:
            self.plateau.patience = self.s.scheduler_patience
        self._set_lr()


# -- the loss: alpha * CE(gloss) + beta * CE(category) ----------------------------------------------


# Label smoothing is applied to the training loss only; validation reports the plain cross-entropy,
# so val_loss stays comparable between runs with and without it.


def fused_adamw(device: torch.device) -> Optional[bool]:
    """AdamW's one-kernel update where torch has it (CPU, CUDA): on this CPU 0.40x the for-loop
    update's time at the guide's model size and 0.21x at slr's (benchmarks/optimizer_step.py,
    docs/results.md); None elsewhere (torch's choice)."""
    return True if device.type in ("cpu", "cuda") else None


def gloss_and_category_loss(
    gloss_logits: torch.Tensor,
    cat_logits: torch.Tensor,
    gloss: torch.Tensor,
    cat: torch.Tensor,
    alpha: float,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    return alpha * F.cross_entropy(gloss_logits.float(), gloss, label_smoothing=label_smoothing) + beta * F.cross_entropy(
        cat_logits.float(), cat, label_smoothing=label_smoothing
    )



# -- learning-rate schedules ------------------------------------------------------------------------


# `warmup_cosine`: a linear warm-up to the full --lr over --warmup-epochs, then a cosine to 0 at the
# end of --epochs, per optimizer step: small data sets give few steps per epoch (234 clips in batches
# of 32 are 8 steps), and a per-epoch warm-up would waste whole epochs. `cosine`: per epoch.


def optimizer_steps_per_epoch(batches_per_epoch: int, accumulation: int) -> int:
    return max(1, math.ceil(batches_per_epoch / max(1, accumulation)))


def warmup_cosine_factor(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr factor at optimizer step `step` (0 before the first step)."""
    total = max(1, total_steps)
    warmup = min(max(0, warmup_steps), total - 1) if total > 1 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def lr_schedule(settings: TrainSettings, steps_per_epoch: int) -> Optional[Callable[[int, int], float]]:
    """``factor(optimizer_steps, epochs_done)`` of --lr for the closed-form schedules; None for
    plateau and none. Both are computed over --epochs, the total: a resumed run that raises it
    follows the longer curve from where it stands."""
    if settings.scheduler == "warmup_cosine":  # stepped per optimizer step
        factor = warmup_cosine_factor(settings.epochs * steps_per_epoch,
                                      round(settings.warmup_epochs * steps_per_epoch))
        return lambda steps, epochs: factor(steps)
    if settings.scheduler == "cosine":
        total = settings.epochs
        return lambda steps, epochs: 0.5 * (1 + math.cos(math.pi * min(epochs, total) / total))
    return None


# -- the weight average (--ema-decay) ---------------------------------------------------------------


# An exponential moving average of the weights (as timm's ModelEmaV2). After every optimizer step the
# average moves towards the training weights by (1 - decay); early on the decay is capped at
# (1 + n) / (10 + n) after n updates, so the average is not dominated by the random initial weights.
# Validation runs on the average, and checkpoints store it as their `model_state` (what evaluate,
# predict and export load); the training weights and the update count travel beside it (`ema_state`)
# so that a resumed run continues both exactly.


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for name, value in model.state_dict().items():
            average = self.shadow[name]
            if average.dtype.is_floating_point:
                average.mul_(d).add_(value.detach().to(average.dtype), alpha=1 - d)
            else:  # counters such as BatchNorm's num_batches_tracked follow the model
                average.copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """The averaged weights in `model` inside the block, the training weights back after it."""
        training = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(training)

    def extra_state(self, model: nn.Module) -> dict[str, Any]:
        """What a checkpoint needs beside the averaged weights to resume exactly."""
        return {"decay": self.decay, "updates": self.updates, "training_weights": dict(model.state_dict())}

    def restore(self, model: nn.Module, extra: Optional[Mapping[str, Any]]) -> None:
        """`model` holds the checkpoint's `model_state`: with `extra`, that is the average; without
        (a checkpoint of a run without averaging), the average starts from those weights."""
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if extra:
            self.updates = int(extra.get("updates", 0))
            model.load_state_dict(extra["training_weights"])


def averaged_weights(average: Optional[WeightAverage], model: nn.Module):
    """A context in which `model` holds the averaged weights (nothing changes without averaging)."""
    return average.applied(model) if average is not None else contextlib.nullcontext()



# -- the epoch's running totals ---------------------------------------------------------------------


# Kept on the device, so that reading them does not sync every step.


class RunningTotals:
    """Sample-weighted loss and correct counts: the epoch mean, not the last batch's value."""

    def __init__(self, device: torch.device, initial: Optional[EpochTotals] = None):
        # in EpochTotals' order: loss_sum, gloss_correct, cat_correct, samples
        self.values = torch.tensor((initial or EpochTotals()).as_list(), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, gloss_logits, cat_logits, gloss, cat) -> None:
        n = gloss.shape[0]
        update = torch.stack(
            [
                loss.detach().double() * n,
                (gloss_logits.argmax(-1) == gloss).sum().double(),
                (cat_logits.argmax(-1) == cat).sum().double(),
                torch.tensor(float(n), dtype=torch.float64, device=gloss.device),
            ]
        )
        self.values += update

    def loss_is_finite(self) -> bool:
        return bool(torch.isfinite(self.values[0]).item())

    def mean_loss(self) -> float:
        return float(self.values[0] / self.values[3])

    def summary(self, info: DistInfo) -> "EpochTotals":
        totals = all_reduce_sum(self.values.clone(), info).tolist()
        return EpochTotals(*totals)


@dataclass(frozen=True)
class EpochTotals:
    """An epoch's sums; checkpoints store them as ``epoch_totals``, a list in this order."""

    loss_sum: float = 0.0
    gloss_correct: float = 0.0
    cat_correct: float = 0.0
    samples: float = 0.0

    def as_list(self) -> list[float]:
        return [self.loss_sum, self.gloss_correct, self.cat_correct, self.samples]

    @property
    def loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def gloss_acc(self) -> float:
        return self.gloss_correct / self.samples if self.samples else 0.0

    @property
    def cat_acc(self) -> float:
        return self.cat_correct / self.samples if self.samples else 0.0
