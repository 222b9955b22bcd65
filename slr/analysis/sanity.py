"""Signals that say when an answer should not be trusted: shared by predict, evaluate and live.

A model always answers, also for a video in which no hand was found or a sign it never learnt
(softmax has no "none of these"). Three things a user can check cheaply say more:

- how often the pose and each hand were found (a clip in the 78-point layout stores an undetected
  point as 0, so this is read from the keypoints themselves, for .npz clips and videos alike);
- whether the top probability is below `uncertain_below` (docs/predicting.md says how its default
  was measured);
- whether the category head agrees with the category the classes file gives the top gloss: the
  two heads are trained apart, and a disagreement is a second, independent doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from slr.analysis.classes import ClassNames
from slr.errors import setting
from slr.extract import layout

#: The parts whose detection is reported (the face is often absent on purpose: pixelated, masked).
PARTS = ("pose", "left_hand", "right_hand")
_HANDS = ("left_hand", "right_hand")


def detection_shares(keypoints: Optional[np.ndarray]) -> Optional[dict[str, float]]:
    """Share of frames in which the pose and each hand were found, for a clip in the 78-point layout
    (`[T, 156]`); None for other layouts and for features, where nothing says which value is which."""
    if keypoints is None or keypoints.ndim != 2 or keypoints.shape[1] != layout.WIDTH or not len(keypoints):
        return None
    points = np.asarray(keypoints).reshape(len(keypoints), layout.POINTS, 2)
    found = (points != 0).any(axis=2)  # [T, 78]: an undetected point is (0, 0), the layout's convention
    return {b.name: float(found[:, b.start:b.start + b.size].any(axis=1).mean()) for b in layout.BLOCKS
            if b.name in PARTS}


def no_hand(detection: Optional[dict[str, float]]) -> bool:
    """No hand found in any frame: whatever the model says, it did not see a sign."""
    return detection is not None and all(detection[h] == 0 for h in _HANDS)


@dataclass
class Sanity:
    """What to doubt about one answer."""

    detection: Optional[dict[str, float]]  # share of frames with each of PARTS found; None: not known
    uncertain: bool  # the top probability is below the threshold
    threshold: float
    top_prob: float
    gloss_category: Optional[tuple[int, str]]  # the top gloss's category in the classes file
    category: Optional[tuple[int, str, float]]  # the category head's answer (None: one category)

    @property
    def no_hand(self) -> bool:
        return no_hand(self.detection)

    @property
    def category_disagrees(self) -> bool:
        return (self.gloss_category is not None and self.category is not None
                and self.gloss_category[0] != self.category[0])

    def notes(self, gloss_name: str) -> list[str]:
        """The doubts in words, most serious first (settings as references the console spells)."""
        notes = []
        if self.no_hand:
            notes.append("no hand was found in any frame: the answer is not about a sign")
        if self.uncertain:
            notes.append(f"uncertain: {gloss_name} has {100 * self.top_prob:.1f}%, below "
                         f"{setting('uncertain_below', self.threshold)}")
        if self.category_disagrees:
            assert self.gloss_category is not None and self.category is not None
            notes.append(f"the category head says {self.category[1]} ({100 * self.category[2]:.1f}%), but "
                         f"{gloss_name} is in {self.gloss_category[1]}")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "detection": self.detection,
            "no_hand": self.no_hand,
            "uncertain": self.uncertain,
            "uncertain_below": self.threshold,
            "gloss_category": (None if self.gloss_category is None
                               else {"id": self.gloss_category[0], "name": self.gloss_category[1]}),
            "category_disagrees": self.category_disagrees,
        }


def judge(top_gloss: tuple[int, str, float], category: Optional[tuple[int, str, float]], names: ClassNames,
          threshold: float, detection: Optional[dict[str, float]]) -> Sanity:
    """The doubts about one answer: its top gloss (id, name, prob) and the category head's (id, name, prob)."""
    return Sanity(detection=detection, uncertain=top_gloss[2] < threshold, threshold=threshold,
                  top_prob=top_gloss[2], gloss_category=names.category_of(top_gloss[0]), category=category)


@dataclass
class SanitySummary:
    """`slr evaluate`'s view of the same signals over labelled clips: how often each fires, and how
    right the answers are when it does (which is what makes a threshold worth trusting)."""

    threshold: float
    uncertain: int
    uncertain_correct: int
    certain: int
    certain_correct: int
    category_checked: int  # clips whose top gloss has a category in the classes file
    category_disagree: int
    category_disagree_correct: int  # of those, how many top glosses were right
    no_hand_clips: list[str]  # clips in which no hand was found in any frame
    detection_known: int  # clips in the 78-point layout (detection could be read)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uncertain_below": self.threshold,
            "uncertain": {"clips": self.uncertain, "gloss_correct": self.uncertain_correct},
            "certain": {"clips": self.certain, "gloss_correct": self.certain_correct},
            "category_disagrees": {"checked": self.category_checked, "clips": self.category_disagree,
                                   "gloss_correct": self.category_disagree_correct},
            "no_hand": {"checked": self.detection_known, "clips": self.no_hand_clips},
        }


def summarise(gloss_probs: np.ndarray, cat_probs: np.ndarray, gloss_true: np.ndarray, names: ClassNames,
              threshold: float, clips: list[str], detections: list[Optional[dict[str, float]]]) -> SanitySummary:
    """The signals over every clip: `gloss_probs [N, G]`, `cat_probs [N, C]`, true gloss ids, and
    each clip's detection shares (None where unknown)."""
    top = gloss_probs.argmax(axis=1)
    correct = top == gloss_true
    uncertain = gloss_probs.max(axis=1) < threshold
    cat_pred = cat_probs.argmax(axis=1)
    filed = [names.category_of(int(g)) for g in top]
    checked = np.array([f is not None for f in filed])
    disagree = np.array([f is not None and f[0] != int(c) for f, c in zip(filed, cat_pred)])
    return SanitySummary(
        threshold=threshold,
        uncertain=int(uncertain.sum()),
        uncertain_correct=int((uncertain & correct).sum()),
        certain=int((~uncertain).sum()),
        certain_correct=int((~uncertain & correct).sum()),
        category_checked=int(checked.sum()),
        category_disagree=int(disagree.sum()),
        category_disagree_correct=int((disagree & correct).sum()),
        no_hand_clips=[clip for clip, d in zip(clips, detections) if no_hand(d)],
        detection_known=sum(d is not None for d in detections),
    )


def summarise_scored(scored: Any, threshold: float, limits: Any = None) -> SanitySummary:
    """`summarise` over `slr evaluate`'s scored clips (slr.analysis.evaluate.ScoredClips); the
    detection shares come from the clips' own keypoints where they are in the 78-point layout."""
    from slr.data.clips import read_clip
    from slr.errors import DataError

    loaded = scored.loaded
    detections: list[Optional[dict[str, float]]] = [None] * scored.count
    if loaded.input_kind == "keypoints" and loaded.input_dim == layout.WIDTH:
        for i, name in enumerate(scored.clips):
            path = scored.directory / (name if str(name).endswith(".npz") else f"{name}.npz")
            try:  # already read once to be scored: this cannot fail unless the file changed meanwhile
                detections[i] = detection_shares(read_clip(path, loaded.key, None, layout.WIDTH, limits))
            except DataError:
                continue
    return summarise(scored.gloss_probs, scored.cat_probs, scored.gloss, scored.names, threshold,
                     [str(c) for c in scored.clips], detections)
