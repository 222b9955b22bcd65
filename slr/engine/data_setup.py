"""The training run's data: checked clip directories, datasets and their DataLoaders."""

from __future__ import annotations

import shlex

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from slr.data.augment import Layout, build_transform, clip_layout, inert_options, mirrors_left_handed
from slr.data.layout_choice import check_fits, choose_layout, describe, loss_notice
from slr.data.class_counts import class_counts
from slr.data.clip_meta import extraction_of
from slr.data.dataset import ClipDataset
from slr.data.clips import MIRROR_SUFFIX
from slr.data.classes import classes_file_notices, read_class_names
from slr.data.buckets import buckets_for
from slr.data.notices import CheckedSplit, training_data_notices
from slr.data.clip_limits import clip_limits
from slr.data.split import train_val_group_notices
from slr.data.validate import check_training_data
from slr.engine import hardware
from slr.engine.distributed import DistInfo
from slr.engine.sampler import EpochSampler
from slr.errors import ConfigError, DataError, command, setting
from slr.models.registry import model_spec
from slr.settings import TrainSettings


@dataclass
class SplitSource:
    flag: str
    directory: Path
    labels_csv: Path


@dataclass
class RunData:
    train: ClipDataset
    val: ClipDataset
    input_dim: int
    longest_clip: int
    class_names: dict[str, dict[int, str]]
    notices: list[str]  # for the user, before training: warnings in the data, keys that fell back
    extraction: Optional[dict[str, Any]] = None  # how the training clips were made (their meta), for predict
    keypoint_layout: Optional[dict[str, Any]] = None  # a layout file's declaration, stored in checkpoints
    clip_frames: Optional[dict[str, Any]] = None  # the training clips' frame counts (min, median, max), for predict
    layout_line: str = ""  # which keypoint layout, from where (slr/data/layout_choice.py), for the header

    @property
    def summary(self) -> str:
        return (
            f"{len(self.train)} training / {len(self.val)} validation clips of {self.input_dim} values per frame, "
            f"up to {self.longest_clip} frames" + (f"; {self.layout_line}" if self.layout_line else "")
        )

    def loaders(self, settings: TrainSettings, dist: DistInfo, device: torch.device, workers: int,
                pin: Optional[bool] = None):
        """``pin``: whether the device takes pinned memory (default: hardware.capabilities decides)."""
        pin = settings.pin_memory and (hardware.capabilities(device).pin_memory if pin is None else pin)
        if workers > 0:  # workers read the parent's cache: fill it before they fork
            self.train.preload()
            self.val.preload()
        common = dict(
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
            # Its own generator: creating a loader iterator must not draw from the global RNG,
            # or a run resumed mid-epoch would see different dropout masks.
            generator=torch.Generator().manual_seed(settings.seed),
        )
        train_sampler = EpochSampler(
            len(self.train), seed=settings.seed, shuffle=True, rank=dist.rank, world_size=dist.world_size
        )
        val_sampler = EpochSampler(
            len(self.val), seed=settings.seed, shuffle=False, rank=dist.rank, world_size=dist.world_size
        )
        train = DataLoader(self.train, batch_size=settings.batch_size, sampler=train_sampler,
                           collate_fn=self.train.collate, **common)  # collate: length buckets (slr/data/buckets.py)
        val = DataLoader(self.val, batch_size=settings.batch_size, sampler=val_sampler,
                         collate_fn=self.val.collate, **common)
        return train, val


def _sources(settings: TrainSettings) -> tuple[SplitSource, SplitSource]:
    kind = model_spec(settings.model).input_kind
    found = []
    for split, labels in (("train", settings.labels_train_csv), ("val", settings.labels_val_csv)):
        flag = setting(f"{kind}_{split}")
        directory = getattr(settings, f"{kind}_{split}")
        if directory is None:
            raise ConfigError(f"{flag} DIR is required to train {settings.model}")
        labels_csv = Path(labels) if labels is not None else Path(directory) / "labels.csv"
        found.append(SplitSource(flag, Path(directory), labels_csv))
    return found[0], found[1]


