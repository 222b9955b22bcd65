"""Learnable synthetic clips, in memory or written in the real on-disk format.

Each gloss is its own smooth trajectory of every keypoint coordinate (a sinusoid with
gloss-specific base, amplitude, frequency and phase) sampled over the clip's normalised time, so
clips of any length show the same sign; each clip adds its own noise. Features (`X2048`) are a
fixed random projection of the keypoints (ReLU'd like CNN pooled outputs) plus noise, so models
can learn from them too. Categories are `gloss % num_cat` unless a mapping is given.

What a gloss looks like depends only on `class_seed`, never on `seed`: two calls with different
seeds give a train and a validation split of the same classes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from slr.data.clips import MIRROR_SUFFIX

#: A fixed stream id for the feature projection, apart from the per-gloss streams.
_PROJECTION_STREAM = 1_000_003


@dataclass
class SyntheticClips:
    """Clips in memory: `x` keypoints `[T, kp_dim]`, `features` `[T, feature_dim]` (or None)."""

    x: list[np.ndarray]
    features: Optional[list[np.ndarray]]
    gloss: np.ndarray
    cat: np.ndarray
    names: list[str]  # file stems: clip_0001_<gloss name>
    #: the features of the same frames mirrored left to right (or None), as a CNN would see a flipped video
    features_mirror: Optional[list[np.ndarray]] = None

    def __len__(self) -> int:
        return len(self.x)

    def group_columns(self) -> dict[str, list[str]]:
        """Extra labels.csv columns (name -> one value per clip); none for these clips."""
        return {}


def _gloss_pattern(gloss: int, kp_dim: int, class_seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([class_seed, gloss])
    base = rng.uniform(0.25, 0.75, kp_dim)
    amplitude = rng.uniform(0.05, 0.2, kp_dim)
    frequency = rng.uniform(0.5, 3.0, kp_dim)  # cycles per clip
    phase = rng.uniform(0, 2 * np.pi, kp_dim)
    return base, amplitude, frequency, phase


def gloss_trajectory(gloss: int, frames: int, kp_dim: int = 156, class_seed: int = 0) -> np.ndarray:
    """The noise-free keypoints `[frames, kp_dim]` of one gloss (values in about [0, 1])."""
    base, amplitude, frequency, phase = _gloss_pattern(gloss, kp_dim, class_seed)
    t = np.linspace(0.0, 1.0, frames)[:, None]
    return (base + amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def feature_projection(kp_dim: int, feature_dim: int, class_seed: int = 0) -> np.ndarray:
    """The fixed `[kp_dim, feature_dim]` matrix that turns keypoints into synthetic features."""
    rng = np.random.default_rng([class_seed, _PROJECTION_STREAM])
    return (rng.standard_normal((kp_dim, feature_dim)) * (4.0 / np.sqrt(kp_dim))).astype(np.float32)


def make_synthetic_clips(
    num_clips: int = 40,
    *,
    num_gloss: int = 5,
    num_cat: int = 2,
    categories: Optional[Sequence[int]] = None,
    kp_dim: int = 156,
    feature_dim: int = 2048,
    with_features: bool = True,
    min_frames: int = 8,
    max_frames: int = 24,
    noise: float = 0.05,
    seed: int = 0,
    class_seed: int = 0,
    gloss_names: Optional[Sequence[str]] = None,
) -> SyntheticClips:
    """`num_clips` clips, the glosses as balanced as the count allows, in shuffled order.

    `categories[g]` is gloss g's category (default g % num_cat); `gloss_names[g]` its name in the
    file names (default `gloss <g>`).
    """
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    cat_of = np.asarray(categories if categories is not None else np.arange(num_gloss) % num_cat, dtype=np.int64)
    if len(cat_of) != num_gloss:
        raise ValueError(f"categories has {len(cat_of)} entries for {num_gloss} glosses")
    names = list(gloss_names) if gloss_names is not None else [f"gloss {g}" for g in range(num_gloss)]

    rng = np.random.default_rng(seed)
    gloss = rng.permutation(np.arange(num_clips) % num_gloss).astype(np.int64)
    lengths = rng.integers(min_frames, max_frames + 1, num_clips)

    clips = []
    for g, frames in zip(gloss, lengths):
        x = gloss_trajectory(int(g), int(frames), kp_dim, class_seed)
        x += noise * rng.standard_normal(x.shape, dtype=np.float32)
        clips.append(x)
    features = None
    if with_features:
        # One projection over all frames at once: far faster than one small product per clip.
        projection = feature_projection(kp_dim, feature_dim, class_seed)
        stacked = np.maximum((np.concatenate(clips) - 0.5) @ projection, 0.0)
        stacked += noise * rng.standard_normal(stacked.shape, dtype=np.float32)
        features = np.split(stacked, np.cumsum(lengths)[:-1])
    return SyntheticClips(
        x=clips,
        features=features,
        gloss=gloss,
        cat=cat_of[gloss],
        names=[f"clip_{i + 1:04d}_{names[g]}" for i, g in enumerate(gloss)],
    )


def write_clips(directory: Path, clips: SyntheticClips, *, kp_key: str = "X", feature_key: str = "X2048") -> Path:
    """Write clips as the real data is laid out: one `<name>.npz` each, and labels.csv."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(clips.names):
        arrays = {kp_key: clips.x[i]}
        if clips.features is not None:
            arrays[feature_key] = clips.features[i]
        if clips.features_mirror is not None:
            arrays[feature_key + MIRROR_SUFFIX] = clips.features_mirror[i]
        np.savez(directory / f"{name}.npz", **arrays)  # uncompressed: fast to write and to read
    # Who signed, and with which hand, where known: `slr split --group-by signer` and
    # `slr evaluate --group-by signer|hand` read these columns as they would a real data set's.
    extra = clips.group_columns()
    with open(directory / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "gloss", "cat", *extra])
        writer.writerows(zip(clips.names, clips.gloss.tolist(), clips.cat.tolist(), *extra.values()))
    return directory


