"""Per-clip keypoint normalisation and the training augmentations a sign-language model needs.

Keypoints are points per frame, stored as (x, y) or (x, y, z) groups. A point that was not
detected is stored as all zeros; it stays all zeros through every step here (the mask of detected
points is taken once, from the clip as read, and carried through), so "missing" keeps one
meaning for the model, and a detected point that happens to land on (0, 0) is not lost.

Layouts are recognised from the frame width (`keypoint_layout`):

- 156: the FSL-105 / MediaPipe Holistic layout of the training guide, 78 points x (x, y): pose
  0-24, left hand 25-45, right hand 46-66, face 67-77. The clip is centred on the shoulders
  (pose 11 and 12) and scaled by their width; a mirror swaps the hands and the left/right pose
  points.
- 84 / 126: hands only, left hand then right hand, 21 points each, as (x, y) / (x, y, z)
  (the usual MediaPipe Hands export); a mirror swaps the hands.
- 42 / 63: one hand, 21 points, (x, y) / (x, y, z).
- any other even width: (x, y) pairs of unknown meaning, mirrored without swapping.
- any other odd width: not keypoints we can read; only the temporal augmentations apply.
- any width, declared in a layout file (`--keypoint-layout`, slr/data/layout_file.py): its
  left/right pairs, hands and shoulders, instead of what the width says.

Without shoulders (hands-only layouts, unknown layouts, or clips where the shoulders were never
detected) a clip is centred on the mean of its detected points and scaled by their RMS distance
from that centre; with `--normalize-weighting motion` each point counts by how much it moves over the
clip, so points that stay still (a Kinect skeleton's legs) shift and stretch nothing. Centre and
scale are per clip (not per frame), so the motion is kept.
z (where there is one) is scaled with x and y but not centred (MediaPipe's z is already relative).

CNN features (iv3_gru) are not normalised and only get the temporal augmentations
(speed change, frame dropout, time mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from slr.data.layout_file import declaration_points
from slr.errors import setting
from slr.settings import AugmentSettings

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]

MEDIAPIPE_WIDTH = 156
_LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12
# MediaPipe pose left/right pairs among the first 25 landmarks.
_POSE_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22), (23, 24)]
_HAND = 21


@dataclass(frozen=True)
class Layout:
    """How to read a keypoint frame: `points` groups of `dims` coordinates (x, y[, z])."""

    name: str
    points: int
    dims: int
    shoulders: Optional[tuple[int, int]]  # point indices, where the layout has a body
    mirror_order: np.ndarray  # point permutation applied by a left/right mirror
    hands: tuple[tuple[int, int], ...] = ()  # [start, stop) point ranges of each hand (left first)

    @property
    def width(self) -> int:
        return self.points * self.dims


def _swap(order: np.ndarray, a: Sequence[int], b: Sequence[int]) -> None:
    a, b = list(a), list(b)
    order[a], order[b] = b, a


def keypoint_layout(width: int) -> Optional[Layout]:
    """How to read a keypoint frame of this width; None where it is not points we can read."""
    if width == MEDIAPIPE_WIDTH:
        order = np.arange(78)
        for a, b in _POSE_PAIRS:
            order[a], order[b] = b, a
        _swap(order, range(25, 46), range(46, 67))
        return Layout("mediapipe-78x2", 78, 2, (_LEFT_SHOULDER, _RIGHT_SHOULDER), order, ((25, 46), (46, 67)))
    for dims in (2, 3):
        if width == 2 * _HAND * dims:  # 84, 126: left hand then right hand
            order = np.arange(2 * _HAND)
            _swap(order, range(0, _HAND), range(_HAND, 2 * _HAND))
            return Layout(f"two-hands-42x{dims}", 2 * _HAND, dims, None, order, ((0, _HAND), (_HAND, 2 * _HAND)))
        if width == _HAND * dims:  # 42, 63: one hand
            return Layout(f"one-hand-21x{dims}", _HAND, dims, None, np.arange(_HAND), ((0, _HAND),))
    if width % 2 == 0 and width > 0:
        return Layout(f"points-{width // 2}x2", width // 2, 2, None, np.arange(width // 2))
    return None


def declared_layout(declared: dict, width: int, source: Path | str = "") -> Layout:
    """The Layout a layout file declares (`slr.data.layout_file.check_declaration`), for clips
    ``width`` values wide; a DataError naming ``source`` where the two disagree."""
    points = declaration_points(declared, width, source)
    order = np.arange(points)
    for a, b in declared["mirror_pairs"]:
        order[a], order[b] = b, a
    hands = tuple((int(start), int(stop)) for start, stop in declared["hands"])
    if len(hands) == 2:
        _swap(order, range(*hands[0]), range(*hands[1]))
    shoulders = declared.get("shoulders")
    return Layout(str(declared.get("name") or f"declared-{points}x{declared['dims']}"), points, declared["dims"],
                  tuple(shoulders) if shoulders else None, order, hands)


def clip_layout(width: int, declared: Optional[dict[str, Any]] = None) -> Optional[Layout]:
    """The layout keypoint clips of this width are read with: a layout file's declaration where
    there is one, else what the width says."""
    return declared_layout(declared, width) if declared is not None else keypoint_layout(width)


def _detected(pts: np.ndarray) -> np.ndarray:
    """[T, P] bool from [T, P, dims] points: True where any coordinate is non-zero."""
    detected = pts[..., 0] != 0
    for k in range(1, pts.shape[-1]):
        detected |= pts[..., k] != 0
    return detected


def detected_points(x: np.ndarray, layout: Layout) -> np.ndarray:
    """[T, P] bool: True where a point was detected (any of its coordinates is non-zero)."""
    return _detected(x.reshape(x.shape[0], layout.points, layout.dims))


def _motion_weights(pts: np.ndarray, detected: np.ndarray) -> Optional[np.ndarray]:
    """[P] weights summing to 1: each point's spread over the frames in which it is seen (std of x
    plus std of y); None where nothing moves. Points that stay still while the signer signs (legs,
    hips, a resting body) then move the clip's centre and scale no more than they move."""
    count = detected.sum(axis=0)  # [P]
    seen = detected[..., None]
    mean = (pts[..., :2] * seen).sum(axis=0) / np.maximum(count, 1)[:, None]
    var = (((pts[..., :2] - mean) ** 2) * seen).sum(axis=0) / np.maximum(count, 1)[:, None]
    motion = np.sqrt(var).sum(axis=-1) * (count >= 2)
    total = float(motion.sum())
    return motion / total if total > 1e-9 else None


