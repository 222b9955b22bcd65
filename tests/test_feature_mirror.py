"""Mirrored features: clips that carry their frames' features mirrored left to right (`X2048_mirror`),
which iv3_gru trains on in place of the clip's own with probability --feature-mirror-prob."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from slr.data.dataset import ClipDataset
from slr.data.synthetic import _mirror_hands, make_signer_shift_clips, write_clips
from slr.engine.data_setup import build_data, mirror_keys
from slr.engine.distributed import DistInfo
from slr.errors import DataError
from slr.settings import TrainSettings


def write_folder(folder: Path, clips: dict[str, dict[str, np.ndarray]]) -> Path:
    """Clips named `name` with the given arrays, each of gloss 0, and labels.csv."""
    folder.mkdir(parents=True)
    for name, arrays in clips.items():
        np.savez(folder / f"{name}.npz", **arrays)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat"])
        writer.writerows([name, i % 2, 0] for i, name in enumerate(clips))
    return folder


def frames(t: int, offset: float, d: int = 4) -> np.ndarray:
    """Frame i holds offset + i everywhere: which array and which frames a sample is, read off."""
    return np.repeat((offset + np.arange(t, dtype=np.float32))[:, None], d, axis=1)


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Two clips with mirrored features (their values 1000 above their own), one without."""
    return write_folder(tmp_path / "clips", {
        "a": {"X2048": frames(12, 0), "X2048_mirror": frames(12, 1000)},
        "b": {"X2048": frames(9, 100), "X2048_mirror": frames(9, 1100)},
        "c": {"X2048": frames(7, 200)},
    })


def samples(dataset: ClipDataset, epoch: int) -> list[np.ndarray]:
    dataset.set_epoch(epoch)
    return [dataset[i].x.numpy() for i in range(len(dataset))]


def test_probability_one_trains_on_every_mirrored_array_and_leaves_clips_without_one(mixed):
    dataset = ClipDataset(mixed, key="X2048", train=True, mirror_keys=["X2048_mirror"], mirror_prob=1.0)
    a, b, c = samples(dataset, 0)
    np.testing.assert_array_equal(a, frames(12, 1000))
    np.testing.assert_array_equal(b, frames(9, 1100))
    np.testing.assert_array_equal(c, frames(7, 200))  # has none: its own


def test_validation_and_probability_zero_never_mirror(mixed):
    for dataset in (ClipDataset(mixed, key="X2048", train=False, mirror_keys=["X2048_mirror"], mirror_prob=1.0),
                    ClipDataset(mixed, key="X2048", train=True, mirror_keys=["X2048_mirror"], mirror_prob=0.0)):
        assert not dataset.mirrors
        for epoch in range(3):
            a, b, _ = samples(dataset, epoch)
            assert a.max() < 1000 and b.max() < 1000


def test_half_the_time_depends_on_seed_epoch_and_clip_only(mixed):
    options = dict(key="X2048", train=True, mirror_keys=["X2048_mirror"], mirror_prob=0.5)
    dataset = ClipDataset(mixed, **options)
    drawn = [[x.max() >= 1000 for x in samples(dataset, epoch)[:2]] for epoch in range(40)]
    share = np.mean(drawn)
    assert 0.3 < share < 0.7  # both happen, about half the time
    again = ClipDataset(mixed, **options)  # another process, the same seed: the same choices
    assert drawn == [[x.max() >= 1000 for x in samples(again, epoch)[:2]] for epoch in range(40)]


def test_a_mirrored_sample_keeps_the_frames_and_augmentation_its_own_would_have(mixed):
    """The mirror's draw has a stream of its own: the random crop and the transform's draws are
    those the clip's own array gets."""

    def noise(x, rng):
        return x + rng.normal(0, 0.01, x.shape).astype(np.float32)

    options = dict(key="X2048", train=True, max_frames=5, long_clips="crop", transform=noise)
    own = ClipDataset(mixed, **options)
    mirrored = ClipDataset(mixed, mirror_keys=["X2048_mirror"], mirror_prob=1.0, **options)
    for epoch in range(3):
        for x, y in zip(samples(own, epoch)[:2], samples(mirrored, epoch)[:2]):
            np.testing.assert_allclose(y - 1000, x, atol=1e-3)


def test_the_mirror_follows_the_array_read_when_the_clip_falls_back(tmp_path):
    """Skeletons read as features (X, no X2048) pair with X_mirror."""
    folder = write_folder(tmp_path / "kp", {"a": {"X": frames(6, 0), "X_mirror": frames(6, 1000)}})
    dataset = ClipDataset(folder, key="X2048", fallback_key="X", train=True,
                          mirror_keys=mirror_keys("X2048", "X"), mirror_prob=1.0)
    np.testing.assert_array_equal(dataset[0].x.numpy(), frames(6, 1000))