def write_synthetic_dataset(directory: Path, num_clips: int = 40, **options) -> SyntheticClips:
    """`make_synthetic_clips(num_clips, **options)` written to `directory`; returns the clips too."""
    clips = make_synthetic_clips(num_clips, **options)
    write_clips(directory, clips)
    return clips


# ---------------------------------------------------------------------------------------------
# Signer shift: fingerspelled letters by many signers, split by signer
# ---------------------------------------------------------------------------------------------
#
# What a model meets on people it has never seen: every signer has their own hand size, place in
# the image, wrist rotation, camera shear, signing speed, dominant hand, and their own way of
# shaping each letter. Clips are in the hands-only MediaPipe layout (left hand then right hand,
# 21 points each, as (x, y) or (x, y, z)), the layout of the hidden leave-signers-out set that
# slr's defaults are chosen for (docs/results.md).

#: MediaPipe hand: wrist 0, then thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20.
_FINGER_ANGLES = np.deg2rad([-50.0, -15.0, 0.0, 15.0, 30.0])  # base direction of each finger from the wrist
_BONE_LENGTHS = np.array([[0.35, 0.3, 0.25, 0.2], [0.9, 0.45, 0.28, 0.22], [0.9, 0.5, 0.3, 0.24],
                          [0.85, 0.45, 0.28, 0.22], [0.8, 0.35, 0.22, 0.2]])


@dataclass
class SignerClips(SyntheticClips):
    """Synthetic clips that also say who signed them (`signer[i]`)."""

    signer: Optional[np.ndarray] = None
    left_handed: Optional[np.ndarray] = None  # per clip: the signer signs with their left hand

    def group_columns(self) -> dict[str, list[str]]:
        columns = {}
        if self.signer is not None:
            columns["signer"] = [f"s{int(p):02d}" for p in self.signer]
        if self.left_handed is not None:
            columns["hand"] = ["left" if left else "right" for left in self.left_handed]
        return columns

    def subset(self, rows: Sequence[int]) -> "SignerClips":
        rows = list(rows)
        return SignerClips(
            x=[self.x[i] for i in rows],
            features=None if self.features is None else [self.features[i] for i in rows],
            gloss=self.gloss[rows],
            cat=self.cat[rows],
            names=[self.names[i] for i in rows],
            signer=None if self.signer is None else self.signer[rows],
            left_handed=None if self.left_handed is None else self.left_handed[rows],
            features_mirror=None if self.features_mirror is None else [self.features_mirror[i] for i in rows],
        )


