"""Where MediaPipe Holistic's landmarks go in the 78-point (156-value) FSL-105 layout.

The layout itself (78 points x (x, y): pose 0-24, left hand 25-45, right hand 46-66, face 67-77)
is the one `slr.data.augment` reads; the blocks below are checked against it at import, so the
extractor and the augmentation can never disagree on which points are which.

"Left" and "right" are Holistic's `left_hand_landmarks` / `right_hand_landmarks`: the person's own
left and right hand as seen in the unmirrored video (a signer's right hand appears on the left of
the image), which is what the original FSL-105 preprocessing stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from slr.data.augment import MEDIAPIPE_WIDTH, keypoint_layout

#: Pose landmarks kept: the upper body, 0-24 of MediaPipe Pose's 33 (legs 25-32 dropped).
POSE_POINTS = tuple(range(25))
HAND_POINTS = 21
#: Face-mesh landmarks kept, in the original's order: nose tip, eye corners (outer, inner),
#: mouth corners, inner brows, chin, nose base.
FACE_POINTS = (1, 33, 263, 133, 362, 61, 291, 105, 334, 199, 4)


@dataclass(frozen=True)
class Block:
    name: str  # the part of Holistic's result it comes from
    start: int  # first point of the block in the 78-point layout
    size: int


BLOCKS = (
    Block("pose", 0, len(POSE_POINTS)),
    Block("left_hand", 25, HAND_POINTS),
    Block("right_hand", 46, HAND_POINTS),
    Block("face", 67, len(FACE_POINTS)),
)
POINTS = sum(b.size for b in BLOCKS)
WIDTH = 2 * POINTS
LAYOUT = keypoint_layout(MEDIAPIPE_WIDTH)
ORDER = "pose25,left_hand21,right_hand21,face11"  # as the original files' meta spells it


def block(name: str) -> Block:
    return next(b for b in BLOCKS if b.name == name)


def _agrees_with_augment() -> bool:
    left, right = block("left_hand"), block("right_hand")
    mirror = LAYOUT.mirror_order
    hands_swap = all(mirror[left.start + i] == right.start + i for i in range(HAND_POINTS))
    return (
        LAYOUT.width == WIDTH
        and LAYOUT.points == POINTS
        and hands_swap
        and all(p < block("pose").size for p in LAYOUT.shoulders)
    )


assert _agrees_with_augment(), "slr.extract.layout disagrees with slr.data.augment's 156 layout"
