"""Reading a video's frames with their own timestamps, and keeping N frames per second by timestamp.

OpenCV (which comes with mediapipe) decodes; after each `read()` the capture's position is the
presentation time of the frame just read, so clips carry the video's own timing, also for
variable-frame-rate files. A frame whose timestamp goes backwards (some containers report 0 for the
last frames) gets the previous one plus a frame interval, so timestamps always increase.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from slr.errors import DataError
from slr.extract.backend import import_cv2

_TOLERANCE_MS = 1.0
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float  # as the container states it (0 where it states none)
    width: int
    height: int
    frame_count: int  # as the container states it; may be approximate
    rotation: int = 0  # degrees clockwise the container says to turn the stored pixels (phone videos); applied


@dataclass(frozen=True)
class Frame:
    index: int  # position in the video, from 0
    timestamp_ms: int
    rgb: np.ndarray  # uint8 [H, W, 3], the frame as decoded (never resized)


STILL_IMAGE = "is a still image, not a video"


def _still(cv2, path: Path, frame_count: float) -> bool:
    """FFmpeg opens a PNG or JPEG (whatever its name) as a one-frame "video" with a frame count of
    -2**63 and frame times near -3.7e20 ms; an image's file signature, which is what OpenCV's image
    readers go by, says what it is. An animated image with frames to count is let through: its
    frames are a clip like any other."""
    return not (_plausible(frame_count) and frame_count > 1) and cv2.haveImageReader(str(path))


#: File signatures of the still-image formats OpenCV reads (imgcodecs), which FFmpeg would also open
#: as a one-frame "video". GIF and WebP are not here: they may be animated, and whether they hold
#: frames is for the worker's decoder to say (`_still`).
_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"BM",  # BMP
    b"II*\x00", b"MM\x00*",  # TIFF
    b"\x00\x00\x00\x0cjP  ",  b"\xff\x4f\xff\x51",  # JPEG 2000
    b"\x59\xa6\x6a\x95",  # Sun raster
    b"\x76\x2f\x31\x01",  # OpenEXR
    b"#?RADIANCE", b"#?RGBE",  # Radiance HDR
)
_PNG = b"\x89PNG\r\n\x1a\n"


def is_still_image(path: Path) -> bool:
    """Whether the file is a still image (by its signature, not its name), which OpenCV would open
    as a one-frame video.

    Pure Python, no OpenCV: this runs in slr's own process on every named file, and OpenCV crashes
    (SIGSEGV) on a file name that is not valid UTF-8; only the worker processes call OpenCV."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return False  # the worker names what is wrong with it
    if head.startswith(_PNG):  # an animated PNG (acTL before the image data) has frames to count
        acTL, idat = head.find(b"acTL"), head.find(b"IDAT")
        return not (0 <= acTL and (idat < 0 or acTL < idat))
    if re.match(rb"P[1-7Ff]\s", head):  # PBM, PGM, PPM, PAM, PFM
        return True
    return head.startswith(_IMAGE_SIGNATURES)


def _rotation(degrees: float) -> int:
    """The container's rotation tag as 0, 90, 180 or 270 (OpenCV reports what the tag says)."""
    return int(round(degrees)) % 360 if math.isfinite(degrees) else 0


#: A video is incomplete when more of the frames its container declares than this share (and at
#: least MIN_MISSING_FRAMES of them) could not be decoded: a half-copied file, a damaged middle.
#: Containers that only estimate their frame count (from duration x rate) are off by a frame or two.
MISSING_FRAMES_SHARE = 0.05
MIN_MISSING_FRAMES = 3


def missing_frames(declared: int, decoded: int) -> int:
    """How many declared frames were not decoded, when that is beyond the threshold above; else 0."""
    missing = declared - decoded
    if declared <= 0 or missing < max(MIN_MISSING_FRAMES, MISSING_FRAMES_SHARE * declared):
        return 0
    return missing


def opencv_name(path: Path) -> tuple[str, Optional[str]]:
    """A name OpenCV opens `path` by, and the temporary folder to remove afterwards (or None).

    OpenCV takes a file name as UTF-8 text: a name whose bytes are not UTF-8 (`clip_\\xff.mp4`)
    crashes it (SIGSEGV), and under a non-UTF-8 locale (ISO-8859-1) Python's text of a name is
    not its UTF-8 spelling, so OpenCV would look for another file. Such a video is opened through a
    symbolic link with a plain ASCII name, in a temporary folder of its own."""
    real = os.fsencode(path)
    text = os.fsdecode(real)
    try:
        if text.encode("utf-8") == real:
            return text, None
    except UnicodeEncodeError:
        pass
    folder = tempfile.mkdtemp(prefix="slr-video-")
    suffix = Path(path).suffix if Path(path).suffix.isascii() else ""
    link = os.path.join(folder, "video" + suffix)
    os.symlink(os.path.abspath(path), link)
    return link, folder