def hand_shape(curl: np.ndarray, spread: float = 0.0, dims: int = 2) -> np.ndarray:
    """[21, dims] points of a right hand, wrist at 0, palm up the image, hand length about 1.

    `curl[f]` in [0, 1] bends finger f (thumb first) from straight to closed; `spread` fans the
    fingers apart (radians added per finger step)."""
    pts = np.zeros((_HAND_POINTS, 3))
    for f in range(5):
        angle = _FINGER_ANGLES[f] + spread * (f - 2)
        direction = np.array([np.sin(angle), -np.cos(angle), 0.0])  # image y grows downwards
        position = np.zeros(3)
        bend = 0.0
        for j in range(4):
            if j:  # each joint past the knuckle bends the finger towards the palm (towards the camera in z)
                bend += curl[f] * np.deg2rad(70.0 if f else 35.0)
            step = direction * np.cos(bend) + np.array([0.0, 0.0, -np.sin(bend)])
            if f == 0:  # the thumb closes across the palm rather than towards the camera
                step = np.array([np.sin(angle + curl[f] * 1.6 * (j > 0)), -np.cos(angle + curl[f] * 1.6 * (j > 0)), 0.0])
            position = position + _BONE_LENGTHS[f, j] * step
            pts[1 + 4 * f + j] = position
    return pts[:, :dims].astype(np.float32)


_HAND_POINTS = 21


