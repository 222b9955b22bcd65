"""ClipDataset and batching: padding and masks, the long-clip policies, the cache, workers, seeds."""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info

from slr.data.dataset import ClipBatch, ClipDataset, collate_clips
from slr.data.frames import fit_length, sample_indices
from slr.data.validate import check_training_data
from slr.errors import DataError


def ramp(t: int, d: int = 3) -> np.ndarray:
    """Frame i holds the value i + 1 everywhere: which frames survived is easy to read off."""
    return np.repeat(np.arange(1, t + 1, dtype=np.float32)[:, None], d, axis=1)


def jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in augmentation that uses the per-sample rng."""
    return x + rng.normal(0, 1, x.shape).astype(np.float32)


def batches(dataset, **loader_options) -> list[ClipBatch]:
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_clips, **loader_options)
    return list(loader)


def assert_same_batches(a: list[ClipBatch], b: list[ClipBatch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("x", "mask", "lengths", "gloss", "cat", "index"):
            torch.testing.assert_close(getattr(x, name), getattr(y, name), rtol=0, atol=0)


@pytest.fixture
def clip_copy(synthetic_dir, tmp_path) -> Path:
    return Path(shutil.copytree(synthetic_dir, tmp_path / "clips"))


def test_padding_mask_and_lengths():
    dataset = ClipDataset.from_arrays([ramp(3), ramp(5), ramp(2)], gloss=[0, 1, 2], cat=[1, 0, 1])
    batch = collate_clips([dataset[i] for i in range(3)])
    assert batch.x.shape == (3, 5, 3) and batch.x.dtype == torch.float32
    assert batch.lengths.tolist() == [3, 5, 2]
    assert batch.mask.tolist() == [
        [True, True, True, False, False],
        [True] * 5,
        [True, True, False, False, False],
    ]
    assert torch.equal(batch.x[0, :3], torch.from_numpy(ramp(3)))
    assert (batch.x[~batch.mask] == 0).all()  # padding is zeros
    assert batch.gloss.tolist() == [0, 1, 2] and batch.cat.tolist() == [1, 0, 1] and batch.index.tolist() == [0, 1, 2]
    assert len(batch) == 3
    moved = batch.to("cpu")
    assert torch.equal(moved.mask, batch.mask)


def test_sample_policy_spreads_frames_over_the_whole_clip():
    assert sample_indices(10, 4).tolist() == [0, 3, 6, 9]
    dataset = ClipDataset.from_arrays([ramp(10), ramp(3)], [0, 0], [0, 0], max_frames=4, long_clips="sample", train=True)
    assert dataset[0].x[:, 0].tolist() == [1, 4, 7, 10]  # first and last frame kept, same every epoch
    dataset.set_epoch(5)
    assert dataset[0].x[:, 0].tolist() == [1, 4, 7, 10]
    assert dataset[1].x[:, 0].tolist() == [1, 2, 3]  # short clips untouched


def test_crop_policy_random_in_training_centred_otherwise():
    clips = [ramp(20)] * 8
    train = ClipDataset.from_arrays(clips, [0] * 8, [0] * 8, max_frames=5, long_clips="crop", train=True, seed=3)
    starts = set()
    for epoch in range(3):
        train.set_epoch(epoch)
        for i in range(8):
            frames = train[i].x[:, 0].numpy()
            assert len(frames) == 5 and np.all(np.diff(frames) == 1)  # one contiguous window
            starts.add(frames[0])
    assert len(starts) > 3  # the window moves
    evaluation = ClipDataset.from_arrays(clips, [0] * 8, [0] * 8, max_frames=5, long_clips="crop", train=False)
    assert evaluation[0].x[:, 0].tolist() == [8, 9, 10, 11, 12]  # (20 - 5) // 2 = 7 frames skipped


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="long-clip policy"):
        fit_length(ramp(5), 2, "middle", np.random.default_rng(0), random_crop=False)


def test_transform_gets_the_shortened_clip_and_the_sample_rng():
    seen = []

    def record(x, rng):
        seen.append(len(x))
        x += 100  # in place: must not reach the cache
        return np.concatenate([x, x])  # twice as long: the dataset shortens it again

    dataset = ClipDataset.from_arrays([ramp(10)], [0], [0], max_frames=4, transform=record)
    first = dataset[0].x
    assert seen == [4] and len(first) == 4
    assert torch.equal(dataset[0].x, first)  # the cached clip was not changed by the transform
    assert first[0, 0] == 101

    noisy = ClipDataset.from_arrays([ramp(6)] * 2, [0, 0], [0, 0], transform=jitter, seed=1)
    assert torch.equal(noisy[0].x, noisy[0].x)  # same (seed, epoch, index): same sample
    assert not torch.equal(noisy[0].x, noisy[1].x)
    noisy.set_epoch(1)
    other_epoch = noisy[0].x
    noisy.set_epoch(0)
    assert not torch.equal(noisy[0].x, other_epoch)


def test_same_seed_same_samples_other_seed_other_samples(clip_copy):
    def samples(seed):
        dataset = ClipDataset(clip_copy, max_frames=5, long_clips="crop", train=True, seed=seed, transform=jitter)
        return torch.cat([dataset[i].x for i in range(len(dataset))])

    assert torch.equal(samples(7), samples(7))
    assert not torch.equal(samples(7), samples(8))


def test_directory_dataset_exposes_what_the_trainer_needs(synthetic_dir):
    dataset = ClipDataset(synthetic_dir)
    assert dataset.num_samples == len(dataset) == 40
    assert dataset.input_dim == 156
    assert dataset.gloss.dtype == np.int64 and sorted(set(dataset.gloss.tolist())) == [0, 1, 2, 3, 4]
    assert np.array_equal(dataset.cat, dataset.gloss % 2)
    assert dataset.names[0].startswith("clip_0001_gloss ")
    assert dataset.class_names() == {g: f"gloss {g}" for g in range(5)}
    features = ClipDataset(synthetic_dir, key="X2048", fallback_key="X")
    assert features.input_dim == 64 and features[0].x.shape[1] == 64


def test_cache_hit_second_pass_reads_no_files(clip_copy):
    cached = ClipDataset(clip_copy, cache=True)
    first = [cached[i].x for i in range(len(cached))]
    uncached = ClipDataset(clip_copy, cache=False)
    uncached.input_dim  # noqa: B018 - read the widths while the files are there
    for clip in clip_copy.glob("*.npz"):
        clip.unlink()
    second = [cached[i].x for i in range(len(cached))]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(DataError, match="clip_0001"):
        uncached[0]


def test_preloaded_arrays_from_the_training_check_are_reused(clip_copy):
    report = check_training_data(clip_copy, None, key="X", num_gloss=5, num_cat=2)
    dataset = ClipDataset(clip_copy, preloaded=report.clips)
    for clip in clip_copy.glob("*.npz"):
        clip.unlink()
    assert dataset.input_dim == report.widths["X"] == 156
    assert torch.equal(dataset[3].x, torch.tensor(report.clips[dataset.names[3]]))


def test_workers_give_the_same_batches_as_the_main_process(clip_copy):
    dataset = ClipDataset(clip_copy, max_frames=8, long_clips="crop", train=True, seed=5, transform=jitter)
    dataset.preload()
    dataset.set_epoch(2)
    in_main = batches(dataset, num_workers=0)
    assert_same_batches(in_main, batches(dataset, num_workers=2))
    dataset.set_epoch(3)
    assert not torch.equal(batches(dataset, num_workers=0)[0].x, in_main[0].x)


def test_set_epoch_reaches_persistent_workers(clip_copy):
    dataset = ClipDataset(clip_copy, max_frames=8, long_clips="crop", train=True, seed=5, transform=jitter)
    loader = DataLoader(dataset, batch_size=8, collate_fn=collate_clips, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        assert_same_batches(list(loader), batches_at(dataset, epoch))


def batches_at(dataset: ClipDataset, epoch: int) -> list[ClipBatch]:
    dataset.set_epoch(epoch)
    return list(DataLoader(dataset, batch_size=8, collate_fn=collate_clips))


def cache_size_in_worker(samples) -> int:
    return len(get_worker_info().dataset._cache)


def test_workers_read_files_but_keep_no_cache_of_their_own(clip_copy):
    """A worker's cache would be lost with the worker, or duplicated in every persistent one."""
    assert_same_batches(batches(ClipDataset(clip_copy), num_workers=2), batches(ClipDataset(clip_copy), num_workers=0))
    loader = DataLoader(ClipDataset(clip_copy), batch_size=4, num_workers=1, collate_fn=cache_size_in_worker)
    assert set(loader) == {0}


