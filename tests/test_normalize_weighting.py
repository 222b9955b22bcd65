"""`--normalize-weighting motion` (slr/data/augment.py): without shoulders, each detected point
counts in a clip's centre and scale by how much it moves, so still points (a Kinect skeleton's
legs) cannot carry where or how tall a signer stood into the normalised clip."""

from __future__ import annotations

import numpy as np
import pytest

from slr.data.augment import build_transform, keypoint_layout, normalize_clip
from slr.data.prepare import prepare_clip, preprocessing
from slr.settings import TrainSettings

LAYOUT = keypoint_layout(12)  # 6 unknown points x (x, y): no shoulders, no hands


def skeleton(legs: tuple[float, float], t: int = 20) -> np.ndarray:
    """Points 0-1 sweep as arms do; points 2-5 stand still at `legs` (where the camera saw them)."""
    phase = np.linspace(0, 2 * np.pi, t)
    pts = np.zeros((t, 6, 2), np.float32)
    pts[:, 0] = np.stack([0.3 + 0.2 * np.cos(phase), 0.5 + 0.2 * np.sin(phase)], -1)
    pts[:, 1] = np.stack([0.7 - 0.1 * np.cos(phase), 0.5 + 0.1 * np.sin(2 * phase)], -1)
    pts[:, 2:] = np.array([[legs[0] - 0.1, legs[1]], [legs[0] + 0.1, legs[1]],
                           [legs[0] - 0.1, legs[1] - 0.3], [legs[0] + 0.1, legs[1] - 0.3]], np.float32)
    return pts.reshape(t, 12)


def arms(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), 6, 2)[:, :2]


def test_still_points_move_nothing_with_motion_weighting() -> None:
    near, far = skeleton((0.5, -0.2)), skeleton((0.45, -0.9))  # the same signing, legs seen elsewhere
    moving = [arms(normalize_clip(c, LAYOUT, "motion")) for c in (near, far)]
    assert np.allclose(moving[0], moving[1], atol=1e-6)
    equal = [arms(normalize_clip(c, LAYOUT, "equal")) for c in (near, far)]
    assert not np.allclose(equal[0], equal[1], atol=1e-2)  # counted alike, the legs move the arms


def test_motion_weighting_centres_and_scales_on_the_moving_points() -> None:
    out = arms(normalize_clip(skeleton((0.5, -0.2)), LAYOUT, "motion")).astype(np.float64)
    clip = skeleton((0.5, -0.2)).reshape(20, 6, 2)[:, :2].astype(np.float64)
    spread = clip.std(0).sum(-1)
    w = spread / spread.sum()
    centre = (clip.mean(0) * w[:, None]).sum(0)
    scale = np.sqrt((((clip - centre) ** 2).sum(-1).mean(0) * w).sum())
    assert np.allclose(out, (clip - centre) / scale, atol=1e-5)


def test_undetected_points_stay_zero_and_still_clips_fall_back() -> None:
    clip = skeleton((0.5, -0.2))
    clip[:5, 0:2] = 0.0  # point 0 missed in 5 frames
    out = normalize_clip(clip, LAYOUT, "motion").reshape(20, 6, 2)
    assert (out[:5, 0] == 0).all() and (out[5:, 0] != 0).any()
    still = np.tile(skeleton((0.5, -0.2))[:1], (8, 1))  # nothing moves: every point counts alike
    assert np.array_equal(normalize_clip(still, LAYOUT, "motion"), normalize_clip(still, LAYOUT, "equal"))


def test_shoulders_win_over_the_weighting() -> None:
    layout = keypoint_layout(156)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0.2, 0.8, (10, 78, 2)).astype(np.float32)
    pts[:, 11], pts[:, 12] = (0.6, 0.5), (0.4, 0.5)
    clip = pts.reshape(10, 156)
    assert np.array_equal(normalize_clip(clip, layout, "motion"), normalize_clip(clip, layout, "equal"))


@pytest.mark.parametrize("weighting", ["equal", "motion"])
def test_prediction_normalises_as_training_did(weighting: str) -> None:
    settings = TrainSettings(normalize_weighting=weighting, mirror_left_handed="off")
    description = preprocessing(settings, "keypoints", 12)
    clip = skeleton((0.45, -0.9))
    training = build_transform(settings, "keypoints", 12, train=False)(clip, np.random.default_rng(0))
    assert np.array_equal(prepare_clip(clip, description), training)
    assert np.array_equal(training, normalize_clip(clip, LAYOUT, weighting))


def test_a_description_without_the_choice_counts_points_alike() -> None:
    description = preprocessing(TrainSettings(normalize_weighting="motion", mirror_left_handed="off"), "keypoints", 12)
    for step in description["steps"]:
        step.pop("weighting", None)  # as written before the choice existed
    clip = skeleton((0.45, -0.9))
    assert np.array_equal(prepare_clip(clip, description), normalize_clip(clip, LAYOUT, "equal"))
