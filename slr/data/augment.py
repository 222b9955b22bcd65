"""Per-clip keypoint normalisation and the training augmentations a sign-language model needs.

Keypoints are (x, y) pairs per frame. A point that was not detected is stored as (0, 0); it stays
(0, 0) through every step here, so "missing" keeps one meaning for the model.

Layouts: 156 numbers per frame is the FSL-105 / MediaPipe layout (pose 0-24, left hand 25-45,
right hand 46-66, face 67-77); there the clip is centred on the shoulders and scaled by their
width, and a mirror swaps the hands and the left/right pose points. Any other even width is read
as (x, y) pairs of unknown meaning: centred and scaled on what was detected, and mirrored without
swapping. CNN features (iv3_gru) only get the temporal augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from slr.settings import AugmentSettings

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]

MEDIAPIPE_WIDTH = 156
_LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12
# MediaPipe pose left/right pairs among the first 25 landmarks.
_POSE_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22), (23, 24)]
_LEFT_HAND, _RIGHT_HAND = range(25, 46), range(46, 67)


@dataclass(frozen=True)
class Layout:
    points: int
    shoulders: Optional[tuple[int, int]]  # point indices, where the layout has a body
    mirror_order: np.ndarray  # point permutation applied by a left/right mirror


def keypoint_layout(width: int) -> Optional[Layout]:
    """How to read a keypoint frame of this width; None where it is not (x, y) pairs."""
    if width % 2:
        return None
    points = width // 2
    order = np.arange(points)
    if width == MEDIAPIPE_WIDTH:
        for a, b in _POSE_PAIRS:
            order[a], order[b] = b, a
        order[list(_LEFT_HAND)], order[list(_RIGHT_HAND)] = list(_RIGHT_HAND), list(_LEFT_HAND)
        return Layout(points, (_LEFT_SHOULDER, _RIGHT_SHOULDER), order)
    return Layout(points, None, order)


def _points(x: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """[T, P, 2] view of the clip and the [T, P] mask of detected points."""
    pts = x.reshape(x.shape[0], layout.points, 2)
    detected = np.any(pts != 0, axis=-1)
    return pts, detected


def normalize_clip(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Centre on the shoulders' midpoint and scale by shoulder width; without a body, on the detected points."""
    pts, detected = _points(x.astype(np.float32, copy=True), layout)
    if not detected.any():
        return x.astype(np.float32, copy=True)
    center = scale = None
    if layout.shoulders is not None:
        a, b = layout.shoulders
        both = detected[:, a] & detected[:, b]
        if both.any():
            left, right = pts[both, a], pts[both, b]
            center = ((left + right) / 2).mean(axis=0)
            width = np.linalg.norm(left - right, axis=-1).mean()
            scale = width if width > 1e-6 else None
    if center is None or scale is None:
        seen = pts[detected]
        center = seen.mean(axis=0)
        spread = np.sqrt(((seen - center) ** 2).sum(axis=-1).mean())
        scale = spread if spread > 1e-6 else 1.0
    pts = np.where(detected[..., None], (pts - center) / scale, 0.0).astype(np.float32)
    return pts.reshape(x.shape)


def _mirror(x: np.ndarray, layout: Layout, centred: bool) -> np.ndarray:
    pts, detected = _points(x, layout)
    flipped = pts.copy()
    flipped[..., 0] = np.where(detected, -pts[..., 0] if centred else 1.0 - pts[..., 0], 0.0)
    return flipped[:, layout.mirror_order].reshape(x.shape)


def _affine(x: np.ndarray, layout: Layout, s: AugmentSettings, rng: np.random.Generator, centred: bool) -> np.ndarray:
    pts, detected = _points(x, layout)
    angle = np.deg2rad(rng.uniform(-s.rotate_deg, s.rotate_deg))
    scale = rng.uniform(1 - s.scale_jitter, 1 + s.scale_jitter)
    shift = rng.uniform(-s.shift, s.shift, size=2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32) * scale
    origin = np.zeros(2, np.float32) if centred else np.full(2, 0.5, np.float32)
    moved = (pts - origin) @ rot.T + origin + shift
    return np.where(detected[..., None], moved, 0.0).astype(np.float32).reshape(x.shape)


def _change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    length = max(2, int(round(x.shape[0] / factor)))
    idx = np.clip(np.round(np.linspace(0, x.shape[0] - 1, length)).astype(int), 0, x.shape[0] - 1)
    return x[idx]


def _drop_frames(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    keep = rng.random(x.shape[0]) >= p
    if keep.sum() < max(2, x.shape[0] // 2):  # never lose most of a clip
        return x
    return x[keep]


def _mask_span(x: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    span = int(rng.integers(0, int(x.shape[0] * share) + 1))
    if span == 0:
        return x
    start = int(rng.integers(0, x.shape[0] - span + 1))
    x = x.copy()
    x[start : start + span] = 0.0  # as if nothing had been detected in those frames
    return x


def build_transform(settings: AugmentSettings, input_kind: str, width: int, train: bool) -> Optional[Transform]:
    """The clip transform for one split: normalisation always (keypoints), augmentation in training."""
    layout = keypoint_layout(width) if input_kind == "keypoints" else None
    normalize = settings.normalize and layout is not None
    augment = train and settings.augment
    if not normalize and not augment:
        return None

    def transform(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if normalize:
            x = normalize_clip(x, layout)
        if not augment:
            return x
        if layout is not None:
            if settings.mirror_prob and rng.random() < settings.mirror_prob:
                x = _mirror(x, layout, centred=normalize)
            if settings.rotate_deg or settings.scale_jitter or settings.shift:
                x = _affine(x, layout, settings, rng, centred=normalize)
        if settings.speed_jitter:
            x = _change_speed(x, rng.uniform(1 - settings.speed_jitter, 1 + settings.speed_jitter))
        if settings.frame_dropout:
            x = _drop_frames(x, settings.frame_dropout, rng)
        if settings.time_mask:
            x = _mask_span(x, settings.time_mask, rng)
        return np.ascontiguousarray(x, dtype=np.float32)

    return transform
