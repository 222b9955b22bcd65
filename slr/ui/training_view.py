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

    def __init__(self, enabled: bool = True, live: Optional[bool] = None, log_every_s: float = 30.0):
        self.enabled = enabled
        self.log_every_s = log_every_s  # plain output: a heartbeat line this often inside an epoch (0 = off)
        self._epoch_at: Optional[tuple[int, int, int]] = None  # (epoch, total_epochs, steps)
        self._heartbeat_at = 0.0
        self._table_header_shown = False
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
        self._epoch_at = (epoch, total_epochs, steps)
        self._heartbeat_at = time.perf_counter()
        if self._progress is not None:
            if self._batch_task is not None:
                self._progress.remove_task(self._batch_task)
            self._batch_task = self._progress.add_task(
                f"epoch {epoch}/{total_epochs}", total=steps, completed=done_steps, info=""
            )

    def step(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None:
        if self._progress is None or self._batch_task is None:
            self._heartbeat(done_steps, samples_per_s, loss)
            return
        loss_text = f"loss {loss:.4f}" if loss is not None else ""
        self._progress.update(
            self._batch_task, completed=done_steps, info=f"{samples_per_s:,.0f} samples/s {loss_text}"
        )

    def _heartbeat(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None:
        """Plain output (a log file, a pipe): a line every `log_every_s` seconds inside an epoch, so
        that a log shows a long epoch is alive (under load, minutes passed without a line)."""
        if not self.enabled or self.live or self.log_every_s <= 0 or self._epoch_at is None:
            return
        now = time.perf_counter()
        if now - self._heartbeat_at < self.log_every_s:
            return
        self._heartbeat_at = now
        epoch, total, steps = self._epoch_at
        if done_steps >= steps:
            return  # the epoch's own line follows at once
        loss_text = f"  loss {loss:.4f}" if loss is not None else ""
        self.console.print(
            f"epoch {epoch}/{total}  step {done_steps}/{steps}  {samples_per_s:,.1f} samples/s{loss_text}",
            markup=False,
            highlight=False,
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
        self._live.console.print(self._epoch_table(
            f"{row['epoch']}/{total_epochs}",
            f"{row['train_loss']:.4f}",
            f"{row['val_loss']:.4f}",
            f"{row['val_gloss_acc']:.4f}" + (" *" if improved else ""),
            f"{row['val_cat_acc']:.4f}",
            f"{row['lr']:.3g}",
            f"{row['samples_per_s']:,.0f}",
            f"{row['epoch_time']:.1f}s",
        ))
        self.memory(snapshot)

    #: The epoch table's columns and widths: fixed, so that rows printed one epoch at a time line up
    #: under a header printed once.
    TABLE_COLUMNS = (("epoch", 7), ("train_loss", 10), ("val_loss", 8), ("val_gloss_acc", 15), ("val_cat_acc", 11),
                     ("lr", 8), ("samples/s", 9), ("time", 7))

    def _epoch_table(self, *cells: str) -> Table:
        """One row of the epoch table; its header only the first time (not above every row)."""
        table = Table(show_header=not self._table_header_shown, header_style="bold", box=None, padding=(0, 1))
        for name, width in self.TABLE_COLUMNS:
            table.add_column(name, justify="right", min_width=width)
        table.add_row(*cells)
        self._table_header_shown = True
        return table

def show_outcome(view: TrainingView, outcome, curves=None) -> None:
    """The end of a run: the epoch validation chose (said to be chosen there), the last epoch beside it,
    the test split's accuracy when there is one, and where the files are."""
    for line in outcome_lines(outcome):
        view.note(line)
    view.note(f"checkpoints: {outcome.paths.best} (best), {outcome.paths.last} (last); log: {outcome.paths.log_csv}")
    if curves is not None:
        view.note(f"training curves: {curves}")


def outcome_lines(outcome) -> list[str]:
    """The run's accuracies in words: a best epoch's validation accuracy is never shown alone, since the
    same clips chose it."""
    last = outcome.history[-1] if outcome.history else None
    if last is None:
        return []
    lines = [
        f"done: epoch {outcome.best_epoch} chosen on the validation set (val_gloss_acc {outcome.best_metric:.4f}, "
        f"optimistic: those clips chose it); last epoch {last['epoch']}: val_gloss_acc {last['val_gloss_acc']:.4f}, "
        f"val_cat_acc {last['val_cat_acc']:.4f}"
    ]
    test = getattr(outcome, "test", None)
    if test is not None:
        lines.append(
            f"test: gloss acc {test.gloss_acc:.4f}, cat acc {test.cat_acc:.4f} on {test.clips} clips of "
            f"{test.labels_csv} (used neither to train nor to choose), with epoch {test.epoch}'s checkpoint; "
            f"stored in {test.checkpoint}"
        )
    return lines