def _centre_and_scale(pts: np.ndarray, detected: np.ndarray, layout: Layout,
                      weighting: str = "equal") -> tuple[np.ndarray, float]:
    """The clip's centre (x, y) and scale: shoulders where seen, else the detected points (each
    point counting equally, or by how much it moves: `weighting` "motion").

    Computed in float64: the squares of float32 coordinates beyond ~1e19 overflow float32, which
    made the scale infinite and silently zeroed the whole clip. (Clips whose values are that large
    are refused when read, `slr.data.clip_limits`; this keeps the arithmetic right up to there.)
    """
    pts = pts.astype(np.float64, copy=False)
    if layout.shoulders is not None:
        a, b = layout.shoulders
        both = detected[:, a] & detected[:, b]
        seen = int(both.sum())
        if seen:
            left, right = pts[:, a, :2], pts[:, b, :2]
            if seen < len(both):
                left, right = left[both], right[both]
            width = float(np.sqrt(((left - right) ** 2).sum(axis=-1)).mean())
            if width > 1e-6:
                return (left + right).mean(axis=0) / 2, width
    weights = _motion_weights(pts, detected) if weighting == "motion" else None
    if weights is not None:
        count = np.maximum(detected.sum(axis=0), 1)
        point_means = (pts[..., :2] * detected[..., None]).sum(axis=0) / count[:, None]  # [P, 2]
        centre = (point_means * weights[:, None]).sum(axis=0)
        squared = (((pts[..., :2] - centre) ** 2).sum(axis=-1) * detected).sum(axis=0) / count  # [P]
        spread = float(np.sqrt((squared * weights).sum()))
        return centre, spread if spread > 1e-6 else 1.0
    seen_pts = pts[detected][:, :2]
    centre = seen_pts.mean(axis=0)
    spread = float(np.sqrt(((seen_pts - centre) ** 2).sum(axis=-1).mean()))
    return centre, spread if spread > 1e-6 else 1.0


