"""Sliding windows over a long clip or video, and the segments their answers make.

A model of isolated signs gives one answer for whatever it is shown; a sentence needs several.
Window k covers the frames whose time is in `[t0 + k * stride, t0 + k * stride + window)` (t0: the
first frame's time), and is complete once a frame at or after its end arrives. `WindowClock` does
this one frame at a time, so `slr live` (frames as they come) and `slr predict --window` (a whole
clip at once, `window_spans`) cut exactly the same windows. At the end of a clip, a last window
ends with the last frame, so the end is never left out; a clip shorter than one window is one
window.

Consecutive windows with the same confident answer are one segment; uncertain windows, and those
without a hand, make segments of their own (no gloss claimed).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from slr.analysis.sanity import Sanity
from slr.errors import setting

#: Frames closer than this (seconds) to a window's edge count as on it: timestamps are whole milliseconds.
_EDGE_S = 1e-6
#: Clips this much longer than the longest training clip, or shorter than this share of the
#: shortest, get a note: the model has never seen such lengths, and a long one is likely several signs.
MUCH_LONGER = 2.0
MUCH_SHORTER = 0.5


@dataclass(frozen=True)
class Span:
    """One window: frames `start` to `end - 1`, covering `start_s` to `end_s` seconds of the input."""

    start: int
    end: int
    start_s: float
    end_s: float


class WindowClock:
    """Cuts windows of `window_s` seconds every `stride_s` seconds from frame times given in order."""

    def __init__(self, window_s: float, stride_s: float):
        if window_s <= 0 or stride_s <= 0:
            raise ValueError("window and stride must be positive")
        self.window_s, self.stride_s = float(window_s), float(stride_s)
        self._t0: Optional[float] = None
        self._times: list[float] = []  # times of frames from self._first on
        self._first = 0  # index of self._times[0]
        self._count = 0  # frames seen
        self._next = 0  # the next window's number
        self._last_end: Optional[float] = None  # end of the last window given out (seconds from t0)
        self._interval = 0.0

    @property
    def first_needed(self) -> int:
        """The first frame a window still to come can hold: a caller keeping frames drops those before it."""
        return self._first

    def _bounds(self, k: int) -> tuple[float, float]:
        start = k * self.stride_s
        return start, start + self.window_s

    def _span(self, start_s: float, end_s: float) -> Span:
        indices = [self._first + i for i, t in enumerate(self._times) if start_s - _EDGE_S <= t < end_s - _EDGE_S]
        first = indices[0] if indices else self._count
        return Span(first, (indices[-1] + 1) if indices else first, start_s, end_s)

    def add(self, time_s: float) -> list[Span]:
        """Frame number `frames seen so far` at `time_s` seconds; returns the windows it completes."""
        if self._t0 is None:
            self._t0 = float(time_s)
        t = float(time_s) - self._t0
        if self._times:
            self._interval = max(t - self._times[-1], 0.0)
        done = []
        while True:
            start, end = self._bounds(self._next)
            if t < end - _EDGE_S:
                break
            done.append(self._span(start, end))
            self._last_end = end
            self._next += 1
        self._times.append(t)
        self._count += 1
        # the last window given out is the earliest a closing window (finish) can reach back to
        self._forget_before(self._bounds(max(self._next - 1, 0))[0])
        return done

    def _forget_before(self, start_s: float) -> None:
        """Drop the times no later window needs (a live stream runs for hours)."""
        keep = 0
        while keep < len(self._times) and self._times[keep] < start_s - _EDGE_S:
            keep += 1
        if keep:
            self._times = self._times[keep:]
            self._first += keep

    def finish(self) -> list[Span]:
        """At the end of the input: the window that ends with the last frame, if any frames are not
        yet in a given-out window's time (or no window was complete: the whole input)."""
        if not self._count:
            return []
        end = (self._times[-1] if self._times else 0.0) + self._interval
        if self._last_end is None:
            span = Span(0, self._count, 0.0, end)
            self._last_end = end
            return [span]
        if end <= self._last_end + _EDGE_S:
            return []
        start = max(end - self.window_s, 0.0)
        self._last_end = end
        keep = [self._first + i for i, t in enumerate(self._times) if t >= start - _EDGE_S]
        # frames before self._first were forgotten: they lie before the last given-out window's start,
        # which is before this one's
        first = keep[0] if keep else self._count
        return [Span(first, self._count, start, end)]


def window_spans(times_s: np.ndarray, window_s: float, stride_s: float) -> list[Span]:
    """Every window of a whole clip whose frames are at `times_s` (seconds, increasing)."""
    clock = WindowClock(window_s, stride_s)
    spans: list[Span] = []
    for t in times_s:
        spans += clock.add(float(t))
    return spans + clock.finish()


def default_stride(window_s: float) -> float:
    """A quarter of the window: a sign of the training clips' length is then whole in several windows."""
    return window_s / 4


# --- the times of a clip's frames ----------------------------------------------------------------------