@pytest.mark.parametrize("bad, problem", [
    (frames(11, 1000), "same frames"),  # one frame short
    (np.full((12, 4), np.nan, np.float32), "NaN"),
    (np.zeros((12,), np.float32), "expected [T, D]"),
])
def test_a_bad_mirrored_array_is_a_data_error_naming_its_file(tmp_path, bad, problem):
    folder = write_folder(tmp_path / "clips", {"a": {"X2048": frames(12, 0), "X2048_mirror": bad}})
    dataset = ClipDataset(folder, key="X2048", train=True, mirror_keys=["X2048_mirror"], mirror_prob=1.0)
    with pytest.raises(DataError) as caught:
        dataset.preload()
    assert "a.npz" in str(caught.value) and problem in str(caught.value)


def test_preload_reads_the_mirrored_arrays_for_workers_too(mixed):
    dataset = ClipDataset(mixed, key="X2048", train=True, mirror_keys=["X2048_mirror"], mirror_prob=1.0)
    dataset.preload()
    for path in mixed.glob("*.npz"):
        path.unlink()  # from here on only the cache can answer
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=dataset.collate, num_workers=1)
    (batch,) = list(loader)
    assert batch.x[0].max() == 1011 and batch.x[1, :9].max() == 1108 and batch.x[2, :7].max() == 206


def settings_for(folder: Path, **values) -> TrainSettings:
    return TrainSettings(model="iv3_gru", features_train=folder, features_val=folder, num_gloss=2, num_cat=1,
                         device="cpu", **values)


def test_training_mirrors_by_the_setting_and_no_augment_turns_it_off(mixed):
    dist = DistInfo()
    data = build_data(settings_for(mixed, feature_mirror_prob=1.0), dist, torch.device("cpu"))
    assert data.train.mirrors and not data.val.mirrors
    assert data.train[0].x.max() >= 1000 and data.val[0].x.max() < 1000
    off = build_data(settings_for(mixed, feature_mirror_prob=1.0, augment=False), dist, torch.device("cpu"))
    assert not off.train.mirrors


def test_a_run_whose_clips_have_no_mirrored_features_is_told(tmp_path):
    folder = write_folder(tmp_path / "clips", {"a": {"X2048": frames(5, 0)}, "b": {"X2048": frames(6, 0)}})
    data = build_data(settings_for(folder), DistInfo(), torch.device("cpu"))  # the default mirrors
    assert any("X2048_mirror" in n and "slr extract --features" in n for n in data.notices)
    quiet = build_data(settings_for(folder, feature_mirror_prob=0.0), DistInfo(), torch.device("cpu"))
    assert not any("X2048_mirror" in n for n in quiet.notices)


def test_the_transformer_is_told_the_setting_does_nothing_for_keypoints(synthetic_dir):
    settings = TrainSettings(model="transformer", keypoints_train=synthetic_dir, keypoints_val=synthetic_dir,
                             num_gloss=5, num_cat=2, device="cpu", feature_mirror_prob=0.7)
    notices = build_data(settings, DistInfo(), torch.device("cpu")).notices
    assert any("feature_mirror_prob" in n and "these clips are keypoints" in n for n in notices)


# -- the synthetic signers' mirrored features ---------------------------------------------------


def test_mirroring_hands_swaps_them_turns_x_over_and_twice_is_the_identity():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 84)).astype(np.float32)
    once = _mirror_hands(rows, 2, detected_only=False)
    pts, out = rows.reshape(3, 2, 21, 2), once.reshape(3, 2, 21, 2)
    np.testing.assert_array_equal(out[:, 0, :, 0], -pts[:, 1, :, 0])  # the left hand is the right one turned over
    np.testing.assert_array_equal(out[:, 1, :, 1], pts[:, 0, :, 1])  # y stays
    np.testing.assert_array_equal(_mirror_hands(once, 2, detected_only=False), rows)
    # in the image (x in [0, 1]) a flip maps x to 1 - x; an undetected point (all zero) stays zero
    image = rng.random((3, 2, 21, 2)).astype(np.float32)
    missed = rng.random((3, 2, 21)) < 0.3
    image[missed] = 0.0
    flipped = _mirror_hands(image.reshape(3, 84), 2, detected_only=True, about=0.5).reshape(3, 2, 21, 2)
    swapped = image[:, ::-1]
    assert (flipped[missed[:, ::-1]] == 0).all()
    np.testing.assert_allclose(flipped[~missed[:, ::-1]][:, 0], 1 - swapped[~missed[:, ::-1]][:, 0])
    np.testing.assert_array_equal(flipped[..., 1], swapped[..., 1])


