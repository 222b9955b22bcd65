"""How `slr live` shows what it sees: a panel that is redrawn in place on a terminal (the current
answer, its probability, the last confident signs, frames per second and delay), one line per
window in a pipe or a file, or one JSON record per window (`--json-lines`) for other programs;
and with --show the video in an OpenCV window (slr/ui/live_window.py)."""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Optional

import numpy as np
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from slr.ui.console import err, interactive, out, print_notice, shown_name as _n, shown_text
from slr.ui.predict_view import detection_text, window_text

if TYPE_CHECKING:
    from slr.analysis.live import LiveSummary, LiveUpdate

#: Confident signs kept on the panel, most recent last.
HISTORY = 8


class LiveView:
    """The `LiveObserver` the command line hands to `run_live`."""

    def __init__(self, json_lines: bool = False, show: bool = False):
        self.json_lines = json_lines
        self.terminal = interactive() and not json_lines
        self._window = None
        if show:
            from slr.ui.live_window import VideoWindow

            self._window = VideoWindow()
        self._live: Optional[Live] = None
        self._history: deque[str] = deque(maxlen=HISTORY)
        self._last: Optional["LiveUpdate"] = None
        self._source = ""

    def start(self, source: str, window_s: float, stride_s: float, notices: list[str]) -> None:
        for notice in notices:
            print_notice(notice)
        self._source = source
        heading = f"{_n(source)}: windows of {window_s:.2f} s every {stride_s:.2f} s; Ctrl-C stops"
        if self.terminal:
            self._live = Live(self._panel(heading), console=out(), refresh_per_second=8, transient=False)
            self._live.start()
        elif not self.json_lines:
            out().print(Text(shown_text(heading)), soft_wrap=True)
        else:
            err().print(Text(shown_text(heading)), soft_wrap=True)

    def frame(self, rgb: np.ndarray, keypoints: np.ndarray) -> bool:
        return self._window.show(rgb, keypoints) if self._window is not None else True

    def update(self, update: "LiveUpdate") -> None:
        answer = update.answer
        top = answer.glosses[0]
        if answer.confident and (not self._history or not self._history[-1].startswith(f"{_n(top[1])} ")):
            self._history.append(f"{_n(top[1])} ({100 * top[2]:.0f}%)")
        if self._window is not None:
            self._window.caption = f"{top[1]} {100 * top[2]:.0f}%" + ("" if answer.confident else " ?")
        self._last = update
        if self.json_lines:
            out().out(json.dumps(update.to_dict(), ensure_ascii=False, allow_nan=False), highlight=False)
            out().file.flush()
        elif self._live is not None:
            self._live.update(self._panel())
        else:
            out().print(Text(shown_text(f"{window_text(answer)}  ({update.fps:.1f} fps, delay "
                                        f"{1000 * update.delay_s:.0f} ms)")), soft_wrap=True)

    def _panel(self, heading: Optional[str] = None) -> Panel:
        update = self._last
        if update is None:
            return Panel(Text(shown_text(heading or "waiting for the first window...")), title="slr live")
        answer = update.answer
        top = answer.glosses[0]
        style = "bold green" if answer.confident else "bold yellow"
        now = Text(f"{shown_text(_n(top[1]))}  {100 * top[2]:.1f}%", style=style)
        doubts = answer.sanity.notes(_n(top[1]))
        table = Table.grid(padding=(0, 2))
        for _, name, prob in answer.glosses[1:]:
            table.add_row(Text(shown_text(_n(name))), f"{100 * prob:.1f}%")
        found = detection_text(answer.sanity.detection)
        facts = (f"{update.fps:.1f} frames/s, answer {1000 * update.delay_s:.0f} ms after the window's last frame"
                 f"{f', {update.dropped} frames dropped' if update.dropped else ''}")
        from slr.errors import spell_settings

        parts = [now, table] + [Text(shown_text(spell_settings(d)), style="yellow") for d in doubts]
        parts += [Text(found, style="dim"), Text(facts, style="dim"),
                  Text("signs: " + " · ".join(self._history) if self._history else "signs: -")]
        title = f"slr live: {shown_text(_n(self._source))} [{answer.span.start_s:.1f}-{answer.span.end_s:.1f} s]"
        return Panel(Group(*parts), title=title, title_align="left")

    def close(self) -> None:
        """Stop the panel and close the window (also after an error: the terminal gets its cursor back)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._window is not None:
            self._window.close()
            self._window = None

    def finish(self, summary: "LiveSummary") -> None:
        self.close()
        medians = summary.to_dict()["median_ms"]
        line = (f"stopped ({summary.stopped}): {summary.frames} frames in {summary.seconds:.1f} s "
                f"({summary.fps:.1f} frames/s), {summary.windows} windows; median ms per frame: decode "
                f"{medians['decode']}, keypoints {medians['keypoints']}; per window: model {medians['model']}, "
                f"delay {medians['delay']}" + (f"; {summary.dropped} frames dropped" if summary.dropped else ""))
        (err() if self.json_lines else out()).print(Text(shown_text(line)), soft_wrap=True)
