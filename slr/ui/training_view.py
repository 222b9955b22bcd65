"""What a training run shows: progress bars, a table after each epoch, and a memory panel.

On a terminal: a live display of an epoch bar and a batch bar (samples/s, loss) above a memory
panel. Elsewhere (a log file, CI): one plain line per event.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from slr.errors import spell_settings
from slr.ui.console import interactive, out, print_notice, shown_text

MIB = 2**20


def memory_text(snapshot) -> str:
    if snapshot.device_kind == "cpu":
        return f"process RSS {snapshot.rss / MIB:,.0f} MiB"
    peak = f" / peak {snapshot.peak / MIB:,.0f}" if snapshot.peak else ""
    return (
        f"{snapshot.device_kind.upper()} allocated {snapshot.allocated / MIB:,.0f} MiB / reserved "
        f"{snapshot.reserved / MIB:,.0f}{peak} MiB   RSS {snapshot.rss / MIB:,.0f} MiB"
    )


class TrainingView:
    """The command line's training observer (slr.engine.observer.TrainingObserver): bars on a
    terminal, plain lines elsewhere; ``enabled=False`` prints nothing."""

    def __init__(self, enabled: bool = True, live: Optional[bool] = None):
        self.enabled = enabled
        self.live = interactive() if live is None else live
        self.console = out()
        self._live: Optional[Live] = None
        self._progress: Optional[Progress] = None
        self._memory = Panel("measuring...", title="memory", title_align="left")
        self._memory_shown_at = 0.0
        self._epoch_task = self._batch_task = None
        self._last_step_time = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, total_epochs: int, done_epochs: int) -> None:
        if not (self.enabled and self.live):
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._epoch_task = self._progress.add_task("epochs", total=total_epochs, completed=done_epochs, info="")
        self._live = Live(Group(self._progress, self._memory), console=self.console, refresh_per_second=4)
        self._live.start()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- events -----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(shown_text(spell_settings(text)), markup=False, highlight=False)  # names escaped

    def notice(self, text: str) -> None:
        if self.enabled:
            print_notice(text)

    def epoch_start(self, epoch: int, total_epochs: int, steps: int, done_steps: int) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            if self._batch_task is not None:
                self._progress.remove_task(self._batch_task)
            self._batch_task = self._progress.add_task(
                f"epoch {epoch}/{total_epochs}", total=steps, completed=done_steps, info=""
            )

    def step(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None:
        if self._progress is None or self._batch_task is None:
            return
        loss_text = f"loss {loss:.4f}" if loss is not None else ""
        self._progress.update(
            self._batch_task, completed=done_steps, info=f"{samples_per_s:,.0f} samples/s {loss_text}"
        )

    @property
    def wants_memory(self) -> bool:
        """True when the live memory panel is due a refresh (about once a second)."""
        return self._live is not None and time.perf_counter() - self._memory_shown_at > 1.0

    def memory(self, snapshot) -> None:
        if self._live is not None:
            self._memory_shown_at = time.perf_counter()
            self._memory = Panel(memory_text(snapshot), title="memory", title_align="left")
            self._live.update(Group(self._progress, self._memory))

    def epoch_end(self, row: Mapping[str, Any], total_epochs: int, improved: bool, snapshot) -> None:
        if not self.enabled:
            return
        mark = " *best*" if improved else ""
        if self._progress is None:
            self.console.print(
                f"epoch {row['epoch']}/{total_epochs}  train_loss {row['train_loss']:.4f}  "
                f"val_loss {row['val_loss']:.4f}  val_gloss_acc {row['val_gloss_acc']:.4f}  "
                f"val_cat_acc {row['val_cat_acc']:.4f}  lr {row['lr']:.3g}  "
                f"{row['samples_per_s']:,.0f} samples/s  {row['epoch_time']:.1f}s  {memory_text(snapshot)}{mark}",
                markup=False,
                highlight=False,
            )
            return
        self._progress.update(self._epoch_task, completed=row["epoch"], info=f"best val_gloss_acc {row['best']:.4f}")
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        for name in ("epoch", "train_loss", "val_loss", "val_gloss_acc", "val_cat_acc", "lr", "samples/s", "time"):
            table.add_column(name, justify="right")
        table.add_row(
            f"{row['epoch']}/{total_epochs}",
            f"{row['train_loss']:.4f}",
            f"{row['val_loss']:.4f}",
            f"{row['val_gloss_acc']:.4f}" + (" *" if improved else ""),
            f"{row['val_cat_acc']:.4f}",
            f"{row['lr']:.3g}",
            f"{row['samples_per_s']:,.0f}",
            f"{row['epoch_time']:.1f}s",
        )
        self._live.console.print(table)
        self.memory(snapshot)


def show_outcome(view: TrainingView, outcome, curves=None) -> None:
    """The end of a run: the best and last accuracies, and where its files are."""
    last = outcome.history[-1] if outcome.history else None
    if last is not None:
        view.note(
            f"done: best val_gloss_acc {outcome.best_metric:.4f} at epoch {outcome.best_epoch} "
            f"(last epoch: val_gloss_acc {last['val_gloss_acc']:.4f}, val_cat_acc {last['val_cat_acc']:.4f})"
        )
    view.note(f"checkpoints: {outcome.paths.best} (best), {outcome.paths.last} (last); log: {outcome.paths.log_csv}")
    if curves is not None:
        view.note(f"training curves: {curves}")
