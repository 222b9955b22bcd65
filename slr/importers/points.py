"""The points an import keeps, in which order, and the layout declaration that says so (layout.json).

Two families of sources:

- MediaPipe Holistic (GISLR parquet, MediaPipe npy folders, Holistic `.pose` files): kept in the
  FSL-105 order of the training guide (slr/extract/layout.py): pose 0-24, left hand 25-45, right hand
  46-66, and 11 face-mesh points 67-77, so that the default import of any of them is the `[T, 156]`
  layout slr knows from its width. `--parts` keeps fewer blocks, `--dims 3` keeps z.
- OpenPose (per-frame JSON, OpenPose `.pose` files): BODY_25, left hand 21, right hand 21 (OpenPose's
  hand has MediaPipe's 21 points in the same order, wrist first), and with `--parts ...,face` the 70
  face points.

A block is always kept whole, even when a source lacks it (the 258-value npy files have no face): its
points are then not found in every frame, and every clip of a folder keeps one width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from slr.errors import ConfigError, setting
from slr.extract.layout import FACE_POINTS, POSE_POINTS

#: MediaPipe Pose's 33 landmarks, in its order.
MEDIAPIPE_POSE = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
)
#: MediaPipe Hands' 21 landmarks (OpenPose's hand has the same points in the same order).
MEDIAPIPE_HAND = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
    "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
    "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP", "PINKY_MCP",
    "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
#: Source part sizes of MediaPipe Holistic (the face mesh has 478 points with refined irises).
HOLISTIC_SIZES = {"pose": 33, "face": 478, "left_hand": 21, "right_hand": 21}
#: OpenPose BODY_25, in its order.
OPENPOSE_BODY_25 = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel",
    "RBigToe", "RSmallToe", "RHeel",
)
OPENPOSE_SIZES = {"pose": 25, "face": 70, "left_hand": 21, "right_hand": 21}

PARTS = ("pose", "left_hand", "right_hand", "face")  # blocks in the order they are kept
DEFAULT_PARTS = {"holistic": ("pose", "left_hand", "right_hand", "face"), "openpose": ("pose", "left_hand", "right_hand")}


@dataclass(frozen=True)
class Block:
    part: str  # pose, left_hand, right_hand, face
    source_index: tuple[int, ...]  # the source part's points kept, in order
    names: tuple[str, ...]


@dataclass(frozen=True)
class KeptPoints:
    """The points an import writes into each clip, and their layout."""

    family: str  # holistic or openpose
    blocks: tuple[Block, ...]
    dims: int

    @property
    def points(self) -> int:
        return sum(len(b.source_index) for b in self.blocks)

    @property
    def width(self) -> int:
        return self.points * self.dims

    @property
    def names(self) -> list[str]:
        return [f"{b.part}.{n}" for b in self.blocks for n in b.names]

    @property
    def parts(self) -> list[str]:
        return [b.part for b in self.blocks]

    def start(self, part: str) -> Optional[int]:
        at = 0
        for b in self.blocks:
            if b.part == part:
                return at
            at += len(b.source_index)
        return None

    @property
    def name(self) -> str:
        if self.family == "holistic" and self.parts == list(PARTS) and self.dims == 2:
            return "mediapipe-78x2"  # the FSL-105 layout, as slr.data.augment names it
        return f"{self.family}-{'+'.join(self.parts)}-{self.points}x{self.dims}"

    def declaration(self) -> dict[str, Any]:
        """layout.json: what `--keypoint-layout` takes (slr/data/layout_file.py)."""
        pairs: list[list[int]] = []
        pose = self.start("pose")
        block_pairs = _HOLISTIC_PAIRS if self.family == "holistic" else _OPENPOSE_PAIRS
        for part in ("pose", "face"):
            start = self.start(part)
            if start is None:
                continue
            kept = next(b for b in self.blocks if b.part == part).source_index
            where = {s: start + i for i, s in enumerate(kept)}
            pairs += [[where[a], where[b]] for a, b in block_pairs.get(part, ()) if a in where and b in where]
        # a mirror swaps two declared hands whole; one hand alone stays where it is
        hands = [[s, s + 21] for s in (self.start("left_hand"), self.start("right_hand")) if s is not None]
        declared: dict[str, Any] = {"name": self.name, "dims": self.dims, "points": self.points,
                                    "point_names": self.names, "mirror_pairs": pairs, "hands": hands}
        if pose is not None:
            left, right = _SHOULDERS[self.family]
            declared["shoulders"] = [pose + left, pose + right]
        return declared


# left/right pairs within a source part (source indices), that a mirror swaps
_HOLISTIC_PAIRS = {
    "pose": ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
             (23, 24)),
    # face-mesh points of the 11 kept: eye corners outer and inner, mouth corners, inner brows
    "face": ((33, 263), (133, 362), (61, 291), (105, 334)),
}
_OPENPOSE_PAIRS = {
    "pose": ((5, 2), (6, 3), (7, 4), (12, 9), (13, 10), (14, 11), (16, 15), (18, 17), (19, 22), (20, 23), (21, 24)),
}
_SHOULDERS = {"holistic": (11, 12), "openpose": (5, 2)}  # (left, right), within the pose block


def parse_parts(text: str) -> Optional[tuple[str, ...]]:
    """`--parts`: None for auto (each family's default), else the blocks named, in the kept order."""
    words = [w.strip() for w in text.replace(" ", ",").split(",") if w.strip()]
    if words == ["auto"]:
        return None
    expanded = []
    for word in words:
        if word == "hands":
            expanded += ["left_hand", "right_hand"]
        elif word in PARTS:
            expanded.append(word)
        else:
            raise ConfigError(f"{setting('parts')}: unknown part {word!r}; parts are auto, or some of "
                              f"{', '.join(PARTS)} (hands = both hands)")
    if not expanded:
        raise ConfigError(f"{setting('parts')}: no part named; e.g. pose,hands,face")
    return tuple(p for p in PARTS if p in expanded)


def kept_points(family: str, parts: Optional[tuple[str, ...]], dims: int) -> KeptPoints:
    parts = parts or DEFAULT_PARTS[family]
    if family == "openpose" and dims == 3:
        raise ConfigError(f"{setting('dims', 3)}: OpenPose keypoints are 2-D (x, y); use {setting('dims', 2)}")
    blocks = []
    for part in parts:
        if family == "holistic":
            if part == "pose":
                index = tuple(POSE_POINTS)
                names = tuple(MEDIAPIPE_POSE[i] for i in index)
            elif part == "face":
                index = tuple(FACE_POINTS)
                names = tuple(str(i) for i in index)
            else:
                index, names = tuple(range(21)), MEDIAPIPE_HAND
        else:
            index = tuple(range(OPENPOSE_SIZES[part]))
            names = (OPENPOSE_BODY_25 if part == "pose" else MEDIAPIPE_HAND if part.endswith("hand")
                     else tuple(f"face_{i}" for i in index))
        blocks.append(Block(part, index, names))
    return KeptPoints(family, tuple(blocks), dims)


def select(kept: KeptPoints, parts: dict[str, np.ndarray], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's `X` [T, points x dims] (0 where not found, slr's convention) and `mask` [T, points]
    (True where found) from the source's parts ([T, n, >=dims], NaN where not found)."""
    out = np.full((frames, kept.points, kept.dims), np.nan, np.float32)
    at = 0
    for block in kept.blocks:
        source = parts.get(block.part)
        if source is not None:
            index = np.asarray(block.source_index)
            present = np.flatnonzero(index < source.shape[1])  # e.g. the 468-point face has no irises
            width = min(kept.dims, source.shape[2])
            out[:, at + present, :width] = source[:, index[present], :width]
        at += len(block.source_index)
    found = np.isfinite(out[..., 0]) & np.isfinite(out[..., 1])
    out[~found] = 0.0
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # a found point's missing z
    return out.reshape(frames, kept.width), found