class VideoReader:
    """Frames of one video, in order; a context manager that releases the decoder."""

    def __init__(self, path: Path):
        cv2 = import_cv2()
        self.path = Path(path)
        if not self.path.is_file():
            from slr.data.files import describe_non_file

            what = describe_non_file(self.path)
            raise DataError(what if what.startswith("not ") else f"is {what}, not a video", self.path)
        self._cv2 = cv2
        name, self._link_dir = opencv_name(self.path)
        self._cap = cv2.VideoCapture(name)
        if not self._cap.isOpened():
            self.close()
            raise DataError("cannot be read as a video (not a video file, or damaged)", self.path)
        # A phone stores its pixels sideways and a rotation tag beside them; OpenCV leaves the frames
        # as stored unless asked, and the signer would lie on their side in every keypoint.
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        get = self._cap.get
        fps, count = get(cv2.CAP_PROP_FPS), get(cv2.CAP_PROP_FRAME_COUNT)
        if _still(cv2, Path(name), count):
            self.close()
            raise DataError(STILL_IMAGE, self.path)
        self.info = VideoInfo(
            path=self.path,
            fps=float(fps) if _plausible(fps) and fps > 0 else 0.0,
            width=int(get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frame_count=int(count) if _plausible(count) else 0,
            rotation=_rotation(get(cv2.CAP_PROP_ORIENTATION_META)),
        )

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._cap.release()
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None

    def frames(self) -> Iterator[Frame]:
        cv2 = self._cv2
        step = 1000.0 / self.info.fps if self.info.fps else 1000.0 / 30
        last: Optional[float] = None
        index = 0
        while True:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                return
            ms = frame_time(self._cap.get(cv2.CAP_PROP_POS_MSEC), last, step)
            last = ms
            yield Frame(index, int(round(ms)), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1


#: The latest frame time taken as the container's word: 10**12 ms is 31 years. Beyond it (or
#: negative, or not a number) the time is garbage, and as a whole number of milliseconds it would
#: not even fit the clip's int64 timestamps.
MAX_FRAME_MS = 1e12


def _plausible(value: float) -> bool:
    """A frame time, rate or count OpenCV reports that can be a real one (not NaN, negative, or the
    -2**63 and ~1e20 that stand for "unknown")."""
    return math.isfinite(value) and 0 <= value <= MAX_FRAME_MS


def frame_time(reported: float, last: Optional[float], step: float) -> float:
    """The time (ms) of a frame the container says is at ``reported``: that, unless it is not a
    plausible time or does not come after the previous frame's (``last``); then the previous one
    plus a frame interval (``step``), or 0 for the first frame."""
    ms = float(reported)
    if not _plausible(ms) or (last is not None and ms <= last):
        ms = (last + step) if last is not None else 0.0
    return ms


class FrameSelector:
    """Keeps `fps` frames per second, chosen by timestamp: the first frame at or after each tick
    (0, 1/fps, 2/fps, ... seconds after the first frame). None keeps every frame.

    Ticks are counted from the first frame's time, so a video that does not start at 0 ms keeps
    the same frames as one that does; when the video's rate is below `fps` every frame is kept
    (frames are never repeated).
    """

    def __init__(self, fps: Optional[float]):
        self.fps = fps
        self._start: Optional[int] = None
        self._next_tick = 0

    def keep(self, timestamp_ms: float) -> bool:
        if self.fps is None:
            return True
        if self._start is None:
            self._start = timestamp_ms
        # The tick this frame has reached, with 1 ms of tolerance: timestamps are whole milliseconds
        # (in the clip, and in containers with a millisecond time base), so a frame at 133 ms is the
        # one at 133.33 ms, on the 15 fps tick.
        reached = math.floor((timestamp_ms - self._start + _TOLERANCE_MS) * self.fps / 1000.0)
        if reached < self._next_tick:
            return False
        self._next_tick = reached + 1
        return True


def find_videos(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The videos named: files as given, and the video files (by suffix) directly in each folder.

    Returns (videos, problems): a path that does not exist (or is no file or folder), a still image
    and a folder without videos are problems, each named once, not videos to try; other files are
    videos, whatever their suffix (one that is not is reported when it is read).
    """
    from slr.data.files import describe_non_file

    videos: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                problems.append((path, f"no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder"))
            videos += found
        elif path.is_file():
            videos.append(path)
        else:  # "not found", "a broken symbolic link (to ...)", "a FIFO", ...
            what = describe_non_file(path)
            problems.append((path, what if what.startswith("not ") else f"is {what}, not a video"))
    seen: set[Path] = set()
    unique = []
    for video in videos:
        key = video.resolve()
        if key in seen:
            continue
        seen.add(key)
        if is_still_image(video):  # a PNG named .mp4 too: one message, not a one-frame "clip"
            problems.append((video, STILL_IMAGE))
        else:
            unique.append(video)
    return unique, problems
