"""Per-clip normalisation and the keypoint augmentations (slr/data/augment.py), on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from slr.data.augment import build_transform, keypoint_layout, mirror_clip, normalize_clip
from slr.settings import AugmentSettings as _AugmentSettings

#: Every augmentation strength at 0 (and no hand-centring): each test turns on exactly what it names,
#: whatever slr's defaults are.
STRENGTHS_OFF = {
    name: (False if info.annotation is bool else "off" if name == "mirror_left_handed" else 0.0)
    for name, info in _AugmentSettings.model_fields.items()
    if name not in ("normalize", "augment", "normalize_weighting")
}


def AugmentSettings(**values) -> _AugmentSettings:  # noqa: N802  (stands in for the class)
    return _AugmentSettings(**{**STRENGTHS_OFF, **values})

ALL_ON = dict(
    normalize=True, augment=True, mirror_prob=0.5, rotate_deg=15, scale_jitter=0.2, shift=0.1,
    speed_jitter=0.2, frame_dropout=0.1, time_mask=0.2,
)


def body_clip(t: int = 12, seed: int = 0, missing_left_hand: bool = True) -> np.ndarray:
    """A [t, 156] MediaPipe-layout clip in image coordinates: shoulders at x 0.4 / 0.6, y 0.5."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2, 0.8, (t, 78, 2)).astype(np.float32)
    pts[:, 11] = (0.6, 0.5)  # the signer's left shoulder (right of the image)
    pts[:, 12] = (0.4, 0.5)
    pts[:, 67:78] = 0  # no face, as in asl-words
    if missing_left_hand:
        pts[: t // 2, 25:46] = 0  # left hand not detected in the first half
    return pts.reshape(t, 156)


def hands_clip(t: int, dims: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.1, 0.9, (t, 42, dims)).astype(np.float32)
    pts[::3, :21] = 0  # left hand missing in every third frame
    return pts.reshape(t, 42 * dims)


def zeros_of(x: np.ndarray, dims: int = 2) -> np.ndarray:
    return np.all(x.reshape(x.shape[0], -1, dims) == 0, axis=-1)


# --- normalisation ---------------------------------------------------------------------------


def test_normalize_centres_on_shoulders_and_scales_by_their_width():
    x = body_clip()
    out = normalize_clip(x, keypoint_layout(156)).reshape(-1, 78, 2)
    np.testing.assert_allclose(out[:, 11], np.tile([0.5, 0.0], (len(out), 1)), atol=1e-5)  # (0.6-0.5)/0.2
    np.testing.assert_allclose(out[:, 12], np.tile([-0.5, 0.0], (len(out), 1)), atol=1e-5)
    pts = x.reshape(-1, 78, 2)
    seen = np.any(pts != 0, axis=-1)
    np.testing.assert_allclose(out[seen], (pts[seen] - [0.5, 0.5]) / 0.2, atol=1e-5)


def test_normalize_keeps_missing_points_zero():
    x = body_clip()
    out = normalize_clip(x, keypoint_layout(156))
    np.testing.assert_array_equal(zeros_of(out), zeros_of(x))
    assert not np.signbit(out[out == 0]).any()  # +0.0, as stored, not -0.0
    assert zeros_of(x)[:, 67:].all() and zeros_of(x)[:6, 25:46].all()


def test_normalize_falls_back_to_detected_points_without_shoulders():
    x = body_clip().reshape(-1, 78, 2)
    x[:, 11:13] = 0  # shoulders never detected
    x = x.reshape(-1, 156)
    out = normalize_clip(x, keypoint_layout(156)).reshape(-1, 78, 2)
    seen = ~zeros_of(x)
    np.testing.assert_allclose(out[seen].mean(axis=0), [0, 0], atol=1e-5)
    assert np.sqrt((out[seen] ** 2).sum(-1).mean()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(zeros_of(out.reshape(-1, 156)), zeros_of(x))


def test_normalize_handles_empty_and_partial_clips():
    layout = keypoint_layout(156)
    empty = np.zeros((5, 156), np.float32)
    np.testing.assert_array_equal(normalize_clip(empty, layout), empty)
    x = body_clip()
    x[2:5] = 0  # frames with nothing detected
    out = normalize_clip(x, layout)
    assert np.isfinite(out).all() and (out[2:5] == 0).all()


def test_normalize_is_the_same_for_another_signer_position_and_size():
    """A signer further right and closer to the camera gives the same normalised clip."""
    layout = keypoint_layout(156)
    x = body_clip()
    pts = x.reshape(-1, 78, 2)
    moved = np.where(pts != 0, (pts - 0.5) * 1.3 + [0.55, 0.45], 0).astype(np.float32).reshape(x.shape)
    np.testing.assert_allclose(normalize_clip(moved, layout), normalize_clip(x, layout), atol=1e-5)


# --- mirror ----------------------------------------------------------------------------------


def test_mirror_swaps_hands_and_flips_x():
    layout = keypoint_layout(156)
    x = normalize_clip(body_clip(), layout)
    m = mirror_clip(x, layout).reshape(-1, 78, 2)
    p = x.reshape(-1, 78, 2)
    np.testing.assert_array_equal(m[:, 46:67, 0], np.where(p[:, 25:46, 0] != 0, -p[:, 25:46, 0], 0))  # left -> right
    np.testing.assert_array_equal(m[:, 25:46, 1], p[:, 46:67, 1])
    np.testing.assert_array_equal(m[:, 11], p[:, 12] * [-1, 1])  # shoulders swapped
    np.testing.assert_array_equal(m[:, 0], p[:, 0] * [-1, 1])  # nose stays the nose
    np.testing.assert_array_equal(zeros_of(m.reshape(-1, 156))[:, 46:67], zeros_of(x)[:, 25:46])


@pytest.mark.parametrize("width", [156, 84, 126, 42, 100])
def test_mirroring_twice_is_the_identity(width):
    layout = keypoint_layout(width)
    x = body_clip() if width == 156 else np.random.default_rng(1).uniform(-1, 1, (9, width)).astype(np.float32)
    for centred in (True, False):
        np.testing.assert_allclose(mirror_clip(mirror_clip(x, layout, centred), layout, centred), x, atol=1e-6)


def test_mirror_in_image_coordinates_flips_about_the_middle():
    layout = keypoint_layout(156)
    x = body_clip()
    m = mirror_clip(x, layout, centred=False).reshape(-1, 78, 2)
    np.testing.assert_allclose(m[:, 11], np.tile([0.6, 0.5], (len(m), 1)), atol=1e-6)  # 1 - 0.4


def test_hands_layouts_swap_the_two_hands():
    for dims in (2, 3):
        layout = keypoint_layout(42 * dims)
        assert (layout.points, layout.dims) == (42, dims)
        x = hands_clip(6, dims)
        m = mirror_clip(x, layout).reshape(6, 42, dims)
        p = x.reshape(6, 42, dims)
        np.testing.assert_array_equal(m[:, :21, 1:], p[:, 21:, 1:])  # y (and z) move with the hand
        np.testing.assert_array_equal(m[:, 21:, 0], np.where(np.any(p[:, :21] != 0, -1), -p[:, :21, 0], 0))


def test_layouts():
    assert keypoint_layout(156).shoulders == (11, 12)
    assert keypoint_layout(84).dims == 2 and keypoint_layout(126).dims == 3
    assert keypoint_layout(63).points == 21 and keypoint_layout(42).points == 21
    assert keypoint_layout(100).points == 50 and keypoint_layout(100).shoulders is None
    assert keypoint_layout(2047) is None


# --- the training transform ------------------------------------------------------------------


def test_affine_keeps_missing_points_zero():
    s = AugmentSettings(**{**ALL_ON, "speed_jitter": 0, "frame_dropout": 0, "time_mask": 0})
    x = body_clip(20)
    transform = build_transform(s, "keypoints", 156, train=True)
    for seed in range(10):
        out = transform(x, np.random.default_rng(seed))
        assert out.shape == x.shape
        missing = zeros_of(out)
        # a mirror moves the left hand's gaps to the right hand: the count of missing points is kept
        assert missing.sum() == zeros_of(x).sum()
        assert missing[:, 67:].all()


def test_affine_without_normalisation_rotates_about_the_image_centre():
    s = AugmentSettings(normalize=False, augment=True, rotate_deg=90, scale_jitter=0, shift=0)
    x = np.array([[0.5, 0.5, 0.75, 0.5, 0.0, 0.0]], np.float32)  # centre, right of centre, missing
    out = build_transform(s, "keypoints", 6, train=True)(x, np.random.default_rng(3))
    assert out[0, :2] == pytest.approx([0.5, 0.5]) and (out[0, 4:] == 0).all()
    assert np.hypot(out[0, 2] - 0.5, out[0, 3] - 0.5) == pytest.approx(0.25, abs=1e-6)


def test_a_detected_point_at_the_centre_is_not_lost():
    """After normalisation a detected point can sit exactly on (0, 0); it must still be moved, not dropped."""
    s = AugmentSettings(normalize=True, augment=True, shift=0.5)
    x = body_clip(4, missing_left_hand=False).reshape(4, 78, 2)
    x[:, 0] = (0.5, 0.5)  # the nose exactly between the shoulders: normalised to (0, 0)
    out = build_transform(s, "keypoints", 156, train=True)(x.reshape(4, 156), np.random.default_rng(0))
    assert not (out.reshape(4, 78, 2)[:, 0] == 0).all()


def test_temporal_augmentations_shapes():
    x = body_clip(40)
    speed = build_transform(AugmentSettings(normalize=False, speed_jitter=0.5), "keypoints", 156, train=True)
    lengths = {speed(x, np.random.default_rng(i)).shape[0] for i in range(20)}
    assert len(lengths) > 1 and min(lengths) >= 26 and max(lengths) <= 80
    drop = build_transform(AugmentSettings(normalize=False, frame_dropout=0.3), "keypoints", 156, train=True)
    for i in range(20):
        out = drop(x, np.random.default_rng(i))
        assert 20 <= out.shape[0] <= 40 and out.shape[1] == 156
    mask = build_transform(AugmentSettings(normalize=False, time_mask=0.25), "keypoints", 156, train=True)
    for i in range(20):
        out = mask(x, np.random.default_rng(i))
        assert out.shape == x.shape
        blank = np.all(out == 0, axis=1)
        assert blank.sum() <= 10
        if blank.any():  # one contiguous span
            idx = np.flatnonzero(blank)
            assert idx[-1] - idx[0] + 1 == len(idx)


def test_features_get_only_temporal_augmentation():
    feats = np.random.default_rng(0).uniform(0, 2, (30, 2048)).astype(np.float32)
    s = AugmentSettings(**ALL_ON)
    assert build_transform(AugmentSettings(**{**ALL_ON, "speed_jitter": 0, "frame_dropout": 0, "time_mask": 0}),
                           "features", 2048, train=True) is None
    out = build_transform(s, "features", 2048, train=True)(feats, np.random.default_rng(0))
    assert out.shape[1] == 2048
    rows = {r.tobytes() for r in feats}
    assert all(r.tobytes() in rows or not r.any() for r in out)  # frames are kept, dropped or blanked, never changed
    assert build_transform(s, "features", 2048, train=False) is None


def test_validation_transform_only_normalises():
    s = AugmentSettings(**ALL_ON)
    x = body_clip()
    val = build_transform(s, "keypoints", 156, train=False)
    np.testing.assert_array_equal(val(x, np.random.default_rng(0)), normalize_clip(x, keypoint_layout(156)))
    assert build_transform(AugmentSettings(**{**ALL_ON, "normalize": False}), "keypoints", 156, train=False) is None


@pytest.mark.parametrize("width,frames", [(84, 30), (126, 30), (156, 300), (84, 300), (126, 300), (42, 8), (63, 8), (100, 50), (156, 1), (156, 2)])
def test_any_width_and_length(width, frames):
    dims = 3 if width in (126, 63) else 2
    rng = np.random.default_rng(width + frames)
    x = rng.uniform(0.1, 0.9, (frames, width)).astype(np.float32)
    x.reshape(frames, -1, dims)[::4, :5] = 0  # some missing points
    transform = build_transform(AugmentSettings(**ALL_ON), "keypoints", width, train=True)
    for seed in range(5):
        out = transform(x, np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == width and out.shape[0] >= 1
        assert np.isfinite(out).all()
    val = build_transform(AugmentSettings(**ALL_ON), "keypoints", width, train=False)(x, rng)
    assert val.shape == x.shape
    np.testing.assert_array_equal(zeros_of(val, dims), zeros_of(x, dims))


def test_hands_only_normalisation_centres_on_detected_points():
    for dims in (2, 3):
        x = hands_clip(10, dims)
        out = normalize_clip(x, keypoint_layout(42 * dims)).reshape(10, 42, dims)
        seen = ~zeros_of(x, dims)
        np.testing.assert_allclose(out[seen][:, :2].mean(axis=0), [0, 0], atol=1e-5)
        np.testing.assert_array_equal(zeros_of(out.reshape(10, -1), dims), zeros_of(x, dims))


def test_same_rng_same_result_and_different_rng_different_result():
    transform = build_transform(AugmentSettings(**ALL_ON), "keypoints", 156, train=True)
    x = body_clip(30)
    a = transform(x, np.random.default_rng([42, 3, 7]))
    b = transform(x, np.random.default_rng([42, 3, 7]))
    np.testing.assert_array_equal(a, b)
    c = transform(x, np.random.default_rng([42, 4, 7]))
    assert a.shape != c.shape or not np.array_equal(a, c)
    np.testing.assert_array_equal(x, body_clip(30))  # the input is not changed in place


def test_nothing_to_do_gives_no_transform():
    off = AugmentSettings(normalize=False, augment=False)
    assert build_transform(off, "keypoints", 156, train=True) is None
    assert build_transform(AugmentSettings(normalize=False, augment=True, **{k: 0 for k in ALL_ON if k not in ("normalize", "augment")}),
                           "keypoints", 156, train=True) is None
    assert build_transform(AugmentSettings(normalize=True), "keypoints", 2047, train=False) is None  # odd width: not points
