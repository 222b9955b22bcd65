"""Outer folds by group, and inside each fold's training part a group-disjoint inner validation split.

The outer folds come from scikit-learn: `StratifiedGroupKFold` for K folds (each group in exactly
one held-out part, the glosses as evenly spread as the groups allow) or `LeaveOneGroupOut` for
`loo`. The inner split of each fold's training part is `slr split`'s own (`split_labels`): whole
groups, every class on both sides, so the checkpoint it chooses was chosen on people the fold's
model never trained on either.

Each fold is written as three label files (`labels_train.csv`, `labels_val.csv`, `labels_test.csv`,
every column of the original rows kept) under `folds/fold-<k>/`: a fold's run reads its clips from
the data directory through them, and `slr evaluate CKPT --labels-csv .../labels_test.csv` scores
its held-out groups again by hand.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from slr.atomic import write_atomically
from slr.data.split import INSTALL_HINT, Grouping, SplitError, labels_csv_bytes, split_labels
from slr.errors import SlrError, setting

#: Groups named in one message before the rest are counted.
_NAMED = 5


@dataclass
class Fold:
    """One outer fold: rows (positions in the labels table) for inner training, inner validation, held out."""

    number: int  # 1, 2, ...
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    held_out: list[str]  # the groups scored
    val_groups: list[str]  # the groups of the inner validation split
    notices: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"fold-{self.number}"

    def describe(self) -> dict:
        return {"fold": self.number, "held_out": self.held_out, "inner_val": self.val_groups,
                "clips": {"train": len(self.train), "val": len(self.val), "test": len(self.test)}}


def _splitters():
    try:
        from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold
    except ImportError:
        raise SlrError(f"cross-validation needs scikit-learn, which is not installed: {INSTALL_HINT}") from None
    return StratifiedGroupKFold, LeaveOneGroupOut


def check_splitters() -> None:
    """Refuse at once, before any reading, when scikit-learn is missing."""
    _splitters()


def make_folds(rows: pd.DataFrame, groups: pd.Series, grouping: Grouping, labels_csv: Path, *,
               folds: int | str, seed: int, inner_val: float) -> list[Fold]:
    """The outer folds and their inner splits; `SplitError` when the groups cannot make them."""
    stratified, leave_one_out = _splitters()
    distinct = sorted(groups.unique())
    noun = grouping.noun
    count = len(distinct) if folds == "loo" else int(folds)
    if len(distinct) < 3:
        raise SplitError(
            f"{len(distinct)} {noun} value(s) by {grouping.describe()}: cross-validation needs at least 3 (one held "
            f"out, and two for the fold's training and inner validation, as no {noun} may be on two sides)", labels_csv)
    if count > len(distinct):
        raise SplitError(
            f"{setting('folds', count)} needs at least {count} {noun}s, and {grouping.describe()} finds "
            f"{len(distinct)}: use {setting('folds')} {len(distinct)} or fewer, or {setting('folds', 'loo')}",
            labels_csv)
    y = rows["gloss"].to_numpy(dtype=np.int64)
    codes = pd.Series(pd.Categorical(groups, categories=distinct).codes, index=groups.index).to_numpy()
    with warnings.catch_warnings():
        # "The least populated class in y has only N members": classes are placed by group, checked below
        warnings.simplefilter("ignore", UserWarning)
        if folds == "loo":
            parts = list(leave_one_out().split(np.zeros(len(y)), y, codes))
        else:
            parts = list(stratified(n_splits=count, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, codes))
    result = []
    for number, (train_part, test) in enumerate(parts, start=1):
        held = sorted({distinct[c] for c in codes[test]})
        fold = _inner_split(number, train_part, np.sort(test), held, rows, groups, grouping, labels_csv, seed,
                            inner_val)
        unseen = sorted(set(y[test]) - set(y[train_part]))
        if unseen:
            fold.notices.append(
                f"fold {number}: {len(unseen)} gloss(es) of its held-out {noun}s ({_shown([str(g) for g in unseen])}) "
                f"have no clips in its training part; they count as wrong there")
        result.append(fold)
    return result


def _inner_split(number: int, train_part: np.ndarray, test: np.ndarray, held: list[str], rows: pd.DataFrame,
                 groups: pd.Series, grouping: Grouping, labels_csv: Path, seed: int, inner_val: float) -> Fold:
    """Whole groups of the fold's training part to inner training and validation, every class on both
    sides where it can be. A class of a single group in the training part (real data sets: a sign
    that one of the few signers never recorded) cannot be: its clips stay with their group, on
    one side only, and a notice says so; the others are split as `slr split` splits."""
    noun = grouping.noun
    part_groups = groups.iloc[train_part]
    if part_groups.nunique() < 2:
        raise SplitError(
            f"fold {number} (holding out {_shown(held)}) leaves one {noun} ({_shown(sorted(part_groups.unique()))}) "
            f"for its training and inner validation, which need two: use more {setting('folds')}", labels_csv)
    y = rows["gloss"].to_numpy(dtype=np.int64)[train_part]
    spread = pd.Series(part_groups.to_numpy()).groupby(y).nunique()
    thin = sorted(int(g) for g, n in spread.items() if n < 2)
    splittable = ~np.isin(y, thin)
    inner = split_labels(rows.iloc[train_part[splittable]], part_groups.iloc[splittable], grouping=grouping,
                         labels_csv=labels_csv, val=inner_val, seed=seed)
    if not inner.ok:
        raise SplitError(
            f"fold {number} (holding out {_shown(held)}): its training part cannot be split into inner "
            f"training and validation {noun}s: " + " ".join(inner.problems), labels_csv)
    side = pd.Series("train", index=range(len(train_part)), dtype=object)
    side[np.flatnonzero(splittable)] = inner.assignment.to_numpy()
    val_groups = set(part_groups.iloc[np.flatnonzero(side.to_numpy() == "val")])
    on_val = np.isin(part_groups.to_numpy(), list(val_groups))
    side[np.flatnonzero(~splittable & on_val)] = "val"  # a group is never on both sides
    labels = side.to_numpy()
    fold = Fold(number, train_part[labels == "train"], train_part[labels == "val"], test, held, sorted(val_groups))
    if thin:
        fold.notices.append(
            f"fold {number}: {len(thin)} gloss(es) ({_shown([str(g) for g in thin])}) have clips of one {noun} only "
            f"in its training part, so they are on one side of its inner split (trained on, or only validated)")
    return fold


def _shown(values: list[str]) -> str:
    more = f", ... ({len(values) - _NAMED} more)" if len(values) > _NAMED else ""
    return ", ".join(map(str, values[:_NAMED])) + more


def fold_label_files(folder: Path) -> dict[str, Path]:
    return {part: folder / f"labels_{part}.csv" for part in ("train", "val", "test")}


def write_fold_labels(raw: pd.DataFrame, index: pd.Index, fold: Fold, folder: Path) -> dict[str, Path]:
    """The fold's three label files (rows as written in the labels file, every column). `index`: the
    labels table's row labels (line numbers), which the fold's positions refer to."""
    files = fold_label_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, path in files.items():
        rows = raw.loc[index[getattr(fold, part)]]
        write_atomically(path, lambda f, rows=rows: f.write(labels_csv_bytes(rows)))
    return files


def describe_fold(fold: Fold, noun: str) -> str:
    return f"fold {fold.number}: {noun}s {_shown(fold.held_out)} held out ({len(fold.test)} clips)"
