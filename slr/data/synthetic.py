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

    def __len__(self) -> int:
        return len(self.x)


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
        np.savez(directory / f"{name}.npz", **arrays)  # uncompressed: fast to write and to read
    with open(directory / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat"])
        writer.writerows(zip(clips.names, clips.gloss.tolist(), clips.cat.tolist()))
    return directory


def write_synthetic_dataset(directory: Path, num_clips: int = 40, **options) -> SyntheticClips:
    """`make_synthetic_clips(num_clips, **options)` written to `directory`; returns the clips too."""
    clips = make_synthetic_clips(num_clips, **options)
    write_clips(directory, clips)
    return clips
