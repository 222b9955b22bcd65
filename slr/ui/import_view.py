"""What `slr import` shows: a progress bar (sequences done, time left), then what was written: clips,
classes, labels and their group columns, the layout; each failed file on one line of its own.

On a terminal a live rich bar; elsewhere (a log, CI) one plain line per 500 sequences and the last.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from slr.ui.console import err, interactive, out, print_json, print_notice, shown_name, shown_text

if TYPE_CHECKING:
    from slr.importers.run import ImportOutcome, ImportResult

_LOG_EVERY = 500  # sequences between plain progress lines


class ImportProgress:
    """The observer `slr import` hands to the library."""

    def __init__(self, live: Optional[bool] = None, quiet: bool = False):
        self.live = interactive() if live is None else live
        self.quiet = quiet
        self._progress: Optional[Progress] = None
        self._task = None
        self.total = 0
        self.finished = 0
        self._started = time.perf_counter()

    def start(self, sequences: int, skipped: int) -> None:
        self.total, self._started = sequences, time.perf_counter()
        if self.quiet:
            return
        if skipped:
            err().print(Text(f"{skipped} clip(s) already complete: skipped"))
        if sequences and self.live:
            self._progress = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("sequences"), TimeRemainingColumn(), console=err(), transient=True)
            self._task = self._progress.add_task("import", total=sequences)
            self._progress.start()
        elif sequences:
            err().print(Text(f"importing {sequences} sequence(s)"))

    def done(self, outcome: "ImportOutcome") -> None:
        self.finished += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1)
        elif not self.quiet and (self.finished % _LOG_EVERY == 0 or self.finished == self.total):
            elapsed = time.perf_counter() - self._started
            err().print(Text(f"[{self.finished}/{self.total}] {self.finished / elapsed:.0f} sequences/s"), soft_wrap=True)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _problems(result: "ImportResult") -> list[str]:
    return [f"{p}: {why}" for p, why in result.problems] + [o.error or str(o.source) for o in result.failed]


def print_import(result: "ImportResult") -> None:
    for outcome in result.outcomes:
        for warning in outcome.warnings:
            print_notice(warning)
    for notice in result.notices:
        print_notice(notice)
    for problem in _problems(result):  # one line per bad file, naming it
        err().print(Text("failed: ", style="bold red") + Text(shown_text(problem)), soft_wrap=True)
    layout = result.layout
    out().print(Text(f"{result.written} clip(s) written, {result.skipped} already complete, "
                     f"{len(_problems(result))} failed, in {result.seconds:.1f}s with {result.workers} worker(s): "
                     f"{shown_name(result.output_dir)}"), soft_wrap=True)
    out().print(Text(f"format: {result.format}; layout: {layout['name']}, {layout['points']} points x {layout['dims']} "
                     f"= {layout['points'] * layout['dims']} values per frame"
                     + (f" ({shown_name(result.layout_json)})" if result.layout_json else "")), soft_wrap=True)
    if result.classes_csv is not None:
        new = f", {len(result.new_classes)} new" if result.new_classes else ""
        out().print(Text(f"classes: {result.classes}{new} ({shown_name(result.classes_csv)})"), soft_wrap=True)
    if result.labels_csv is not None:
        groups = f"; groups: {', '.join(result.group_columns)}" if result.group_columns else ""
        out().print(Text(f"labels: {result.labelled} row(s) from this import{groups} "
                         f"({shown_name(result.labels_csv)})"), soft_wrap=True)
    if result.unlabelled:
        shown = ", ".join(result.unlabelled[:5]) + (f" and {len(result.unlabelled) - 5} more"
                                                    if len(result.unlabelled) > 5 else "")
        print_notice(f"{len(result.unlabelled)} clip(s) without a sign in the source, not in labels.csv: {shown}")


def import_json(result: "ImportResult") -> dict[str, Any]:
    return {
        "output_dir": str(result.output_dir),
        "format": result.format,
        "layout": {k: result.layout[k] for k in ("name", "dims", "points")},
        "written": result.written,
        "skipped": result.skipped,
        "failed": _problems(result),
        "classes": result.classes,
        "new_classes": result.new_classes,
        "labelled": result.labelled,
        "unlabelled": result.unlabelled,
        "group_columns": result.group_columns,
        "notices": result.notices + [w for o in result.outcomes for w in o.warnings],
    }


def print_import_json(result: "ImportResult") -> None:
    print_json(import_json(result))
