"""`slr live --show`: the video in an OpenCV window with the keypoints the model sees drawn on it,
and the current answer written on top. OpenCV comes through slr.extract.backend, like all of it."""

from __future__ import annotations

import os
import sys
from typing import Optional

import numpy as np

from slr.errors import ConfigError, setting
from slr.extract import layout
from slr.extract.backend import import_cv2

TITLE = "slr live"
#: Where a Linux program finds a display (QT_QPA_PLATFORM: Qt told where to draw, e.g. offscreen).
_DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
#: MediaPipe's hand skeleton (wrist 0; thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20).
HAND_LINKS = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))
#: The upper body of MediaPipe Pose: shoulders, elbows, wrists, hips.
POSE_LINKS = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24))
_COLOURS = {"pose": (200, 200, 200), "left_hand": (0, 200, 255), "right_hand": (255, 120, 0), "face": (120, 255, 120)}


def draw_skeleton(bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The frame (BGR, drawn on in place and returned) with the found points of a 78-point
    keypoint row `[156]` (fractions of the frame's width and height) and their links."""
    cv2 = import_cv2()
    height, width = bgr.shape[:2]
    points = np.asarray(keypoints, dtype=np.float64).reshape(layout.POINTS, 2)
    for block in layout.BLOCKS:
        part = points[block.start:block.start + block.size]
        found = (part != 0).any(axis=1)
        pixels = [(int(x * width), int(y * height)) for x, y in part]
        links = HAND_LINKS if block.name.endswith("hand") else POSE_LINKS if block.name == "pose" else ()
        for a, b in links:
            if a < block.size and b < block.size and found[a] and found[b]:
                cv2.line(bgr, pixels[a], pixels[b], _COLOURS[block.name], 2)
        for i in np.nonzero(found)[0]:
            cv2.circle(bgr, pixels[i], 3, _COLOURS[block.name], -1)
    return bgr


class VideoWindow:
    """The OpenCV window; `show` returns False once the user closes it or presses q or Esc."""

    def __init__(self) -> None:
        if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in _DISPLAY_VARIABLES):
            # OpenCV's Qt aborts the whole process (SIGABRT) when it finds no display: ask first
            raise ConfigError(f"{setting('show')} needs a display to open a window on (DISPLAY is not set: a "
                              f"server, or ssh without X forwarding); {setting('json_lines')} gives the answers "
                              f"to another program instead")
        self._cv2 = import_cv2()
        self.caption: Optional[str] = None
        self._opened = False

    def show(self, rgb: np.ndarray, keypoints: np.ndarray) -> bool:
        cv2 = self._cv2
        bgr = draw_skeleton(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), keypoints)
        if self.caption:
            cv2.putText(bgr, self.caption, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 5, cv2.LINE_AA)
            cv2.putText(bgr, self.caption, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
        try:
            cv2.imshow(TITLE, bgr)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as error:  # no display (a server, ssh without X), or OpenCV built without GUI
            raise ConfigError(f"{setting('show')} needs a display OpenCV can open a window on: {error}") from None
        if self._opened and cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
            return False
        self._opened = True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self._opened:
            self._cv2.destroyWindow(TITLE)
            self._cv2.waitKey(1)
