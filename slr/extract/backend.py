"""The optional extraction dependencies (mediapipe, and OpenCV with it), imported only when used.

Without them, one `ExtractUnavailable` says the one command that installs them; the core install of
slr (training on clips) never needs them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Any, Iterator

from slr.errors import SlrError

MEDIAPIPE_VERSION = "0.10.21"
INSTALL_COMMAND = 'pip install -e ".[extract]"'


class ExtractUnavailable(SlrError):
    """mediapipe (or OpenCV) is not installed, or is another release than the one slr extracts with."""


def _quiet_native_logs() -> None:
    # MediaPipe's C++ side logs several lines per graph (TensorFlow Lite delegates, absl warnings)
    # to stderr; they say nothing a user can act on and bury the progress output.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ExtractUnavailable(
            f"reading videos needs the extraction extra (mediapipe {MEDIAPIPE_VERSION} and OpenCV); "
            f"install it with: {INSTALL_COMMAND}"
        ) from None
    return cv2


def import_mediapipe() -> Any:
    _quiet_native_logs()
    try:
        import mediapipe as mp
    except ImportError:
        raise ExtractUnavailable(
            f"extracting keypoints needs mediapipe {MEDIAPIPE_VERSION}; install it with: {INSTALL_COMMAND}"
        ) from None
    if not hasattr(mp, "solutions"):  # releases after 0.10.21 dropped the Holistic solution
        raise ExtractUnavailable(
            f"mediapipe {getattr(mp, '__version__', '?')} is installed, but slr extracts with the Holistic "
            f"solution of mediapipe {MEDIAPIPE_VERSION}, which later releases dropped; install it with: "
            f"{INSTALL_COMMAND}"
        )
    return mp


#: Lines MediaPipe's native code writes to stderr that mean nothing to a user.
_NATIVE_NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:. ]+\S+\.cc:\d+\]|INFO: Created TensorFlow Lite|WARNING: All log messages before absl"
    r"|\[[\w,]+ @ 0x[0-9a-f]+\]"  # FFmpeg's own lines ("moov atom not found"): slr says what failed
    r"|\[ ?(?:WARN|ERROR):\d+@[\d.]+\] global )"  # OpenCV's ("can't open camera by index"): slr live says it
)


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 and pass on only the lines that are not
    MediaPipe's routine log noise (the Python-level stderr is untouched: it is the same descriptor,
    so Python writes are captured too and passed on, in order, when the block ends)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded use): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not _NATIVE_NOISE.match(line)]
            if kept:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
