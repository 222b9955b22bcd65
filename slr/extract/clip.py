"""One video -> one clip: the frames kept by timestamp, Holistic keypoints on each, optionally the
InceptionV3 features of the same frames, and the meta that says how the clip was made.

`extract_clip` is what `slr extract` writes and what `slr predict` runs on a video, so the two
give the same arrays for the same video and settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from slr import __version__
from slr.data.clips import MIRROR_SUFFIX
from slr.errors import DataError
from slr.extract import layout
from slr.extract.backend import native_logs_filtered
from slr.extract.keypoints import HolisticExtractor, HolisticOptions
from slr.extract.video import FrameSelector, VideoReader, missing_frames

EXTRACTOR = "mediapipe.solutions.holistic"
PARTS = ("pose", "left_hand", "right_hand", "face")


@dataclass(frozen=True)
class ExtractOptions:
    """Everything that decides a clip's content (recorded in its meta, compared on a re-run)."""

    fps: Optional[float] = None  # frames kept per second; None: every frame
    holistic: HolisticOptions = field(default_factory=HolisticOptions)
    features: bool = False
    mirror_features: bool = False  # with features: also those of every frame mirrored left to right

    def as_meta(self) -> dict[str, Any]:
        meta = {"fps": self.fps, **asdict(self.holistic), "features": self.features}
        if self.features and self.mirror_features:  # absent otherwise: clips made before it compare equal
            meta["mirror_features"] = True
        return meta

    @classmethod
    def from_meta(cls, settings: dict[str, Any]) -> "ExtractOptions":
        known = {k: settings[k] for k in HolisticOptions.__dataclass_fields__ if k in settings}
        return cls(fps=settings.get("fps"), holistic=HolisticOptions(**known), features=bool(settings.get("features")),
                   mirror_features=bool(settings.get("mirror_features")))


@dataclass
class Clip:
    source: Path
    X: np.ndarray  # float32 [T, 156]
    mask: np.ndarray  # bool [T, 78]
    timestamps_ms: np.ndarray  # int64 [T]
    meta: dict[str, Any]
    X2048: Optional[np.ndarray] = None  # float32 [T, 2048]
    X2048_mirror: Optional[np.ndarray] = None  # float32 [T, 2048]: of the same frames mirrored left to right
    found: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=bool))  # [T, 4] per part

    @property
    def frames(self) -> int:
        return int(self.X.shape[0])

    def detection_rates(self) -> dict[str, float]:
        """Share of frames in which each part (pose, left hand, right hand, face) was found."""
        if not self.frames:
            return {p: 0.0 for p in PARTS}
        return {p: float(self.found[:, i].mean()) for i, p in enumerate(PARTS)}

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"X": self.X, "mask": self.mask, "timestamps_ms": self.timestamps_ms,
                  "meta": np.array(json.dumps(self.meta, sort_keys=True))}
        if self.X2048 is not None:
            arrays["X2048"] = self.X2048
        if self.X2048_mirror is not None:
            arrays["X2048" + MIRROR_SUFFIX] = self.X2048_mirror
        return arrays


def extract_clip(
    path: Path,
    options: ExtractOptions,
    *,
    holistic: Optional[HolisticExtractor] = None,
    features: Optional[Callable[[list[np.ndarray]], np.ndarray]] = None,
    feature_info: Optional[dict[str, Any]] = None,
    on_frames: Optional[Callable[[int], None]] = None,
) -> Clip:
    """The clip of one video. A fresh Holistic graph is used per video (tracking must not carry
    over from the previous video); `features` is the InceptionV3 extractor when options.features.

    `on_frames(n)` is told every few frames how many more were processed (for progress).
    """
    if options.features and features is None:
        raise ValueError("options.features needs a feature extractor")
    with native_logs_filtered():
        return _extract(path, options, holistic, features, feature_info, on_frames)


def _extract(path, options, holistic, features, feature_info, on_frames) -> Clip:
    own = holistic is None
    holistic = holistic or HolisticExtractor(options.holistic)
    xs, masks, found, stamps = [], [], [], []
    feats: list[np.ndarray] = []
    mirrored: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def encode(frames: list[np.ndarray]) -> None:
        feats.append(features(frames))
        if options.mirror_features:  # the same frames flipped, as a left-handed signer would look
            mirrored.append(features([np.ascontiguousarray(frame[:, ::-1]) for frame in frames]))

    batch = getattr(features, "batch_size", 16)
    told = 0
    try:
        with VideoReader(path) as reader:
            info = reader.info
            select = FrameSelector(options.fps)
            decoded = 0
            for frame in reader.frames():
                decoded += 1
                if not select.keep(frame.timestamp_ms):
                    continue
                points = holistic.process(frame.rgb)
                xs.append(points.x)
                masks.append(points.mask)
                found.append(points.found)
                stamps.append(frame.timestamp_ms)
                if features is not None:
                    pending.append(frame.rgb)
                    if len(pending) >= batch:
                        encode(pending)
                        pending = []
                if on_frames is not None and len(xs) - told >= 8:
                    on_frames(len(xs) - told)
                    told = len(xs)
            if features is not None and pending:
                encode(pending)
    finally:
        if own:
            holistic.close()
    if on_frames is not None and len(xs) > told:
        on_frames(len(xs) - told)
    if not xs:
        raise DataError("the video has no frames that could be decoded", path)
    meta = clip_meta(path, info, decoded, len(xs), options, holistic.version, feature_info)
    clip = Clip(
        source=Path(path),
        X=np.stack(xs).astype(np.float32),
        mask=np.stack(masks),
        timestamps_ms=np.asarray(stamps, dtype=np.int64),
        meta=meta,
        X2048=np.concatenate(feats) if features is not None else None,
        X2048_mirror=np.concatenate(mirrored) if mirrored else None,
        found=np.asarray(found, dtype=bool),
    )
    return clip


def clip_meta(path, info, decoded: int, kept: int, options: ExtractOptions, version: str,
              feature_info: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The clip's `meta`: the original files' keys (video, target_fps, order, ...) and what slr adds."""
    return {
        "video": Path(path).name,
        "source": str(path),
        "source_fps": info.fps,
        "frame_size": {"width": info.width, "height": info.height},
        "source_frames": decoded,
        "declared_frames": info.frame_count,  # what the container says it holds (0: it does not say)
        "incomplete": bool(missing_frames(info.frame_count, decoded)),
        "rotation": info.rotation,  # degrees clockwise applied to the stored pixels (the container's tag)
        "frames": kept,
        "target_fps": options.fps,
        "layout": layout.LAYOUT.name,
        "dims_per_frame": layout.WIDTH,
        "keypoints_total": layout.POINTS,
        "order": layout.ORDER,
        "pose_indices": list(layout.POSE_POINTS),
        "face_indices": list(layout.FACE_POINTS),
        "coordinates": "x / frame width, y / frame height (MediaPipe image coordinates, frame not resized)",
        "undetected": "0, mask False",
        "conf_thresh": options.holistic.visibility_threshold,
        "extractor": EXTRACTOR,
        "extractor_version": version,
        "slr_version": __version__,
        "settings": options.as_meta(),
        "features": feature_info,
    }
