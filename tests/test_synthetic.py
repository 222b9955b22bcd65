"""Synthetic clips: the real on-disk format, seeds, categories, and that the classes can be learned."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from slr.data.clips import read_clip
from slr.data.synthetic import make_synthetic_clips, write_synthetic_dataset
from slr.data.validate import validate_directory, validation_specs


def test_in_memory_clips_shapes_lengths_and_categories():
    clips = make_synthetic_clips(30, num_gloss=6, num_cat=4, kp_dim=20, feature_dim=8, min_frames=3, max_frames=9)
    assert len(clips) == 30
    assert all(x.dtype == np.float32 and x.shape[1] == 20 and 3 <= len(x) <= 9 for x in clips.x)
    assert all(f.dtype == np.float32 and f.shape == (len(x), 8) for f, x in zip(clips.features, clips.x))
    assert np.array_equal(np.bincount(clips.gloss), [5] * 6)  # balanced
    assert np.array_equal(clips.cat, clips.gloss % 4)
    assert len({len(x) for x in clips.x}) > 1  # variable length
    assert clips.names[0] == f"clip_0001_gloss {clips.gloss[0]}"


def test_given_categories_names_and_no_features():
    clips = make_synthetic_clips(6, num_gloss=3, categories=[2, 0, 2], gloss_names=["hi", "thank you", "don't"], with_features=False)
    assert clips.features is None
    assert np.array_equal(clips.cat, np.array([2, 0, 2])[clips.gloss])
    assert {n.split("_", 2)[2] for n in clips.names} == {"hi", "thank you", "don't"}
    with pytest.raises(ValueError, match="categories"):
        make_synthetic_clips(4, num_gloss=3, categories=[0, 1])


def test_seeds_change_the_clips_but_not_the_classes():
    a, b = make_synthetic_clips(10, seed=1), make_synthetic_clips(10, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.x, b.x))
    assert all(np.array_equal(x, y) for x, y in zip(a.features, b.features))
    c = make_synthetic_clips(10, seed=2)
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a.x, c.x))


def nearest_centroid_accuracy(train, test, pick) -> float:
    """Classify time-averaged clips of `test` by the nearest class mean of `train`."""
    def pooled(clips):
        return np.stack([pick(clips, i).mean(axis=0) for i in range(len(clips))])

    train_x, test_x = pooled(train), pooled(test)
    centroids = np.stack([train_x[train.gloss == g].mean(axis=0) for g in range(int(train.gloss.max()) + 1)])
    predicted = np.argmin(((test_x[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((predicted == test.gloss).mean())


@pytest.mark.parametrize("pick", [lambda c, i: c.x[i], lambda c, i: c.features[i]], ids=["keypoints", "features"])
def test_classes_are_learnable_across_seeds(pick):
    options = dict(num_gloss=8, num_cat=3, feature_dim=64, noise=0.05)
    train, test = make_synthetic_clips(80, seed=1, **options), make_synthetic_clips(40, seed=2, **options)
    assert nearest_centroid_accuracy(train, test, pick) >= 0.9
    shuffled = make_synthetic_clips(40, seed=2, class_seed=99, **options)  # other classes: chance level
    assert nearest_centroid_accuracy(train, shuffled, pick) < 0.5


def test_written_clips_are_in_the_real_format_and_validate_clean(tmp_path):
    clips = write_synthetic_dataset(tmp_path, 12, num_gloss=4, num_cat=2, feature_dim=32)
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert files == sorted(f"{n}.npz" for n in clips.names)
    with open(tmp_path / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == clips.names
    assert [int(r["gloss"]) for r in rows] == clips.gloss.tolist()
    assert [int(r["cat"]) for r in rows] == clips.cat.tolist()
    name = tmp_path / f"{clips.names[0]}.npz"
    np.testing.assert_array_equal(read_clip(name, "X"), clips.x[0])
    np.testing.assert_array_equal(read_clip(name, "X2048"), clips.features[0])
    specs = validation_specs("X", "X2048", feature_dim=32, require_features=True)
    assert validate_directory(tmp_path, specs=specs, num_gloss=4, num_cat=2).problems == []


def test_writing_200_small_clips_is_fast(tmp_path):
    start = time.perf_counter()
    write_synthetic_dataset(tmp_path, 200, feature_dim=64)
    elapsed = time.perf_counter() - start
    assert len(list(tmp_path.glob("*.npz"))) == 200
    assert elapsed < 3, f"{elapsed:.2f} s"  # about 0.1 s here