def recorded_fps(state: Mapping[str, Any]) -> Optional[float]:
    """The frame rate the checkpoint's training clips were extracted at, where it says."""
    extraction = state.get("extraction") or {}
    if not isinstance(extraction, Mapping):
        return None
    for value in ((extraction.get("settings") or {}).get("fps") if isinstance(extraction.get("settings"), Mapping)
                  else None, extraction.get("target_fps"), extraction.get("source_fps")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1000:
            return float(value)
    return None


def stored_timestamps(path: Path, frames: int) -> Optional[np.ndarray]:
    """A clip's own `timestamps_ms` (seconds), when it has one per frame that increase; read only
    when its zip entry is the size such an array has (a clip file is input: never trusted)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("timestamps_ms.npy")
            if info.file_size > 8 * frames + 1024:
                return None
        with np.load(path, allow_pickle=False) as clip:
            stamps = np.asarray(clip["timestamps_ms"])
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None
    if stamps.shape != (frames,) or stamps.dtype.kind not in "iuf" or not np.isfinite(stamps).all():
        return None
    if frames > 1 and not (np.diff(stamps) > 0).all():
        return None
    return (stamps - stamps[0]).astype(np.float64) / 1000.0


def evenly_spaced(frames: int, fps: float) -> np.ndarray:
    return np.arange(frames, dtype=np.float64) / fps


# --- answers per window, and segments ---------------------------------------------------------------------


@dataclass
class WindowAnswer:
    span: Span
    glosses: list[tuple[int, str, float]]  # top-k, most likely first
    category: Optional[tuple[int, str, float]]  # None: the model has one category
    sanity: Sanity

    @property
    def confident(self) -> bool:
        return not (self.sanity.uncertain or self.sanity.no_hand)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.span.start_s, 3),
            "end": round(self.span.end_s, 3),
            "frames": self.span.end - self.span.start,
            "top_glosses": [{"id": i, "name": n, "prob": p} for i, n, p in self.glosses],
            "cat": ({"id": self.category[0], "name": self.category[1], "prob": self.category[2]}
                    if self.category is not None else None),
            **self.sanity.to_dict(),
        }


@dataclass
class Segment:
    """Consecutive windows with the same confident answer, or consecutive doubtful windows."""

    start_s: float
    end_s: float
    windows: int
    gloss: tuple[int, str]  # the answer; for a doubtful segment, that of its most probable window
    prob: float  # the highest top probability among its windows
    confident: bool

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start_s, 3), "end": round(self.end_s, 3), "windows": self.windows,
                "gloss": {"id": self.gloss[0], "name": self.gloss[1]}, "prob": self.prob,
                "confident": self.confident}


def segments(answers: list[WindowAnswer]) -> list[Segment]:
    merged: list[Segment] = []
    previous_key: Any = object()
    for answer in answers:
        top_id, top_name, top_prob = answer.glosses[0]
        key = top_id if answer.confident else None
        if merged and key == previous_key:
            last = merged[-1]
            last.end_s = answer.span.end_s
            last.windows += 1
            if top_prob > last.prob:
                last.prob, last.gloss = top_prob, (top_id, top_name)
        else:
            merged.append(Segment(answer.span.start_s, answer.span.end_s, 1, (top_id, top_name), top_prob,
                                  answer.confident))
        previous_key = key
    return merged


# --- the length check ---------------------------------------------------------------------------------------


def training_frames(state: Mapping[str, Any]) -> Optional[dict[str, int]]:
    """The training clips' frame counts (min, median, max) the checkpoint records; None for older ones."""
    stored = state.get("clip_frames")
    if not isinstance(stored, Mapping):
        return None
    values = {k: stored.get(k) for k in ("min", "median", "max")}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values.values()):
        return None
    return {k: int(v) for k, v in values.items()}  # type: ignore[arg-type]


def length_note(frames: int, trained: Optional[dict[str, int]], fps: Optional[float]) -> Optional[str]:
    """One line where a clip is much longer or shorter than the training clips, suggesting windows."""
    if trained is None:
        return None
    suggestion = setting("window")
    if fps:
        suggestion = setting("window", f"{trained['median'] / fps:.2g}")
    if frames > MUCH_LONGER * trained["max"]:
        return (f"{frames} frames, {frames / trained['max']:.1f}x the longest training clip ({trained['max']}): "
                f"this is one answer for all of it; if it holds several signs, {suggestion} predicts over "
                f"windows of the training clips' length")
    if frames < MUCH_SHORTER * trained["min"]:
        return (f"only {frames} frames, under half the shortest training clip ({trained['min']}): the answer "
                f"may be about part of a sign")
    return None


def window_length(window_s: Optional[float], state: Mapping[str, Any], fallback_s: float) -> float:
    """`--window`, else the training clips' median length at their recorded frame rate, else `fallback_s`."""
    if window_s is not None:
        return float(window_s)
    trained, fps = training_frames(state), recorded_fps(state)
    if trained is not None and fps:
        return trained["median"] / fps
    return float(fallback_s)
