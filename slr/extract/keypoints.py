"""MediaPipe Holistic on a sequence of frames -> the 78-point layout: `X [T, 156]`, `mask [T, 78]`.

Coordinates are MediaPipe's normalised image coordinates (x / frame width, y / frame height), as
in the original FSL-105 files, computed on the frame as decoded: its aspect ratio is kept (the
original squashed every frame to 256x256 first). A point counts as detected when its part was
found (pose points also need a visibility at or above the threshold); every other point is 0
with mask False, so the mask never claims a point that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slr.errors import ConfigError, setting
from slr.extract import layout
from slr.extract.backend import import_mediapipe

#: The only model complexity whose models come inside the mediapipe wheel; 0 and 2 are fetched from
#: the internet the first time they are used, which extraction must not depend on.
SHIPPED_COMPLEXITY = 1


@dataclass(frozen=True)
class HolisticOptions:
    """Every setting that changes which points Holistic finds; recorded in each clip's meta."""

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    visibility_threshold: float = 0.5
    refine_face_landmarks: bool = True
    smooth_landmarks: bool = True

    def check(self) -> None:
        if self.model_complexity != SHIPPED_COMPLEXITY:
            raise ConfigError(
                f"{setting('model_complexity')} {self.model_complexity} is not available: mediapipe downloads "
                f"the models of complexity 0 and 2 at run time, and slr extracts without a network; "
                f"use {SHIPPED_COMPLEXITY} (the model inside the wheel)"
            )


@dataclass
class FramePoints:
    x: np.ndarray  # float32 [156]
    mask: np.ndarray  # bool [78]
    found: tuple[bool, bool, bool, bool]  # pose, left hand, right hand, face


class HolisticExtractor:
    """One Holistic graph in video mode (tracking across frames); feed frames in order."""

    def __init__(self, options: HolisticOptions):
        options.check()
        mp = import_mediapipe()
        self.options = options
        self.version = getattr(mp, "__version__", "unknown")
        self._graph = mp.solutions.holistic.Holistic(
            static_image_mode=False,
            model_complexity=options.model_complexity,
            smooth_landmarks=options.smooth_landmarks,
            refine_face_landmarks=options.refine_face_landmarks,
            min_detection_confidence=options.min_detection_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
        )

    def __enter__(self) -> "HolisticExtractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._graph.close()

    def raw(self, rgb: np.ndarray) -> Any:
        """Holistic's own result for one frame (uint8 RGB [H, W, 3])."""
        return self._graph.process(rgb)

    def process(self, rgb: np.ndarray) -> FramePoints:
        return points_from_result(self.raw(rgb), self.options.visibility_threshold)


def points_from_result(result: Any, visibility_threshold: float) -> FramePoints:
    """Holistic's result for one frame in the 78-point layout."""
    x = np.zeros((layout.POINTS, 2), dtype=np.float32)
    mask = np.zeros(layout.POINTS, dtype=bool)
    parts = {
        "pose": (result.pose_landmarks, layout.POSE_POINTS),
        "left_hand": (result.left_hand_landmarks, range(layout.HAND_POINTS)),
        "right_hand": (result.right_hand_landmarks, range(layout.HAND_POINTS)),
        "face": (result.face_landmarks, layout.FACE_POINTS),
    }
    found = []
    for name, (landmarks, indices) in parts.items():
        found.append(landmarks is not None)
        if landmarks is None:
            continue
        start = layout.block(name).start
        points = landmarks.landmark
        for slot, index in enumerate(indices):
            lm = points[index]
            if name == "pose" and float(lm.visibility) < visibility_threshold:
                continue
            x[start + slot] = (lm.x, lm.y)
            mask[start + slot] = True
    return FramePoints(x.reshape(-1), mask, tuple(found))  # type: ignore[arg-type]