def with_class_counts(settings: TrainSettings) -> TrainSettings:
    """``settings`` with num_gloss / num_cat taken from the data where they were not given."""
    if settings.num_gloss is not None and settings.num_cat is not None:
        return settings
    train, val = _sources(settings)
    gloss, cat = class_counts([train.labels_csv, val.labels_csv], settings.classes_csv)
    return settings.model_copy(update={"num_gloss": settings.num_gloss or gloss, "num_cat": settings.num_cat or cat})


def _first_clip_has(directory: Path, key: str) -> bool:
    """Whether the first clip file carries ``key`` (reads the archive's index only)."""
    first = next(iter(sorted(directory.glob("*.npz"))), None)
    if first is None:
        return True
    try:
        with np.load(first, allow_pickle=False) as archive:
            return key in archive.files
    except Exception:  # unreadable files were already reported by the checks
        return True


def validate_command(settings: TrainSettings, src: SplitSource) -> str:
    """The validate command with the settings of this run that change what it checks, so that it
    finds the same problems training did (e.g. labels outside num_gloss)."""
    parts = [shlex.quote(str(src.directory))]
    if src.labels_csv != src.directory / "labels.csv":
        parts.append(setting("labels_csv", shlex.quote(str(src.labels_csv))))
    parts += [setting("num_gloss", settings.num_gloss), setting("num_cat", settings.num_cat)]
    if settings.kp_key != "X":
        parts.append(setting("kp_key", shlex.quote(settings.kp_key)))
    if model_spec(settings.model).input_kind != "keypoints" and settings.feature_key != "X2048":
        parts.append(setting("feature_key", shlex.quote(settings.feature_key)))
    for name in ("max_clip_frames", "max_clip_mb"):  # raised limits change what is refused
        if name in settings.model_fields_set:
            parts.append(setting(name, getattr(settings, name)))
    return command("validate", *parts)