def test_pin_memory(synthetic_dir):
    dataset = ClipDataset(synthetic_dir)
    try:
        torch.zeros(1).pin_memory()
    except RuntimeError as exc:
        pytest.skip(f"pinned memory is not available here: {exc}")
    batch = batches(dataset, pin_memory=True)[0]
    assert batch.x.is_pinned() and batch.mask.is_pinned() and batch.lengths.is_pinned()
    pinned = collate_clips([dataset[0], dataset[1]]).pin_memory()
    assert pinned.gloss.is_pinned()
    if torch.cuda.is_available():
        moved = pinned.to("cuda", non_blocking=True)
        assert moved.x.is_cuda and moved.mask.is_cuda and moved.mask.dtype == torch.bool
        assert torch.equal(moved.x.cpu(), pinned.x)


def test_pin_memory_loader_runs_anywhere(synthetic_dir):
    """DataLoader(pin_memory=True) without an accelerator warns and still yields every batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        found = batches(ClipDataset(synthetic_dir), pin_memory=True)
    assert sum(len(b) for b in found) == 40


def test_width_mismatch_and_missing_clips_are_data_errors(clip_copy):
    first = sorted(clip_copy.glob("*.npz"))[0]
    np.savez(first, X=ramp(5, 150))
    dataset = ClipDataset(clip_copy)
    assert dataset.input_dim == 156
    with pytest.raises(DataError, match=r"clip_0001.* is 150 wide, expected 156"):
        dataset[0]
    first.unlink()
    with pytest.raises(DataError, match=r"1 clip\(s\) named in labels.csv are not in"):
        ClipDataset(clip_copy)


def test_a_cached_pass_does_not_touch_the_files(asl_words_dir, tmp_path):
    """The point of the cache: a second pass reads nothing from disk (shown by removing the files
    after the first pass). How much faster that is: benchmarks/data_pipeline.py."""
    clips = tmp_path / "val"
    shutil.copytree(asl_words_dir / "val", clips)
    dataset = ClipDataset(clips, dim=156)
    first = [dataset[i] for i in range(len(dataset))]
    for clip in clips.glob("*.npz"):
        clip.unlink()
    second = [dataset[i] for i in range(len(dataset))]
    assert len(dataset._cache) == len(dataset) == 419
    assert all(torch.equal(a.x, b.x) for a, b in zip(first, second))


@pytest.mark.parametrize("values", [np.full((5, 156), np.nan), np.full((5, 156), 1e300)], ids=["nan", "beyond-float32"])
def test_reading_a_clip_with_non_finite_values_names_it(clip_copy, values):
    """`slr evaluate` reads clips like this (no validation first): it must refuse, not score NaN."""
    first = sorted(clip_copy.glob("*.npz"))[0]
    np.savez(first, X=values)
    dataset = ClipDataset(clip_copy, cache=False, dim=156)
    with pytest.raises(DataError, match="NaN or infinite values") as caught:
        dataset[0]
    assert str(caught.value).startswith(f"{first}: ")


def test_a_labelled_clip_that_is_not_a_file_says_what_it_is(clip_copy):
    first = sorted(clip_copy.glob("*.npz"))[0]
    first.unlink()
    first.mkdir()
    with pytest.raises(DataError, match="is a directory, not a clip file") as caught:
        ClipDataset(clip_copy)
    assert str(caught.value).startswith(f"{first}: ")


def test_two_files_for_one_clip_name_are_refused(clip_copy):
    first = sorted(clip_copy.glob("*.npz"))[0]
    shutil.copy(first, first.with_suffix(".NPZ"))
    with pytest.raises(DataError, match="are the same clip .* keep one"):
        ClipDataset(clip_copy)