def _normalize_points(pts: np.ndarray, detected: np.ndarray, layout: Layout, weighting: str = "equal") -> np.ndarray:
    """Centred and scaled points; undetected points come out as zeros."""
    if not detected.any():
        return pts * detected[..., None]
    centre, scale = _centre_and_scale(pts, detected, layout, weighting)
    origin = np.zeros(layout.dims, np.float32)
    origin[:2] = centre  # z (if any) is scaled, not centred
    out = pts - origin
    out *= (detected * np.float32(1.0 / scale))[..., None]  # undetected points: zero
    out += 0.0  # and +0.0, not -0.0
    return out


def normalize_clip(x: np.ndarray, layout: Layout, weighting: str = "equal") -> np.ndarray:
    """Centre on the shoulders' midpoint and scale by shoulder width; without a body, on the detected
    points (`weighting`: each equally, or "motion": by how much each moves).

    Undetected points (all zeros) stay zeros; a clip with nothing detected is returned as it is.
    """
    x = np.asarray(x, dtype=np.float32)
    pts = x.reshape(x.shape[0], layout.points, layout.dims)
    return _normalize_points(pts, _detected(pts), layout, weighting).astype(np.float32, copy=False).reshape(x.shape)


def _mirror_points(pts: np.ndarray, detected: np.ndarray, layout: Layout, centred: bool) -> tuple[np.ndarray, np.ndarray]:
    """Flip x (about 0 when centred, else about 0.5 of the image) and swap left/right points."""
    flipped = pts.copy()
    flipped[..., 0] = -pts[..., 0] if centred else 1.0 - pts[..., 0]
    order = layout.mirror_order
    return flipped[:, order], detected[:, order]


def mirror_clip(x: np.ndarray, layout: Layout, centred: bool = True) -> np.ndarray:
    """A left/right mirror of the clip: x flipped, hands (and left/right body points) swapped."""
    x = np.asarray(x, dtype=np.float32)
    pts = x.reshape(x.shape[0], layout.points, layout.dims)
    out, detected = _mirror_points(pts, _detected(pts), layout, centred)
    return (out * detected[..., None] + 0.0).astype(np.float32, copy=False).reshape(x.shape)


def _affine_points(pts: np.ndarray, s: AugmentSettings, rng: np.random.Generator, centred: bool) -> np.ndarray:
    """One random rotation (in the image plane), scale and shift for the whole clip."""
    angle = np.deg2rad(rng.uniform(-s.rotate_deg, s.rotate_deg))
    scale = rng.uniform(1 - s.scale_jitter, 1 + s.scale_jitter)
    shift = rng.uniform(-s.shift, s.shift, size=2)
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]], dtype=np.float32) * scale
    shear = getattr(s, "shear", 0.0)
    if shear:  # a camera seen a little from the side: x leans with y, and y with x
        kx, ky = rng.uniform(-shear, shear, size=2)
        rot = rot @ np.array([[1.0, kx], [ky, 1.0]], dtype=np.float32)
    origin = np.zeros(2, np.float32) if centred else np.full(2, 0.5, np.float32)
    out = pts * np.float32(scale)  # z (if any) scales with x and y
    out[..., :2] = (pts[..., :2] - origin) @ rot.T + origin + shift
    return out


