"""`slr live`: the sign being made now, from a camera, a video file or a stream.

Each frame goes through what `slr extract` does to a video's frames (the checkpoint's extraction
settings, `FrameSelector` by timestamp, one Holistic graph that tracks across frames,
`HolisticExtractor.process`); the keypoints of the last `window` seconds are classified every
`stride` seconds, cut by the same `WindowClock` as `slr predict --window`. So a file read with
`--no-realtime` gets exactly the windows and answers of `slr predict FILE --window W --stride S`.

It runs in this process, frame by frame (a worker process per frame would cost more than the
frame): unlike `slr predict`, an extractor that crashes on a frame ends `slr live` with it. The
library never prints: a `LiveObserver` (slr/ui/live_view.py) is told each frame and each answer.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np

from slr.errors import ConfigError
from slr.settings import LIVE_WINDOW_S, LiveSettings


@dataclass
class LiveUpdate:
    """One window's answer, as it came."""

    number: int  # windows answered before this one
    answer: Any  # slr.analysis.windows.WindowAnswer
    fps: float  # frames made into keypoints per second of wall time, so far
    delay_s: float  # from reading the window's last frame to this answer
    dropped: int  # frames skipped so far (a file in real time falling behind)
    model_s: float  # the model's time for this window

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.number, **self.answer.to_dict(), "fps": round(self.fps, 2),
                "delay_ms": round(1000 * self.delay_s, 1), "model_ms": round(1000 * self.model_s, 2),
                "dropped": self.dropped}


@dataclass
class LiveSummary:
    source: str
    stopped: str  # "end of input", "interrupted", "window closed"
    frames: int = 0  # frames made into keypoints
    dropped: int = 0
    seconds: float = 0.0  # wall time from the first frame read
    windows: int = 0
    window_s: float = 0.0
    stride_s: float = 0.0
    decode_ms: list[float] = field(default_factory=list)  # per frame
    keypoints_ms: list[float] = field(default_factory=list)  # per frame
    model_ms: list[float] = field(default_factory=list)  # per window
    delays_ms: list[float] = field(default_factory=list)  # per window

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        def median(values: list[float]) -> Optional[float]:
            return round(statistics.median(values), 2) if values else None

        return {"source": self.source, "stopped": self.stopped, "frames": self.frames, "dropped": self.dropped,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2), "windows": self.windows,
                "window_s": self.window_s, "stride_s": self.stride_s,
                "median_ms": {"decode": median(self.decode_ms), "keypoints": median(self.keypoints_ms),
                              "model": median(self.model_ms), "delay": median(self.delays_ms)}}


class LiveObserver(Protocol):
    def start(self, source: str, window_s: float, stride_s: float, notices: list[str]) -> None: ...

    def frame(self, rgb: np.ndarray, keypoints: np.ndarray) -> bool:
        """Each frame made into keypoints; False stops (the user closed the video window)."""
        ...

    def update(self, update: LiveUpdate) -> None: ...

    def finish(self, summary: LiveSummary) -> None: ...


def run_live(settings: LiveSettings, observer: LiveObserver, classifier: Any = None) -> LiveSummary:
    """Classify the source's last `window` seconds every `stride` seconds until it ends, Ctrl-C, or
    the observer says stop. `classifier`: a loaded one (benchmarks reuse it), else the checkpoint's."""
    from slr.analysis.classes import resolve_class_names
    from slr.analysis.classifier import load_classifier
    from slr.analysis.live_source import FrameSource
    from slr.analysis.predict import Answerer
    from slr.analysis.predict_video import video_options
    from slr.analysis.windows import WindowAnswer, WindowClock, default_stride, window_length
    from slr.engine.threads import apply_threads
    from slr.extract.backend import native_logs_filtered
    from slr.extract.keypoints import HolisticExtractor
    from slr.extract.video import FrameSelector

    apply_threads(settings.threads)
    classifier = classifier or load_classifier(settings.checkpoint, settings.device)
    if classifier.input_kind != "keypoints":
        raise ConfigError(
            f"{settings.checkpoint}: slr live runs keypoint models; this one reads InceptionV3 features, which "
            f"take longer per frame than a camera gives (use slr predict on a recorded video)"
        )
    options, _, notices = video_options(classifier.state, settings.extraction_overrides(), features=False)
    window_s = window_length(settings.window, classifier.state, LIVE_WINDOW_S)
    stride_s = settings.stride or default_stride(window_s)
    answer = Answerer(resolve_class_names(classifier.state, settings.classes),
                      min(settings.top_k, classifier.num_gloss), settings.uncertain_below, classifier.num_cat > 1)
    summary = LiveSummary(settings.source, "end of input", window_s=window_s, stride_s=stride_s)
    clock = WindowClock(window_s, stride_s)
    kept: deque[tuple[int, np.ndarray, float]] = deque()  # (frame number, keypoints, read at)
    select = FrameSelector(options.fps)

    def answer_windows(spans: list, now_frames: int) -> None:
        for span in spans:
            rows = [(x, read_at) for n, x, read_at in kept if span.start <= n < span.end]
            if not rows:
                continue
            x = np.stack([r[0] for r in rows])
            started = time.perf_counter()
            gloss, cat = classifier.probabilities([x], [f"{settings.source} [{span.start_s:.2f}-{span.end_s:.2f} s]"])
            done = time.perf_counter()
            glosses, category, sanity = answer(gloss[0], cat[0], x)
            summary.windows += 1
            summary.model_ms.append(1000 * (done - started))
            delay = done - rows[-1][1]
            summary.delays_ms.append(1000 * delay)
            elapsed = done - first_read if first_read is not None else 0.0
            observer.update(LiveUpdate(summary.windows - 1, WindowAnswer(span, glosses, category, sanity),
                                       now_frames / elapsed if elapsed > 0 else 0.0, delay, source.dropped,
                                       done - started))

    first_read: Optional[float] = None
    with FrameSource(settings.source, settings.realtime) as source:  # a source that cannot be opened: before any output
        observer.start(settings.source, window_s, stride_s, notices)
        with native_logs_filtered(), HolisticExtractor(options.holistic) as holistic:
            try:
                for frame in source.frames():
                    if first_read is None:
                        first_read = frame.read_at - frame.decode_s
                    if not select.keep(1000.0 * frame.time_s):
                        continue
                    started = time.perf_counter()
                    points = holistic.process(frame.rgb)
                    summary.keypoints_ms.append(1000 * (time.perf_counter() - started))
                    summary.decode_ms.append(1000 * frame.decode_s)
                    number = summary.frames
                    summary.frames += 1
                    answer_windows(clock.add(frame.time_s), summary.frames)  # they end before this frame
                    kept.append((number, points.x, frame.read_at))
                    while kept and kept[0][0] < clock.first_needed:
                        kept.popleft()
                    if not observer.frame(frame.rgb, points.x):
                        summary.stopped = "window closed"
                        break
                else:
                    answer_windows(clock.finish(), summary.frames)
            except KeyboardInterrupt:
                summary.stopped = "interrupted"
        summary.dropped = source.dropped
    summary.seconds = (time.perf_counter() - first_read) if first_read is not None else 0.0
    observer.finish(summary)
    return summary