def _letter_shapes(num_letters: int, class_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(curl [L, 5], spread [L], motion [L]) per letter: letters come in near pairs, as in
    real alphabets (M/N, U/V), and a few letters move (J, Z)."""
    rng = np.random.default_rng([class_seed, 77])
    curls = np.zeros((num_letters, 5))
    spreads = np.zeros(num_letters)
    for letter in range(num_letters):
        if letter % 2 and letter > 0:  # a near twin of the previous letter: one finger or the spread differs
            curls[letter] = curls[letter - 1]
            finger = rng.integers(0, 5)
            direction, step = rng.choice([-1, 1]), rng.uniform(0.35, 0.6)
            base = float(np.clip(curls[letter, finger], 0, 1))  # as the pair letter ends up
            if not 0.0 <= base + direction * step <= 1.0:
                # Bend the other way: clipped at straight or closed, the twin would be its pair's
                # exact copy, a confusion no model can resolve (before this, 2 of the 5 pairs were,
                # which capped every recipe near 0.8 on held-out signers).
                direction = -direction
            curls[letter, finger] = np.clip(base + direction * step, 0, 1)
            spreads[letter] = spreads[letter - 1] + rng.uniform(-0.12, 0.12)
        else:
            curls[letter] = rng.choice([0.0, 0.5, 1.0], size=5) + rng.uniform(-0.1, 0.1, 5)
            spreads[letter] = rng.uniform(-0.05, 0.2)
    motion = np.zeros(num_letters, dtype=np.int64)
    motion[-2:] = [1, 2]  # the last two letters trace a hook (J) and a zig-zag (Z)
    return np.clip(curls, 0, 1), spreads, motion


def _motion_path(kind: int, t: np.ndarray) -> np.ndarray:
    """[T, 2] wrist displacement (hand lengths) over normalised time t for a moving letter."""
    if kind == 1:  # a hook down and to the side
        return np.stack([0.6 * np.clip(t - 0.5, 0, None), 0.8 * np.sin(np.pi * np.clip(t, 0, 1)) ], axis=1)
    if kind == 2:  # a zig-zag
        phase = np.clip(t, 0, 1) * 3
        return np.stack([0.5 * np.abs((phase % 2) - 1), 0.5 * np.clip(t, 0, 1)], axis=1)
    return np.zeros((len(t), 2))


def make_signer_shift_clips(
    *,
    num_letters: int = 11,
    num_signers: int = 36,
    clips_per_signer: int = 9,
    dims: int = 2,
    min_frames: int = 48,
    max_frames: int = 180,
    style: float = 0.12,
    noise: float = 0.02,
    with_features: bool = False,
    feature_dim: int = 2048,
    features_from: str = "image",
    mirrored_features: bool = True,
    seed: int = 0,
    class_seed: int = 0,
) -> SignerClips:
    """Fingerspelled letters in the hands-only layout (84 wide for dims 2, 126 for dims 3), signer by signer.

    Each signer gets a hand size, place, wrist rotation, camera shear, speed, dominant hand and a
    personal style (`style`: the spread of their finger curls around each letter's, the part no
    geometric augmentation undoes); each clip adds its own timing, small drift, per-frame noise
    (`noise`, in hand lengths), missed detections and, sometimes, the other hand at rest.
    What a letter looks like depends on `class_seed` only; `seed` draws the signers and clips.

    Features (`with_features`): a fixed random projection of a frame's points, ReLU, noise.
    `features_from="image"` projects the points where they lie in the image (place and size of
    each signer in it, missed detections as zeros); `"hands"` projects each hand relative to its
    own place and in units of its own size, as a CNN on a crop that follows the hands would see
    it, and with every frame seen (a crop does not miss the hand the detector missed). Both keep
    the signer's hand rotation, shear, handedness, pace and style. With features,
    `mirrored_features` (default, as `slr extract --features` does) adds those of every frame
    mirrored left to right (`features_mirror`: the hands swap sides and x turns over, as a CNN sees
    a flipped video), drawn from a stream of their own, so that the clips and features are the same
    with it and without.
    """
    if features_from not in ("image", "hands"):
        raise ValueError(f"features_from must be 'image' or 'hands', got {features_from!r}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    curls, spreads, motion = _letter_shapes(num_letters, class_seed)
    rng = np.random.default_rng(seed)
    clips, crops, gloss, signer, lefty = [], [], [], [], []
    # Letters dealt round-robin over all clips, then shuffled: every letter is about as common,
    # and every held-out group of signers sees most of them.
    deck = rng.permutation(np.arange(num_signers * clips_per_signer) % num_letters)
    neutral = hand_shape(np.full(5, 0.3), 0.0, 3)
    for person in range(num_signers):
        size = 0.12 * rng.uniform(0.75, 1.3)  # hand length in image units
        place = np.array([0.5, 0.55]) + rng.uniform(-0.15, 0.15, 2)
        tilt = np.deg2rad(rng.normal(0, 15))
        shear = rng.normal(0, 0.15)
        pace = rng.uniform(0.7, 1.4)  # > 1: holds the letter for a shorter share of the clip
        left_handed = rng.random() < 0.2
        rests_other_hand = rng.random() < 0.5
        habit = rng.normal(0, style, 5)  # how this signer shapes every letter
        rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]]) @ np.array([[1, shear], [0, 1]])
        letters = deck[person * clips_per_signer : (person + 1) * clips_per_signer]
        for letter in letters:
            frames = int(rng.integers(min_frames, max_frames + 1))
            own = np.clip(curls[letter] + habit + rng.normal(0, style / 2, 5), 0, 1)
            shape = hand_shape(own, spreads[letter] + rng.normal(0, 0.03), 3)
            t = np.linspace(0, 1, frames)
            start = rng.uniform(0.05, 0.25) * pace
            end = 1 - rng.uniform(0.05, 0.25) * pace
            weight = np.clip(np.minimum((t - start) / 0.12, (end - t) / 0.12) + 0.5, 0, 1)  # neutral -> letter -> neutral
            pts = neutral[None] * (1 - weight[:, None, None]) + shape[None] * weight[:, None, None]
            path = _motion_path(int(motion[letter]), (t - start) / max(end - start, 1e-3))
            drift = np.cumsum(rng.normal(0, 0.01, (frames, 2)), axis=0)
            pts[..., :2] += (path + drift)[:, None, :]
            pts = pts + rng.normal(0, noise, pts.shape)
            xy = pts[..., :2] @ rot.T * size
            if left_handed:
                xy[..., 0] = -xy[..., 0]  # the left hand is the right one's mirror image
            hand = np.concatenate([xy + place, pts[..., 2:] * size], axis=-1)
            hand[rng.random(frames) < 0.05] = 0.0  # missed detections
            other = np.zeros_like(hand)
            rest = None
            if rests_other_hand and rng.random() < 0.7:
                rest = hand_shape(np.full(5, 0.6), 0.0, 3)[None] + rng.normal(0, noise, (frames, _HAND_POINTS, 3))
                side = 1.0 if left_handed else -1.0
                spot = place + np.array([side * 0.2, 0.2])
                other = np.concatenate([rest[..., :2] * size + spot, rest[..., 2:] * size], axis=-1)
                other[rng.random(frames) < 0.2] = 0.0
            left, right = (hand, other) if left_handed else (other, hand)
            x = np.concatenate([left[..., :dims], right[..., :dims]], axis=1).reshape(frames, -1)
            clips.append(x.astype(np.float32))
            if with_features and features_from == "hands":
                # each hand in its own place and units; the resting hand is already in hand units
                crop = np.concatenate([xy / size, pts[..., 2:]], axis=-1)
                other_crop = np.zeros_like(crop) if rest is None else rest
                left, right = (crop, other_crop) if left_handed else (other_crop, crop)
                crops.append(np.concatenate([left[..., :dims], right[..., :dims]], axis=1).reshape(frames, -1))
            gloss.append(int(letter))
            signer.append(person)
            lefty.append(left_handed)
    gloss_arr = np.asarray(gloss, dtype=np.int64)
    features = features_mirror = None
    if with_features:
        projection = feature_projection(clips[0].shape[1], feature_dim, class_seed)
        cuts = np.cumsum([len(c) for c in clips])[:-1]

        def project(points: np.ndarray, noise_rng: np.random.Generator) -> list[np.ndarray]:
            stacked = np.maximum(points.astype(np.float32) @ projection, 0.0)
            stacked += 0.05 * noise_rng.standard_normal(stacked.shape, dtype=np.float32)
            return np.split(stacked.astype(np.float32), cuts)

        if features_from == "hands":
            points = np.concatenate(crops)
        else:
            image = np.concatenate(clips)
            points = image - 0.5
        features = project(points, rng)
        if mirrored_features:
            if features_from == "hands":  # each hand about its own wrist: a flip turns x over there
                mirrored = _mirror_hands(points, dims, detected_only=False)
            else:  # in the image, x in [0, 1]: a flip maps x to 1 - x; a missed hand stays missed
                mirrored = _mirror_hands(image, dims, detected_only=True, about=0.5) - 0.5
            features_mirror = project(mirrored, np.random.default_rng([seed, 13]))
    names = [f"clip_{i + 1:04d}_letter {g}" for i, g in enumerate(gloss_arr)]
    return SignerClips(x=clips, features=features, gloss=gloss_arr, cat=gloss_arr % 2, names=names,
                       signer=np.asarray(signer, dtype=np.int64), left_handed=np.asarray(lefty, dtype=bool),
                       features_mirror=features_mirror)


def _mirror_hands(points: np.ndarray, dims: int, *, detected_only: bool, about: float = 0.0) -> np.ndarray:
    """`[N, 2 * 21 * dims]` hands-only rows mirrored left to right: the two hands swap places and
    every x turns over `about`; with `detected_only`, undetected (all-zero) points stay zero."""
    pts = points.reshape(len(points), 2, _HAND_POINTS, dims)[:, ::-1].copy()
    flipped = pts.copy()
    flipped[..., 0] = 2 * about - pts[..., 0]
    if detected_only:
        flipped = np.where((pts != 0).any(-1, keepdims=True), flipped, 0.0)
    return flipped.reshape(points.shape).astype(points.dtype)


def split_by_signer(clips: SignerClips, val_signers: Sequence[int]) -> tuple[SignerClips, SignerClips]:
    """(train, validation): the validation clips are exactly those of `val_signers`."""
    held = np.isin(clips.signer, list(val_signers))
    return clips.subset(np.flatnonzero(~held)), clips.subset(np.flatnonzero(held))
