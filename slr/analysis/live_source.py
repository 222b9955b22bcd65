"""Where `slr live` gets its frames: a camera, a video file (at its own speed, or every frame as
fast as possible), or a stream; each frame with its time in seconds and when it was read.

A file is read by `slr extract`'s own `VideoReader`, so its frames and their timestamps are those
`slr extract` and `slr predict` see. A camera or a stream has no file time worth trusting, so its
frames are timed by the clock as they arrive (a camera drops the frames nobody reads in time).
A file played in real time does the same: a frame whose time has already passed when it is
decoded is dropped, as a camera's would be, so the answers come at the pace of the video.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from slr.errors import DataError
from slr.extract.backend import import_cv2

#: Sources OpenCV opens as network streams rather than files.
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class LiveFrame:
    time_s: float  # from the first frame: the file's own timestamps, or the clock for a camera/stream
    rgb: np.ndarray  # uint8 [H, W, 3]
    read_at: float  # time.perf_counter() when it was read
    decode_s: float  # time spent reading and decoding it


class FrameSource:
    """The frames of `source` (a camera index, a file path or a stream URL), in order."""

    def __init__(self, source: str, realtime: bool = True):
        self.source = source
        self.realtime = realtime
        self.dropped = 0  # frames of a file played in real time that were late and skipped
        self.kind = "camera" if source.strip().isdigit() else "stream" if source.startswith(STREAM_PREFIXES) else "file"
        self._reader = None
        self._capture = None
        if self.kind == "file":
            from slr.extract.video import VideoReader

            self._reader = VideoReader(Path(source))  # names a missing, unreadable or still-image file
            self.fps = self._reader.info.fps
        else:
            from slr.extract.backend import native_logs_filtered

            cv2 = import_cv2()
            target = int(source) if self.kind == "camera" else source
            with native_logs_filtered():  # OpenCV's own warnings about a missing camera: the error below says it
                self._capture = cv2.VideoCapture(target)
            if not self._capture.isOpened():
                self._capture.release()
                what = f"camera {source}" if self.kind == "camera" else source
                why = "no such camera, or it is in use" if self.kind == "camera" else "no answer, or not a video"
                raise DataError(f"{what}: cannot be opened ({why})")
            fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = fps if 0 < fps <= 1000 else 0.0

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._capture is not None:
            self._capture.release()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self) -> Iterator[LiveFrame]:
        return self._file_frames() if self._reader is not None else self._capture_frames()

    def _file_frames(self) -> Iterator[LiveFrame]:
        assert self._reader is not None
        interval = 1.0 / self.fps if self.fps else 1.0 / 30
        frames = self._reader.frames()
        started: Optional[float] = None
        first_ms: Optional[int] = None
        while True:
            begun = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            read_at = time.perf_counter()
            decode_s = read_at - begun
            if first_ms is None:
                first_ms, started = frame.timestamp_ms, read_at
            time_s = (frame.timestamp_ms - first_ms) / 1000.0
            if self.realtime:
                assert started is not None
                due = started + time_s
                if read_at > due + interval:  # its time has passed: a camera would have dropped it
                    self.dropped += 1
                    continue
                if due > read_at:
                    time.sleep(due - read_at)
                    read_at = time.perf_counter()
            yield LiveFrame(time_s, frame.rgb, read_at, decode_s)
            if time_s == 0.0 and self.realtime:
                # Holistic's first frame loads its models (a second or more): the video starts after it,
                # or a whole second of frames would be dropped before the first is made into keypoints
                started = time.perf_counter()

    def _capture_frames(self) -> Iterator[LiveFrame]:
        cv2 = import_cv2()
        assert self._capture is not None
        started: Optional[float] = None
        while True:
            begun = time.perf_counter()
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            read_at = time.perf_counter()
            started = read_at if started is None else started
            yield LiveFrame(read_at - started, rgb, read_at, read_at - begun)
