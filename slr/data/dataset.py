"""The torch side of the clip data: `ClipDataset`, `ClipSample`, `ClipBatch`, `collate_clips`.

Clips have different lengths; a batch pads them with zeros to its longest clip and carries a
mask (True on real frames) and the lengths. Randomness in a sample (random crops, the
augmentation `transform`) comes from `numpy.random.default_rng([seed, epoch, index])`, so a
sample is the same whichever worker makes it and after a resume; `set_epoch` reaches the
workers through shared memory, persistent ones included.

Caching: a clip is kept in memory after its first read in the main process. DataLoader workers
are separate processes whose own caches would be thrown away (or duplicated per worker), so
they read from the parent's cache and do not add to it: fill it first with `preload()`, or pass
the arrays `check_training_data` has already read (`preloaded=report.clips`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Collection, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, get_worker_info

from slr.data.buckets import bucket_length
from slr.data.clip_limits import ClipLimits
from slr.data.clips import (
    ClipListing,
    file_stem,
    map_files,
    most_common_width,
    read_clip,
    read_clip_width,
    read_optional_clip,
    scan_clip_dir,
)
from slr.data.frames import LongClipPolicy, fit_length
from slr.data.labels import class_names_from_clips, read_labels
from slr.errors import DataError

#: `transform(x [T, D] float32, rng) -> [T', D]`: augmentation, applied after the length policy.
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class ClipSample:
    """One clip: `x` float32 `[T, D]`, its gloss and category ids, and its dataset index."""

    x: torch.Tensor
    gloss: int
    cat: int
    index: int


@dataclass
class ClipBatch:
    """Clips padded to the longest: `x [B, T, D]`, `mask [B, T]` (True = real frame), `lengths [B]`."""

    x: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    gloss: torch.Tensor
    cat: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "ClipBatch":
        return ClipBatch(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ClipBatch":
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "ClipBatch":
        """Called by DataLoader(pin_memory=True) on each batch."""
        return self._map(lambda t: t.pin_memory())


def collate_clips(samples: Sequence[ClipSample], buckets: Optional[Sequence[int]] = None) -> ClipBatch:
    """Stack samples into a zero-padded `ClipBatch` (use as the DataLoader's `collate_fn`).

    With ``buckets`` (slr.data.buckets) the frames are padded further, up to the smallest bucket
    that holds the longest clip: fewer batch shapes, less memory kept by the allocator.
    """
    lengths = torch.tensor([len(s.x) for s in samples], dtype=torch.long)
    x = pad_sequence([s.x for s in samples], batch_first=True)
    if buckets:
        steps = bucket_length(x.shape[1], buckets)
        if steps > x.shape[1]:
            x = torch.nn.functional.pad(x, (0, 0, 0, steps - x.shape[1]))
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return ClipBatch(
        x=x,
        mask=mask,
        lengths=lengths,
        gloss=torch.tensor([s.gloss for s in samples], dtype=torch.long),
        cat=torch.tensor([s.cat for s in samples], dtype=torch.long),
        index=torch.tensor([s.index for s in samples], dtype=torch.long),
    )


def _check_labelled_clips(listing: ClipListing, names: list[str], labels_csv: Path, directory: Path) -> None:
    """`DataError` unless every clip labels.csv names is exactly one regular file in the directory."""
    not_files = {file_stem(p): (p, what) for p, what in listing.not_files.items()}
    for name in names:  # say what is in the way rather than "not in the directory"
        if name in not_files:
            path, what = not_files[name]
            raise DataError(f"is {what}, not a clip file ({labels_csv.name} names clip {name!r})", path)
        if name in listing.clashes:
            shown = " and ".join(p.name for p in listing.clashes[name])
            raise DataError(f"{shown} are the same clip {name!r} to {labels_csv.name}: keep one", directory)
    missing = [name for name in names if name not in listing.stems]
    if missing:
        shown = ", ".join(f"{m}.npz" for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(f"{len(missing)} clip(s) named in {labels_csv.name} are not in {directory}: {shown}")


def _in_worker() -> bool:
    """True inside a DataLoader worker process, whose cache would die with it."""
    return get_worker_info() is not None


class ClipDataset(Dataset):
    """Clips of one directory with their labels.csv rows, in labels.csv order.

    key / fallback_key: the npz key to read, and the one used where a clip lacks it
    (features: `X2048`, falling back to `X`). dim: the width every clip must have; None = the
    most common width in the data. max_frames / long_clips: see `slr.data.frames`.
    train: random crops (else centred). transform: augmentation, given the per-sample rng.
    only: keep just the labelled clips of these names (`slr compare`: the clips both directories
    hold); None = every clip labels.csv names, all of which must be present.
    limits: the largest clip array read from a file (default: the settings' defaults).
    mirror_keys / mirror_prob (training only): where a clip also carries its frames mirrored left
    to right under one of `mirror_keys` (`X2048_mirror`, written by `slr extract`), that array is
    used in its place with probability `mirror_prob`, a left/right flip of the video for models
    whose features cannot be flipped afterwards. Clips without one are used as they are.
    """

    def __init__(
        self,
        directory: Optional[Path],
        labels_csv: Optional[Path] = None,
        *,
        key: str = "X",
        fallback_key: Optional[str] = None,
        dim: Optional[int] = None,
        max_frames: Optional[int] = None,
        long_clips: LongClipPolicy = "sample",
        train: bool = False,
        seed: int = 0,
        transform: Optional[Transform] = None,
        cache: bool = True,
        preloaded: Optional[Mapping[str, np.ndarray]] = None,
        only: Optional[Collection[str]] = None,
        limits: Optional[ClipLimits] = None,
        mirror_keys: Sequence[str] = (),
        mirror_prob: float = 0.0,
    ):
        self.limits = limits
        self.mirror_keys = tuple(mirror_keys)
        self.mirror_prob = mirror_prob if train else 0.0
        self._mirror_cache: dict[int, Optional[np.ndarray]] = {}
        self.directory = Path(directory) if directory is not None else None
        self.key = key
        self.fallback_key = fallback_key
        self.max_frames = max_frames
        self.long_clips = long_clips
        self.train = train
        self.seed = seed
        self.transform = transform
        self.cache = cache
        self.length_buckets: list[int] = []  # what `collate` pads batches up to (slr.data.buckets)
        # Shared memory so that set_epoch reaches DataLoader workers, persistent ones too.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache: dict[int, np.ndarray] = {}
        self._paths: list[Path] = []
        self.rows = None  # the labels.csv rows, extra columns included (None for from_arrays)
        self.names: list[str] = []
        self.gloss = np.zeros(0, dtype=np.int64)
        self.cat = np.zeros(0, dtype=np.int64)
        if self.directory is not None:
            self._load_index(labels_csv, only)
            if cache and preloaded:
                for i, name in enumerate(self.names):
                    if name in preloaded:
                        self._keep(i, preloaded[name])
        if dim is not None:
            self.input_dim = dim  # fills the cached_property

    def _load_index(self, labels_csv: Optional[Path], only: Optional[Collection[str]] = None) -> None:
        directory = self.directory
        if not directory.is_dir():
            raise DataError("clip directory not found", directory)
        labels_csv = Path(labels_csv) if labels_csv is not None else directory / "labels.csv"
        self.rows = read_labels(labels_csv)
        if only is not None:
            self.rows = self.rows[self.rows["file"].isin(set(only))]
        listing = scan_clip_dir(directory)
        _check_labelled_clips(listing, list(self.rows["file"]), labels_csv, directory)
        files = {file_stem(p): p for p in listing.files}
        self.names = list(self.rows["file"])
        self.gloss = self.rows["gloss"].to_numpy(dtype=np.int64)
        self.cat = self.rows["cat"].to_numpy(dtype=np.int64)
        self._paths = [files[name] for name in self.names]

    @classmethod
    def from_arrays(
        cls,
        clips: Sequence[np.ndarray],
        gloss: Sequence[int],
        cat: Sequence[int],
        *,
        names: Optional[Sequence[str]] = None,
        **options,
    ) -> "ClipDataset":
        """A dataset over clips already in memory (synthetic clips, tests); no files involved."""
        if not (len(clips) == len(gloss) == len(cat)):
            raise ValueError(f"{len(clips)} clips but {len(gloss)} gloss and {len(cat)} cat labels")
        dataset = cls(None, **{**options, "cache": True})
        dataset.names = list(names) if names is not None else [f"clip_{i + 1:04d}" for i in range(len(clips))]
        dataset.gloss = np.asarray(gloss, dtype=np.int64)
        dataset.cat = np.asarray(cat, dtype=np.int64)
        for i, clip in enumerate(clips):
            dataset._keep(i, clip)
        return dataset

    # --- what the trainer asks -----------------------------------------------------------

    def collate(self, samples: Sequence[ClipSample]) -> ClipBatch:
        """`collate_clips` with this dataset's length buckets (a DataLoader's `collate_fn`)."""
        return collate_clips(samples, self.length_buckets)

    @property
    def num_samples(self) -> int:
        return len(self.gloss)

    def __len__(self) -> int:
        return self.num_samples

    @cached_property
    def input_dim(self) -> int:
        """Width D of every clip (as given, else the most common width in the data)."""
        if self.cache and not _in_worker():
            self.preload()  # the cache wants every clip anyway: read them once, now
        if len(self._cache) == self.num_samples:
            widths = [a.shape[1] for a in self._cache.values()]
        else:  # array headers only: no data is decompressed
            widths = map_files(lambda p: read_clip_width(p, self.key, self.fallback_key), self._paths)
        width = most_common_width(widths)
        if width is None:
            raise DataError("no clips to take the input width from", self.directory)
        return width

    def class_names(self) -> dict[int, str]:
        """Gloss id -> name, from the clip file names (`clip_0089_how are you` -> `how are you`)."""
        return class_names_from_clips(self.names, self.gloss)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch's DataLoader iteration: it seeds that epoch's randomness."""
        self._epoch.fill_(epoch)

    def sample_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    # --- reading -------------------------------------------------------------------------

    def _keep(self, index: int, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 2 or len(array) == 0 or array.shape[1] == 0:
            raise DataError(
                f"clip {self.names[index]!r} has shape {list(array.shape)}, expected [T, D] with T > 0 and D > 0"
            )
        array.flags.writeable = False  # a transform that edits in place must not change the cache
        self._cache[index] = array
        return array

    def _clip(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        array = read_clip(self._paths[index], self.key, self.fallback_key, limits=self.limits)
        return self._keep(index, array) if self.cache and not _in_worker() else array

    def preload(self) -> None:
        """Read every clip not yet cached, in the main process, before any DataLoader workers start."""
        if not self.cache:
            return
        todo = [i for i in range(self.num_samples) if i not in self._cache]
        arrays = map_files(lambda i: read_clip(self._paths[i], self.key, self.fallback_key, limits=self.limits), todo)
        for i, array in zip(todo, arrays):
            self._keep(i, array)
        if self.mirrors:  # workers read the mirrored arrays from this cache too
            map_files(lambda i: self._mirrored(i, self._cache[i].shape),
                      [i for i in range(self.num_samples) if i not in self._mirror_cache])

    @property
    def mirrors(self) -> bool:
        """Whether training samples may be the clips' mirrored arrays."""
        return self.mirror_prob > 0 and bool(self.mirror_keys) and bool(self._paths)

    def _mirrored(self, index: int, shape: tuple[int, ...]) -> Optional[np.ndarray]:
        """The clip's mirrored array (None where it has none), which must match its own shape."""
        if index in self._mirror_cache:
            return self._mirror_cache[index]
        path = self._paths[index]
        found = None
        for key in self.mirror_keys:
            found = read_optional_clip(path, key, limits=self.limits)
            if found is not None:
                if found.shape != shape:
                    raise DataError(f"{key!r} has shape {list(found.shape)} but the clip's own array has "
                                    f"{list(shape)}: a mirrored copy must be the same frames", path)
                found.flags.writeable = False
                break
        if self.cache and not _in_worker():
            self._mirror_cache[index] = found
        return found

    def __getitem__(self, index: int) -> ClipSample:
        x = self._clip(index)
        if x.shape[1] != self.input_dim:
            raise DataError(
                f"clip {self.names[index]!r} is {x.shape[1]} wide, expected {self.input_dim}", self.directory
            )
        if self.mirrors:
            # a stream of its own: every other draw of the sample (crop, augmentation) stays as it was
            flip = np.random.default_rng([self.seed, self.epoch, index, 1]).random() < self.mirror_prob
            mirrored = self._mirrored(index, x.shape) if flip else None
            x = mirrored if mirrored is not None else x
        rng = self.sample_rng(index)
        x = fit_length(x, self.max_frames, self.long_clips, rng, random_crop=self.train)
        x = np.array(x, dtype=np.float32)  # a fresh array: the cache is never handed out
        if self.transform is not None:
            x = self._apply_transform(x, rng, index)
        return ClipSample(torch.from_numpy(x), int(self.gloss[index]), int(self.cat[index]), index)

    def _apply_transform(self, x: np.ndarray, rng: np.random.Generator, index: int) -> np.ndarray:
        out = np.asarray(self.transform(x, rng), dtype=np.float32)
        if out.ndim != 2 or len(out) == 0 or out.shape[1] != x.shape[1]:
            raise ValueError(
                f"transform turned clip {self.names[index]!r} {list(x.shape)} into {list(out.shape)}; "
                "it must return [T', D] with T' > 0"
            )
        # A transform may lengthen a clip (slower playback): keep the max_frames promise.
        out = fit_length(out, self.max_frames, self.long_clips, rng, random_crop=self.train)
        return np.ascontiguousarray(out)