@pytest.mark.parametrize("source", ["hands", "image"])
def test_mirrored_features_add_an_array_and_change_nothing_else(tmp_path, source):
    options = dict(num_signers=4, clips_per_signer=3, min_frames=5, max_frames=9, with_features=True,
                   features_from=source, feature_dim=64, seed=3)
    plain = make_signer_shift_clips(**options, mirrored_features=False)
    mirrored = make_signer_shift_clips(**options)  # the default, as slr extract --features
    assert plain.features_mirror is None
    for a, b, m in zip(plain.features, mirrored.features, mirrored.features_mirror):
        np.testing.assert_array_equal(a, b)
        assert m.shape == a.shape and not np.allclose(m, a)
    for a, b in zip(plain.x, mirrored.x):
        np.testing.assert_array_equal(a, b)
    write_clips(tmp_path / "clips", mirrored.subset([0, 1]))
    with np.load(tmp_path / "clips" / f"{mirrored.names[1]}.npz") as stored:
        np.testing.assert_array_equal(stored["X2048_mirror"], mirrored.features_mirror[1])


def test_a_left_handed_signers_features_look_like_mirrored_right_handed_ones():
    """What the mirrored features are for: a letter signed with the left hand is nearer the same
    letter's mirrored right-handed features than its right-handed ones (noise-free shapes aside)."""
    clips = make_signer_shift_clips(num_signers=40, clips_per_signer=9, min_frames=20, max_frames=20,
                                    with_features=True, features_from="hands", mirrored_features=True, seed=1,
                                    style=0.0, noise=0.0)
    lefty = clips.left_handed
    mean = lambda arrays, rows: np.mean([arrays[i][8:12].mean(0) for i in rows], axis=0)  # the held shape
    nearer = 0
    letters = [g for g in np.unique(clips.gloss) if (lefty & (clips.gloss == g)).any()]
    for letter in letters:
        left = np.flatnonzero(lefty & (clips.gloss == letter))
        right = np.flatnonzero(~lefty & (clips.gloss == letter))
        target = mean(clips.features, left)
        to_mirrored = np.linalg.norm(target - mean(clips.features_mirror, right))
        to_own = np.linalg.norm(target - mean(clips.features, right))
        nearer += to_mirrored < to_own
    assert nearer == len(letters) and len(letters) >= 5


def test_validate_checks_mirrored_features_where_clips_have_them(tmp_path):
    import json
    import subprocess
    import sys

    folder = write_folder(tmp_path / "clips", {
        "a": {"X2048": np.ones((4, 2048), np.float32), "X2048_mirror": np.ones((4, 2048), np.float32)},
        "b": {"X2048": np.ones((4, 2048), np.float32)},  # none: fine
        "c": {"X2048": np.ones((4, 2048), np.float32), "X2048_mirror": np.full((4, 2048), np.inf, np.float32)},
    })
    proc = subprocess.run([sys.executable, "-m", "slr", "validate", str(folder), "--require-x2048", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    items = [item for kind in json.loads(proc.stdout)["problems"].values() for item in kind["items"]]
    assert [item["file"] for item in items] == ["c.npz"]
    assert "'X2048_mirror' has NaN or infinite values" in items[0]["message"]


def test_slr_train_iv3_gru_with_mirrored_features_from_the_command_line(tmp_path):
    """The flag end to end: a run on clips with mirrored features trains, says nothing about
    missing ones, and stores the setting with the run (a resume goes on with it)."""
    import json

    from typer.testing import CliRunner

    from slr.cli import app

    clips = make_signer_shift_clips(num_signers=4, clips_per_signer=3, min_frames=4, max_frames=6,
                                    with_features=True, features_from="hands", feature_dim=32,
                                    mirrored_features=True, seed=0)
    folder = write_clips(tmp_path / "clips", clips)
    result = CliRunner().invoke(app, [
        "train", "iv3_gru", "--features-train", str(folder), "--features-val", str(folder), "--epochs", "1",
        "--gru-hidden", "8", "--gru-layers", "1", "--feature-mirror-prob", "0.5", "--output-dir",
        str(tmp_path / "run"), "--no-plots", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "nothing to swap in" not in result.output
    stored = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert stored["settings"]["feature_mirror_prob"] == 0.5


def test_extract_refuses_mirror_features_asked_for_without_features(tmp_path):
    from slr.errors import ConfigError
    from slr.extract.command import extract_from_settings
    from slr.settings import ExtractSettings

    assert ExtractSettings(videos=[], output_dir=tmp_path).mirror_features  # on by default: needs no --features
    with pytest.raises(ConfigError, match="needs .*features"):
        extract_from_settings(ExtractSettings(videos=[tmp_path / "v.mp4"], output_dir=tmp_path / "out",
                                              mirror_features=True))
    assert not (tmp_path / "out").exists()
