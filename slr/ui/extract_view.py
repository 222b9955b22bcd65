"""What `slr extract` shows: a progress bar (videos done, frames/s, time left), then a table of
detection rates per video with the weak ones flagged, the failures and the labels.

On a terminal a live rich bar; elsewhere (a log, CI) one plain line per finished video.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from slr.errors import spell_settings
from slr.ui.console import err, interactive, out, print_notice

if TYPE_CHECKING:
    from slr.extract.runner import ExtractionResult, VideoOutcome

PARTS = (("pose", "pose"), ("left_hand", "left hand"), ("right_hand", "right hand"), ("face", "face"))


class ExtractProgress:
    """The observer `slr extract` hands to the library."""

    def __init__(self, live: Optional[bool] = None):
        self.live = interactive() if live is None else live
        self._progress: Optional[Progress] = None
        self._task = None
        self.total = 0
        self.done = 0
        self.frames_done = 0
        self._started = time.perf_counter()

    def start(self, videos: int, skipped: int) -> None:
        self.total = videos
        self._started = time.perf_counter()
        if skipped:
            out().print(Text(f"{skipped} clip(s) already complete: skipped"))
        if not videos:
            return
        if self.live:
            self._progress = Progress(
                TextColumn("extracting"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("videos  {task.fields[rate]}"),
                TimeRemainingColumn(),
                console=out(),
                transient=False,
            )
            self._task = self._progress.add_task("extract", total=videos, rate="")
            self._progress.start()
        else:
            out().print(Text(f"extracting {videos} video(s)"))

    def _rate(self) -> str:
        elapsed = time.perf_counter() - self._started
        return f"{self.frames_done / elapsed:.1f} frames/s" if elapsed > 0 else ""

    def frames(self, count: int) -> None:
        self.frames_done += count
        if self._progress is not None:
            self._progress.update(self._task, rate=self._rate())

    def _left(self) -> str:
        if not self.done:
            return "?"
        elapsed = time.perf_counter() - self._started
        seconds = elapsed / self.done * (self.total - self.done)
        return f"{seconds:.0f}s"

    def video_done(self, outcome: "VideoOutcome") -> None:
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, rate=self._rate())
            return
        what = f"{outcome.frames} frames" if outcome.status == "written" else "FAILED"
        out().print(
            Text(f"[{self.done}/{self.total}] {outcome.video.name}: {what}; {self._rate()}, about {self._left()} left"),
            soft_wrap=True,
        )

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _flagged(outcome: "VideoOutcome", flag_below: float) -> Optional[str]:
    if outcome.incomplete:
        return "frames missing"
    rates = outcome.rates
    if not rates:
        return None
    if rates["pose"] < flag_below:
        return "pose rarely found"
    if max(rates["left_hand"], rates["right_hand"]) < flag_below:
        return "hands rarely found"
    return None


def print_extraction(result: "ExtractionResult", flag_below: float) -> None:
    written = result.written
    if written:
        table = Table(title=None, show_edge=interactive())
        table.add_column("video")
        table.add_column("frames", justify="right")
        for _, title in PARTS:
            table.add_column(title, justify="right")
        table.add_column("")
        for outcome in written:
            flag = _flagged(outcome, flag_below)
            table.add_row(
                Text(outcome.video.name),
                str(outcome.frames),
                *[f"{outcome.rates[p]:.0%}" for p, _ in PARTS],
                Text(f"FLAGGED: {flag}" if flag else "", style="yellow"),
            )
        if interactive():
            out().print(table)
        else:  # one line per video that reads on its own in a log
            out().print(Text("detection rates (share of frames in which each part was found):"))
            for outcome in written:
                flag = _flagged(outcome, flag_below)
                rates = "  ".join(f"{title} {outcome.rates[p]:.0%}" for p, title in PARTS)
                line = f"  {outcome.video.name}: {outcome.frames} frames  {rates}" + (f"  FLAGGED: {flag}" if flag else "")
                out().print(Text(line), soft_wrap=True)
        flagged = sum(1 for o in written if _flagged(o, flag_below) and not o.incomplete)
        if flagged:
            print_notice(
                f"{flagged} video(s) flagged: pose or both hands found in under {flag_below:.0%} of frames "
                f"({{{{flag_below}}}}); check them before training"
            )
    for message in result.notices:
        print_notice(message)
    skipped = sum(1 for o in result.outcomes if o.status == "skipped")
    summary = (
        f"{len(written)} clip(s) written, {skipped} already complete, {len(result.failed)} failed, "
        f"in {result.seconds:.1f}s with {result.workers} worker(s): {result.output_dir}"
    )
    out().print(Text(summary), soft_wrap=True)
    if result.labels_csv is not None:
        out().print(Text(f"labels: {result.labels_csv} ({result.labelled} row(s) from this run)"), soft_wrap=True)
    if result.unmatched:
        lines = "\n  ".join(f"{name}: {why}" for name, why in result.unmatched)
        print_notice(f"{len(result.unmatched)} video(s) got no label (fix the name, the classes file, or "
                     f"{{{{name_pattern}}}}):\n  {lines}")
    if result.incomplete:
        lines = "\n  ".join(o.incomplete for o in result.incomplete)
        err().print(Text(f"error: {len(result.incomplete)} video(s) incomplete:\n  {lines}"), soft_wrap=True)
    problems = [(str(p), why) for p, why in result.problems] + [(str(o.video), o.error or "") for o in result.failed]
    if problems:
        lines = "\n  ".join(why if why.startswith(name) else f"{name}: {why}" for name, why in problems)
        err().print(Text(spell_settings(f"error: {len(problems)} video(s) could not be extracted:\n  {lines}")),
                    soft_wrap=True)