def _change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play the clip `factor` times as fast (nearest frames, so no point is blended with a missing one)."""
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


#: Settings that act on keypoints one by one (read through a layout), and their "off" value.
_POINT_OPTIONS = {"mirror_prob": 0.0, "rotate_deg": 0.0, "scale_jitter": 0.0, "shift": 0.0, "shear": 0.0,
                  "noise_std": 0.0, "hand_drop_prob": 0.0, "point_drop_prob": 0.0, "hand_centred": False}


def _affine_augment(settings: AugmentSettings) -> bool:
    return bool(settings.rotate_deg or settings.scale_jitter or settings.shift or settings.shear)


def _spatial_augment(settings: AugmentSettings) -> bool:
    """Any augmentation that moves or hides points (the table of inert_options, less hand centring,
    which is not an augmentation: it applies in prediction too)."""
    return any(getattr(settings, name) != off for name, off in _POINT_OPTIONS.items() if name != "hand_centred")


def _drop_hand(detected: np.ndarray, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """Mark one hand undetected for the whole clip, as when it leaves the picture; only where the
    other hand is seen too, so a one-handed clip keeps its only hand."""
    seen = [h for h in layout.hands if detected[:, h[0] : h[1]].any()]
    if len(seen) < 2:
        return detected
    start, stop = seen[int(rng.integers(len(seen)))]
    detected = detected.copy()
    detected[:, start:stop] = False
    return detected


def _left_hand_leads(pts: np.ndarray, detected: np.ndarray, layout: Layout) -> bool:
    """True where the clip's left hand moves more than its right (summed point displacement between
    consecutive frames in which the point is seen): the signing hand is the one that moves, and a
    hand never seen does not move. Layouts with other than two hands: False."""
    if len(layout.hands) != 2:
        return False
    activity = []
    for start, stop in layout.hands:
        hand = pts[:, start:stop, :2].astype(np.float64)
        both = detected[1:, start:stop] & detected[:-1, start:stop]
        steps = np.sqrt(((hand[1:] - hand[:-1]) ** 2).sum(-1))
        activity.append(float((steps * both).sum()))
    return activity[0] > activity[1]


def mirrors_left_handed(choice: str, layout: Layout) -> bool:
    """Whether `--mirror-left-handed CHOICE` mirrors clips of this layout. `auto`: two hands and no
    body. With a body (the 156 layout: words, not letters), which hand moves more changes from clip
    to clip of the same two-handed sign (asl-words: 3 of 15 words split about half and half), so a
    mirror there would scatter one sign over two pictures."""
    if len(layout.hands) != 2 or choice == "off":
        return False
    return choice == "on" or layout.shoulders is None


def inert_options(settings: AugmentSettings, input_kind: str, layout: Optional[Layout]) -> list[tuple[str, str]]:
    """(setting, why) for each option set away from off that changes nothing in these clips, so a
    run can say so instead of silently training without it."""
    wanted = [name for name, off in _POINT_OPTIONS.items() if getattr(settings, name, off) != off]
    if settings.mirror_left_handed == "on":
        wanted.append("mirror_left_handed")
    if input_kind != "keypoints":
        return [(name, "it acts on keypoints, and these clips are features") for name in wanted]
    inert = []
    if "feature_mirror_prob" in settings.model_fields_set and settings.feature_mirror_prob > 0:
        inert.append(("feature_mirror_prob", "it swaps in mirrored features, and these clips are keypoints"))
    if layout is None:
        return inert + [(name, f"the clips' layout is not known from their width (declare it: "
                               f"{setting('keypoint_layout')})") for name in wanted]
    for name in wanted:
        if name in ("hand_drop_prob", "mirror_left_handed") and len(layout.hands) != 2:
            has = {0: "none", 1: "one"}.get(len(layout.hands), str(len(layout.hands)))
            inert.append((name, f"it needs two hands; this layout has {has}"))
        elif name == "hand_centred" and not layout.hands:
            inert.append((name, "this layout has no hands"))
    return inert


def _hand_centred(pts: np.ndarray, detected: np.ndarray, layout: Layout) -> np.ndarray:
    """Each hand on its own: centred on where its wrist was over the clip and scaled by its own size
    (mean wrist to middle-finger knuckle distance), so the hand's shape and motion no longer carry
    where the signer stood or how big their hand looks. The rest of the points are left as they are."""
    out = pts.copy()
    for start, stop in layout.hands:
        seen = detected[:, start:stop]
        wrist_seen = seen[:, 0]
        if not wrist_seen.any():
            continue
        hand = pts[:, start:stop]
        centre = hand[wrist_seen, 0, :2].mean(axis=0)
        both = wrist_seen & seen[:, 9]
        size = float(np.sqrt(((hand[both, 9, :2] - hand[both, 0, :2]) ** 2).sum(-1)).mean()) if both.any() else 0.0
        size = size if size > 1e-6 else 1.0
        moved = hand.copy()
        moved[..., :2] -= centre
        out[:, start:stop] = moved / np.float32(size)
    return out * detected[..., None]



def build_transform(settings: AugmentSettings, input_kind: str, width: int, train: bool,
                    declared: Optional[dict[str, Any]] = None) -> Optional[Transform]:
    """The clip transform for one split: normalisation always (keypoints), augmentation in training.

    `transform(x [T, D] float32, rng) -> [T', D] float32`; the same rng gives the same result.
    `declared`: a layout file's declaration (read by the caller, from the file or a checkpoint),
    used instead of the layout the width implies.
    """
    layout = clip_layout(width, declared) if input_kind == "keypoints" else None
    normalize = settings.normalize and layout is not None
    augment = train and settings.augment
    spatial = augment and layout is not None and _spatial_augment(settings)
    temporal = augment and bool(settings.speed_jitter or settings.frame_dropout or settings.time_mask)
    channels = augment and input_kind != "keypoints" and bool(settings.feature_dropout)
    hands = bool(settings.hand_centred) and layout is not None and bool(layout.hands)
    to_right = layout is not None and mirrors_left_handed(settings.mirror_left_handed, layout)
    if not normalize and not spatial and not temporal and not channels and not hands and not to_right:
        return None

    def transform(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if normalize or spatial or hands or to_right:
            pts = x.reshape(x.shape[0], layout.points, layout.dims)
            detected = _detected(pts)
            if normalize:
                pts = _normalize_points(pts, detected, layout, settings.normalize_weighting)
            if to_right and _left_hand_leads(pts, detected, layout):
                # the same in training and prediction: a left-handed signer's letters are then
                # seen as the right-handed signers' mirror images, which is what they are
                pts, detected = _mirror_points(pts, detected, layout, centred=normalize)
                pts = pts * detected[..., None] + 0.0
            if hands:
                pts = _hand_centred(pts, detected, layout)
            if spatial:
                if settings.mirror_prob and rng.random() < settings.mirror_prob:
                    pts, detected = _mirror_points(pts, detected, layout, centred=normalize)
                if _affine_augment(settings):
                    pts = _affine_points(pts, settings, rng, centred=normalize)
                if settings.hand_drop_prob and layout.hands and rng.random() < settings.hand_drop_prob:
                    detected = _drop_hand(detected, layout, rng)
                if settings.point_drop_prob:
                    detected = detected & (rng.random(detected.shape) >= settings.point_drop_prob)
                if settings.noise_std:
                    # in the clip's normalised units (shoulder widths, or the points' spread)
                    pts = pts + rng.normal(0.0, settings.noise_std, pts.shape).astype(np.float32)
                pts = pts * detected[..., None] + 0.0  # undetected points back to exactly +0.0
            x = pts.astype(np.float32, copy=False).reshape(x.shape)
        if temporal:
            if settings.speed_jitter:
                x = _change_speed(x, rng.uniform(1 - settings.speed_jitter, 1 + settings.speed_jitter))
            if settings.frame_dropout:
                x = _drop_frames(x, settings.frame_dropout, rng)
            if settings.time_mask:
                x = _mask_span(x, settings.time_mask, rng)
        if channels:  # the same feature channels are lost in every frame of the clip
            x = x * (rng.random(x.shape[1]) >= settings.feature_dropout).astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    return transform