def build_data(settings: TrainSettings, dist: DistInfo, device: torch.device) -> RunData:
    spec = model_spec(settings.model)
    keypoints = spec.input_kind == "keypoints"
    key, fallback = spec.clip_keys(settings)  # the guide: features in X2048, or X
    width = settings.kp_dim if keypoints else settings.feature_dim
    train_src, val_src = _sources(settings)
    datasets, frames, notices, labels, checked = [], [], [], [], []
    clip_frames: Optional[dict[str, Any]] = None
    fallbacks: dict[Path, Any] = {}  # directory -> width, for one notice even when train and val are one folder
    for src, train in ((train_src, True), (val_src, False)):
        if not src.directory.is_dir():
            raise DataError(f"{src.flag}: clip directory not found", src.directory)
        report = check_training_data(
            src.directory,
            src.labels_csv,
            key=key,
            fallback_key=fallback,
            require_dim=width,
            num_gloss=settings.num_gloss,
            num_cat=settings.num_cat,
            validate_hint=validate_command(settings, src),
            limits=clip_limits(settings),
            role=f"the {'training' if train else 'validation'} data ({src.flag})",
        )
        checked.append(CheckedSplit(src.directory, report.class_counts, report.warnings,
                                    validate_command(settings, src)))
        if fallback is not None and not _first_clip_has(src.directory, key):
            fallbacks.setdefault(src.directory, report.widths.get(key, "?"))
        dim = width or report.widths.get(key) or None
        datasets.append(
            ClipDataset(
                src.directory,
                src.labels_csv,
                key=key,
                fallback_key=fallback,
                dim=dim,
                max_frames=settings.max_frames,
                long_clips=settings.long_clips,
                train=train,
                seed=settings.seed,
                cache=settings.cache,
                preloaded=report.clips if settings.cache else None,
                limits=clip_limits(settings),
                mirror_keys=mirror_keys(key, fallback) if not keypoints else (),
                mirror_prob=settings.feature_mirror_prob if settings.augment else 0.0,
            )
        )
        frames += report.frames
        labels.append(report.labels)
        if train:
            clip_frames = frame_range(report.frames)
    for directory, dims in fallbacks.items():
        notices.append(f"{directory}: clips without '{key}' ({setting('feature_key')}): {settings.model} reads "
                       f"'{fallback}' from them ({dims} values per frame)")
    # the class counts and the warnings, in words (slr/data/notices.py), before the other notices
    notices = training_data_notices(checked, settings.num_gloss, settings.num_cat) + notices
    train_ds, val_ds = datasets
    if train_ds.input_dim != val_ds.input_dim:
        raise DataError(
            f"training clips have {train_ds.input_dim} values per frame but validation clips "
            f"({val_src.directory}) have {val_ds.input_dim}"
        )
    input_dim = train_ds.input_dim
    declared, layout_line = None, ""
    if keypoints:  # --keypoint-layout, else a layout.json beside the training clips; checked here, once
        choice = choose_layout(train_src.directory, settings.keypoint_layout)
        check_fits(choice, input_dim)
        declared, layout_line = choice.declared, describe(choice, input_dim)
        notices += [text for text in [loss_notice(choice, input_dim)] if text]
    for ds, train in ((train_ds, True), (val_ds, False)):
        ds.transform = build_transform(settings, spec.input_kind, input_dim, train=train, declared=declared)
        ds.length_buckets = buckets_for(settings, frames, train)
    layout = clip_layout(input_dim, declared) if spec.input_kind == "keypoints" else None
    notices += _mirror_notice(settings, layout, input_dim)
    if train_ds.mirrors and settings.cache:
        train_ds.preload()  # a bad mirrored array stops the run now, naming its clip, not mid-epoch
    if train_ds.mirrors and not any(_first_clip_has(train_src.directory, k) for k in train_ds.mirror_keys):
        notices.append(
            f"{train_src.directory}: the clips carry no features of mirrored frames ('{train_ds.mirror_keys[0]}'), "
            f"so {setting('feature_mirror_prob')} has nothing to swap in (slr extract --features writes them)"
        )
    notices += [f"{setting(name)} does nothing here: {why}"
                for name, why in inert_options(settings, spec.input_kind, layout)]
    longest = max(frames, default=1)  # sizes the --auto-batch-size probe: the worst case of both splits
    if settings.max_frames:
        longest = min(longest, settings.max_frames)
    notices += train_val_group_notices(*labels)  # signers / sessions in both splits
    class_names = _class_names(settings, train_ds)
    if settings.classes_csv is not None:
        notices += classes_file_notices(Path(settings.classes_csv), class_names, labels[0].rows, labels[0].path)
    return RunData(train_ds, val_ds, input_dim, longest, class_names, notices,
                   extraction_of(train_src.directory), declared, clip_frames, layout_line)


def mirror_keys(key: str, fallback: Optional[str]) -> tuple[str, ...]:
    """Where a clip keeps its features of mirrored frames: beside the array the model reads
    (`X2048` -> `X2048_mirror`; with the fallback, `X` -> `X_mirror`)."""
    return tuple(f"{k}{MIRROR_SUFFIX}" for k in (key, fallback) if k)


def frame_range(frames: list[int]) -> Optional[dict[str, Any]]:
    """The training clips' frame counts as `slr predict` compares a clip or video with them."""
    if not frames:
        return None
    ordered = sorted(frames)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def _mirror_notice(settings: TrainSettings, layout: Optional[Layout], width: int) -> list[str]:
    """Say so where the default mirrors clips: a change to the clips the user did not ask for by name.
    ``layout``: the keypoints' (None for features, or a width no layout reads)."""
    if settings.mirror_left_handed != "auto":
        return []
    if layout is None or not mirrors_left_handed("auto", layout):
        return []
    return [
        f"keypoints of two hands and no body ({width} values per frame): clips whose left hand moves more are "
        f"mirrored, so that the signing hand is always the right one, in training and prediction "
        f"({setting('mirror_left_handed', 'auto')}; {setting('mirror_left_handed', 'off')} feeds them as recorded)"
    ]


def _class_names(settings: TrainSettings, train: ClipDataset) -> dict[str, dict[int, str]]:
    if settings.classes_csv is not None:
        return read_class_names(Path(settings.classes_csv))
    return {"gloss": train.class_names(), "cat": {}}
