"""Train / val [/ test] splits in which no group (signer, session, recording block) is in two splits.

A model is judged by how it does on signers it has never seen; a validation set that shares signers
with training measures something easier. `split_labels` assigns whole groups to splits, stratified
by gloss as far as the groups allow, with scikit-learn's `StratifiedGroupKFold` (well kept and
tested; we do not write our own splitter). It is pure: it returns a `SplitResult` with the
assignment, the groups and clips per class per split, and the problems that refuse the split.
`split_directory` is `slr split`: it reads labels.csv, splits, and writes `labels_train.csv`,
`labels_val.csv` (and `labels_test.csv`) beside it, each keeping every column of the original rows.

`shared_groups` finds groups in two label tables at once; `slr validate` and `slr train` warn with
it (`split_group_problems`, `train_val_group_notices`). Those need no scikit-learn: it is imported
only when a split is made.

Why a class that cannot be in every split is an error, not a warning: "stratified as far as the
groups allow" is about proportions, which groups make approximate; but a gloss missing from train
cannot be learnt and then counts as wrong in val, and one missing from val is never measured. A
split that silently did either would look fine and report a number about other classes. So the
split is refused, naming the classes, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional

import numpy as np
import pandas as pd

from slr.atomic import write_atomically
from slr.data.clips import scan_clip_dir
from slr.data.csv_table import read_table
from slr.data.labels import REQUIRED_COLUMNS, LabelTable, class_names_from_clips, load_labels, read_labels
from slr.data.problems import Problem
from slr.errors import DataError, SlrError, setting

if TYPE_CHECKING:
    from slr.settings import SplitSettings

SPLITS = ("train", "val", "test")
#: Columns that name a group wherever they appear: `slr validate` and `slr train` check them.
WELL_KNOWN_GROUP_COLUMNS = ("signer", "session", "subject", "participant", "speaker")
#: A labels column that assigns each row to a split (the FSL-105 originals carry one).
SPLIT_COLUMN = "split"
#: Shuffles tried (all derived from the seed) before a class that could be placed is given up on.
ATTEMPTS = 10
#: Groups and classes named in one message before the rest are counted.
_NAMED = 5
INSTALL_HINT = 'pip install -e ".[split]"'


class SplitError(DataError):
    """A split that cannot be made as asked (a class in too few groups, too few groups)."""


@dataclass(frozen=True)
class Grouping:
    """How clips are grouped: by a labels column, or by a regular expression on the clip name."""

    kind: Literal["column", "regex"]
    spec: str

    def describe(self) -> str:
        return f"column {self.spec!r}" if self.kind == "column" else f"regular expression {self.spec!r} on clip names"

    @property
    def noun(self) -> str:
        """What one group is called in messages: 'signer', or 'group' for a regex."""
        return self.spec if self.kind == "column" else "group"


@dataclass(frozen=True)
class ClassCount:
    groups: int
    clips: int


@dataclass
class SplitResult:
    """The outcome of a split. `assignment` maps each row (by its line in the labels file) to a split;
    it is empty when `problems` refuse the split."""

    labels_csv: Path
    grouping: Grouping
    seed: int
    requested: dict[str, float]
    assignment: pd.Series
    groups: pd.Series
    gloss: pd.Series
    class_names: dict[int, str]
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.requested)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, dict[int, ClassCount]]:
        """Per split, per gloss id: how many groups and clips it has there (0 where absent)."""
        result: dict[str, dict[int, ClassCount]] = {}
        classes = sorted(int(g) for g in self.gloss.unique())
        for name in self.splits:
            part = self.assignment == name
            gloss, groups = self.gloss[part], self.groups[part]
            per_class = {}
            for g in classes:
                here = gloss == g
                per_class[g] = ClassCount(int(groups[here].nunique()), int(here.sum()))
            result[name] = per_class
        return result

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per split: groups, clips, the share of the clips it got, and the share asked for."""
        total = max(len(self.assignment), 1)
        result = {}
        for name in self.splits:
            part = self.assignment == name
            clips = int(part.sum())
            result[name] = {
                "groups": int(self.groups[part].nunique()),
                "clips": clips,
                "share": clips / total,
                "requested": self.requested[name],
            }
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: what `slr split --json` prints."""
        counts = self.counts() if self.ok else {}
        return {
            "ok": self.ok,
            "labels_csv": str(self.labels_csv),
            "group_by": {"kind": self.grouping.kind, "spec": self.grouping.spec},
            "seed": self.seed,
            "splits": self.totals() if self.ok else {},
            "outputs": {name: str(path) for name, path in self.outputs.items()},
            "classes": [
                {
                    "gloss": g,
                    "name": self.class_names.get(g, ""),
                    **{name: {"groups": counts[name][g].groups, "clips": counts[name][g].clips} for name in counts},
                }
                for g in sorted(self.class_names)
            ],
            "problems": self.problems,
            "notices": self.notices,
        }


# ---------------------------------------------------------------------------------------------
# Groups: a column or a regular expression on the clip name
# ---------------------------------------------------------------------------------------------


def grouping_for(spec: str, columns: Iterable[str]) -> Grouping:
    """A column of that name wins; anything else is a regular expression (refused if it does not compile)."""
    columns = list(dict.fromkeys(columns))
    if spec in columns:
        return Grouping("column", spec)
    try:
        re.compile(spec)
    except re.error as exc:
        raise DataError(
            f"{setting('group_by')} {spec!r} is neither a column of the labels (columns: {', '.join(columns)}) "
            f"nor a regular expression ({exc})"
        ) from None
    return Grouping("regex", spec)


def group_values(rows: pd.DataFrame, grouping: Grouping) -> pd.Series:
    """Each row's group as text; missing (NA) where the row has none (empty cell, no regex match)."""
    if grouping.kind == "column":
        values = rows[grouping.spec].astype(str).str.strip()
        return values.where(values != "")
    pattern = re.compile(grouping.spec)

    def key(name: str) -> Optional[str]:
        match = pattern.search(name)
        if match is None:
            return None
        value = match.group(1) if pattern.groups else match.group(0)
        return value or None  # an optional capture group that took no part, or an empty match

    return rows["file"].map(key)


def group_keys(rows: pd.DataFrame, spec: str, where: Path) -> tuple[pd.Series, Grouping]:
    """Every row's group, or `DataError` naming rows without one (a split must place every clip)."""
    grouping = grouping_for(spec, [c for c in rows.columns])
    values = group_values(rows, grouping)
    missing = values.isna()
    if not missing.any():
        return values, grouping
    examples = ", ".join(f"line {line} ({name})" for line, name in rows["file"][missing].head(3).items())
    if grouping.kind == "column":
        raise DataError(
            f"{int(missing.sum())} of {len(rows)} rows have no {spec!r} value, e.g. {examples}: "
            "every clip needs a group", where
        )
    if missing.all():
        columns = ", ".join(rows.columns)
        raise DataError(
            f"{setting('group_by')} {spec!r} is not a column (columns: {columns}) and, as a regular expression, "
            "finds a group in "
            f"no clip name, e.g. {examples}", where
        )
    raise DataError(
        f"the regular expression {spec!r} finds no group in {int(missing.sum())} of {len(rows)} clip names, "
        f"e.g. {examples}: every clip needs a group", where
    )


# ---------------------------------------------------------------------------------------------
# The split itself
# ---------------------------------------------------------------------------------------------


def _sklearn_splitter():
    try:
        from sklearn.model_selection import StratifiedGroupKFold
    except ImportError:
        raise SlrError(f"splitting needs scikit-learn, which is not installed: {INSTALL_HINT}") from None
    return StratifiedGroupKFold


def split_labels(
    rows: pd.DataFrame,
    groups: pd.Series,
    *,
    grouping: Grouping,
    labels_csv: Path,
    val: float,
    test: Optional[float] = None,
    seed: int = 0,
) -> SplitResult:
    """Assign whole groups to train / val [/ test]; no group in two splits, every class in every split.

    Test is taken first from all clips, then val from the rest, each with `StratifiedGroupKFold`:
    `k` folds with `1/k` nearest the share asked (for val: of what test left), and of the folds the
    one that leaves no class out of either side, then the one whose size is nearest the share.
    Shuffles are derived from `seed`: the same rows, groups and seed give the same split (with the
    same scikit-learn). Where the first shuffle leaves a class out, up to `ATTEMPTS` are tried.
    """
    # rounded: 1 - 0.3 - 0.3 is 0.39999999999999997, which reads badly in --json
    requested = {"train": round(1 - val - (test or 0), 12), "val": val, **({"test": test} if test else {})}
    gloss = rows["gloss"].astype("int64")
    result = SplitResult(
        labels_csv=Path(labels_csv),
        grouping=grouping,
        seed=seed,
        requested=requested,
        assignment=pd.Series(dtype=object, index=pd.Index([], dtype=rows.index.dtype)),
        groups=groups,
        gloss=gloss,
        class_names=class_names_from_clips(list(rows["file"]), list(gloss)),
    )
    result.problems = _unplaceable(gloss, groups, grouping, len(requested), result.class_names)
    if result.problems:
        return result
    splitter = _sklearn_splitter()
    y = gloss.to_numpy()
    codes = pd.factorize(groups, sort=True)[0]  # sorted: group names, not row order, decide the codes
    best: Optional[tuple[tuple[int, float], np.ndarray]] = None
    for state in np.random.SeedSequence(seed).generate_state(ATTEMPTS):
        labels = _assign(splitter, y, codes, requested, int(state))
        score = _score(labels, y, requested)
        if best is None or score < best[0]:
            best = (score, labels)
        if score[0] == 0:
            break
    assert best is not None
    result.assignment = pd.Series(best[1], index=rows.index, dtype=object)
    result.problems = _left_out(result)
    return result


def _assign(splitter, y: np.ndarray, groups: np.ndarray, requested: dict[str, float], state: int) -> np.ndarray:
    labels = np.full(len(y), "train", dtype=object)
    pool = np.arange(len(y))
    stages = [name for name in ("test", "val") if name in requested]
    left = 1.0
    for i, name in enumerate(stages):
        # What stays must still give every class a group for each split after this one.
        need = len(stages) - i
        held = _hold_out(splitter, y[pool], groups[pool], requested[name] / left, state, need)
        labels[pool[held]] = name
        pool = pool[~held]
        left -= requested[name]
    return labels


def _fold_count(share: float, n_groups: int) -> int:
    """`k` with `1/k` nearest `share` (at most 0.5), no more than there are groups."""
    candidates = {max(2, math.floor(1 / share)), max(2, math.ceil(1 / share))}
    k = min(candidates, key=lambda c: (abs(1 / c - share), c))
    return max(2, min(k, n_groups))


def _hold_out(splitter, y: np.ndarray, groups: np.ndarray, share: float, state: int, need: int) -> np.ndarray:
    """A mask of the rows held out: one `StratifiedGroupKFold` fold (its complement for a share over half)."""
    held = np.zeros(len(y), dtype=bool)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return held  # nothing can be held out; the split is then reported as leaving classes out
    flip = share > 0.5
    k = _fold_count(1 - share if flip else share, n_groups)
    # sklearn refuses more folds than the largest class has clips; a fold then holds few classes
    k = max(2, min(k, int(np.bincount(y - y.min()).max())))
    target = share * len(y)
    best: Optional[tuple[tuple[int, float], np.ndarray]] = None
    with warnings.catch_warnings():
        # "The least populated class in y has only N members": classes are checked by us, per group
        warnings.simplefilter("ignore", UserWarning)
        folds = splitter(n_splits=k, shuffle=True, random_state=state).split(np.zeros(len(y)), y, groups)
        for _, fold in folds:
            mask = np.zeros(len(y), dtype=bool)
            mask[fold] = True
            if flip:
                mask = ~mask
            score = (_classes_short(y, groups, mask, need), abs(float(mask.sum()) - target))
            if best is None or score < best[0]:
                best = (score, mask)
    return best[1] if best is not None else held


def _classes_short(y: np.ndarray, groups: np.ndarray, held: np.ndarray, need: int) -> int:
    """Classes absent from the held-out part, plus those left with fewer than `need` groups in the rest."""
    short = len(set(y) - set(y[held]))
    kept = pd.DataFrame({"y": y[~held], "g": groups[~held]}).groupby("y")["g"].nunique()
    short += sum(1 for c in set(y) if kept.get(c, 0) < need)
    return short


def _score(labels: np.ndarray, y: np.ndarray, requested: dict[str, float]) -> tuple[int, float]:
    """(class-split pairs with no clips, distance of the shares from those asked): lower is better."""
    classes = set(y)
    missing = sum(len(classes - set(y[labels == name])) for name in requested)
    distance = sum(abs(float(np.mean(labels == name)) - share) for name, share in requested.items())
    return missing, distance


def _class_label(g: int, names: dict[int, str]) -> str:
    name = names.get(g)
    return f"gloss {g} ({name})" if name and name != str(g) else f"gloss {g}"


def _split_words(n: int) -> str:
    return "train and val" if n == 2 else "train, val and test"


def _unplaceable(
    gloss: pd.Series, groups: pd.Series, grouping: Grouping, n_splits: int, names: dict[int, str]
) -> list[str]:
    """Why no split can put every class in every split: too few groups overall, or per class."""
    noun = grouping.noun
    distinct = sorted(groups.unique())
    if len(distinct) < n_splits:
        shown = ", ".join(repr(g) for g in distinct[:_NAMED])
        return [
            f"only {len(distinct)} {noun} value(s) ({shown}) by {grouping.describe()}: {_split_words(n_splits)} "
            f"need at least {n_splits}, as no {noun} may be in two splits"
        ]
    per_class = pd.DataFrame({"gloss": gloss, "group": groups}).groupby("gloss")["group"]
    too_few = []
    for g, members in per_class:
        found = sorted(members.unique())
        if len(found) < n_splits:
            where = ", ".join(repr(v) for v in found[:_NAMED])
            too_few.append(f"{_class_label(int(g), names)}: {len(members)} clip(s) in {len(found)} {noun}(s) ({where})")
    if not too_few:
        return []
    shown = "; ".join(too_few[:_NAMED]) + (f"; ... ({len(too_few) - _NAMED} more)" if len(too_few) > _NAMED else "")
    return [
        f"{len(too_few)} class(es) cannot be in each of {_split_words(n_splits)}: a class needs clips in at least "
        f"{n_splits} {noun}s, as no {noun} may be in two splits. {shown}. Remove these classes from the labels, "
        f"or group by something finer than {grouping.describe()}"
    ]


def _left_out(result: SplitResult) -> list[str]:
    """Classes the chosen split left out of a split although they have enough groups (rare)."""
    counts = result.counts()
    problems = []
    for name in result.splits:
        absent = [g for g, count in counts[name].items() if count.clips == 0]
        if absent:
            shown = ", ".join(_class_label(g, result.class_names) for g in absent[:_NAMED])
            more = f", ... ({len(absent) - _NAMED} more)" if len(absent) > _NAMED else ""
            problems.append(
                f"no split found with every class in {name}: {len(absent)} class(es) left out ({shown}{more}) "
                f"after {ATTEMPTS} shuffles; try another {setting('seed')}, or a larger share for {name}"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# `slr split`: read, split, write
# ---------------------------------------------------------------------------------------------


def split_file_paths(labels_csv: Path) -> dict[str, Path]:
    """Where each split's labels go: `labels_train.csv` etc. beside `labels.csv` (`<stem>_<split>.csv`)."""
    labels_csv = Path(labels_csv)
    return {name: labels_csv.with_name(f"{labels_csv.stem}_{name}.csv") for name in SPLITS}


def split_directory(settings: "SplitSettings") -> SplitResult:
    """`slr split`: refuse, or write the split label files and return what was done."""
    directory = Path(settings.directory)
    if not directory.is_dir():
        raise DataError("clip directory not found" if not directory.exists() else "not a directory", directory)
    labels_csv = Path(settings.labels_csv) if settings.labels_csv is not None else directory / "labels.csv"
    paths = split_file_paths(labels_csv)
    existing = [p for p in paths.values() if p.exists()]
    if existing and not settings.overwrite:
        names = ", ".join(p.name for p in existing)
        raise DataError(
            f"{names} already exist(s) beside {labels_csv.name} (an earlier split?); nothing was written. "
            f"{setting('overwrite')} replaces them", labels_csv.parent
        )
    _sklearn_splitter()  # before any reading: the missing package is the first thing to fix
    rows = read_labels(labels_csv)
    groups, grouping = group_keys(rows, settings.group_by, labels_csv)
    result = split_labels(
        rows, groups, grouping=grouping, labels_csv=labels_csv, val=settings.val, test=settings.test, seed=settings.seed
    )
    if not result.ok:
        raise SplitError("cannot split: " + "\n".join(result.problems), labels_csv)
    raw = read_table(labels_csv, REQUIRED_COLUMNS, "file,gloss[,cat]")
    for name in result.splits:
        part = raw.loc[result.assignment.index[result.assignment == name]]
        write_atomically(paths[name], lambda f, part=part: f.write(labels_csv_bytes(part)))
        result.outputs[name] = paths[name]
    stale = paths["test"]
    if "test" not in result.splits and stale.exists():
        # An earlier three-way split's test file may share groups with the new train split.
        stale.unlink()
        result.notices.append(f"removed {stale.name} from an earlier split: its groups may now be in train")
    result.notices += _absent_clip_notices(rows, directory, labels_csv)
    return result


def labels_csv_bytes(rows: pd.DataFrame) -> bytes:
    """The rows as they were written in the labels file (text cells, every column), header first."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(rows.columns)
    writer.writerows(rows.itertuples(index=False, name=None))
    return text.getvalue().encode("utf-8")


def _absent_clip_notices(rows: pd.DataFrame, directory: Path, labels_csv: Path) -> list[str]:
    absent = sorted(set(rows["file"]) - scan_clip_dir(directory).stems)
    if not absent:
        return []
    return [
        f"{len(absent)} clip(s) in {labels_csv.name} are not in {directory} (e.g. {absent[0]}); they are split "
        "like the others, and training will refuse them until they are there"
    ]


# ---------------------------------------------------------------------------------------------
# Warnings: groups shared by train and val (slr validate, slr train)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedGroups:
    grouping: Grouping
    shared: list[str]
    first_groups: int
    second_groups: int

    def message(self, first: str, second: str, held_out: Optional[str] = None) -> str:
        """`held_out`: how the second table's results are called (default: its name)."""
        noun = self.grouping.noun
        shown = ", ".join(self.shared[:_NAMED]) + (", ..." if len(self.shared) > _NAMED else "")
        how = "" if self.grouping.kind == "column" else f" (by {self.grouping.describe()})"
        results = f"{held_out} results" if held_out else f"results on {second}"
        return (
            f"{first} and {second} share {len(self.shared)} {noun}(s){how}: {shown} (of {self.first_groups} "
            f"and {self.second_groups}), so {results} are not on unseen {noun}s"
        )


def shared_groups(first: pd.DataFrame, second: pd.DataFrame, grouping: Grouping | str) -> Optional[SharedGroups]:
    """Groups found in both tables (rows without a group are ignored); None when none are shared
    or when a grouping column is missing from either table."""
    if isinstance(grouping, str):
        grouping = Grouping("column", grouping)
    if grouping.kind == "column" and not (grouping.spec in first.columns and grouping.spec in second.columns):
        return None
    a = set(group_values(first, grouping).dropna())
    b = set(group_values(second, grouping).dropna())
    both = sorted(a & b, key=_natural)
    if not both:
        return None
    return SharedGroups(grouping, both, len(a), len(b))


def _natural(text: str) -> tuple:
    """'2' before '10', 'signer2' before 'signer10'."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def known_group_columns(*tables: pd.DataFrame) -> list[Grouping]:
    """The well-known group columns (signer, session, ...) that every table carries."""
    return [
        Grouping("column", c) for c in WELL_KNOWN_GROUP_COLUMNS if all(c in t.columns for t in tables)
    ]


def train_val_group_notices(train: LabelTable, val: LabelTable) -> list[str]:
    """`slr train`'s warning: the well-known group columns of both label files, groups in both."""
    notices = []
    for grouping in known_group_columns(train.rows, val.rows):
        found = shared_groups(train.rows, val.rows, grouping)
        if found:
            notices.append(
                found.message(f"training labels ({train.path})", f"validation labels ({val.path})", "validation")
            )
    return notices


def split_group_problems(labels: LabelTable, group_by: Optional[str] = None) -> list[Problem]:
    """`slr validate`'s warnings: groups that a train split shares with another split.

    The splits compared: the values of a `split` column of the labels (train against each other
    value; all pairs when none is called train), and split files beside the labels file
    (`labels_train.csv` against `labels_val.csv` and `labels_test.csv`). The groups: `group_by`
    (a column or a regular expression), and every well-known group column present.
    """
    chosen = _asked_grouping(labels, group_by) if group_by is not None else None
    problems = []
    for (first_name, first), (second_name, second) in _split_pairs(labels):
        groupings = known_group_columns(first, second)
        if chosen is not None:
            groupings = [chosen] + [g for g in groupings if g != chosen]
        for grouping in groupings:
            found = shared_groups(first, second, grouping)
            if found:
                problems.append(Problem("shared_group", labels.path.name, found.message(first_name, second_name)))
    return problems


def _asked_grouping(labels: LabelTable, group_by: str) -> Grouping:
    """The grouping asked for, refused (`DataError`) when it can find nothing: a mistyped column
    would otherwise be a regular expression that matches no clip, and the check would pass silently."""
    grouping = grouping_for(group_by, labels.rows.columns)
    if grouping.kind == "regex" and not labels.rows.empty and group_values(labels.rows, grouping).isna().all():
        raise DataError(
            f"{setting('group_by')} {group_by!r} is not a column (columns: {', '.join(labels.rows.columns)}) and, "
            f"as a regular expression, finds a group in no clip name (e.g. {labels.rows['file'].iloc[0]})",
            labels.path,
        )
    return grouping


def _split_pairs(labels: LabelTable) -> list[tuple[tuple[str, pd.DataFrame], tuple[str, pd.DataFrame]]]:
    pairs = []
    rows = labels.rows
    if SPLIT_COLUMN in rows.columns:
        values = rows[SPLIT_COLUMN].astype(str).str.strip()
        names = sorted(v for v in values.unique() if v)
        tables = {v: rows[values == v] for v in names}
        train = [v for v in names if v.lower() == "train"]
        if train:
            pairs += [((f"split {train[0]!r}", tables[train[0]]), (f"split {v!r}", tables[v])) for v in names if v != train[0]]
        else:
            pairs += [((f"split {a!r}", tables[a]), (f"split {b!r}", tables[b])) for i, a in enumerate(names) for b in names[i + 1:]]
    files = _sibling_split_files(labels.path)
    if "train" in files:
        train_rows = _rows_of(files["train"], labels)
        for name in ("val", "test"):
            if name in files:
                pairs.append(((files["train"].name, train_rows), (files[name].name, _rows_of(files[name], labels))))
    return pairs


def _sibling_split_files(labels_csv: Path) -> dict[str, Path]:
    """The split files that exist beside the labels file; `labels_val.csv` finds `labels_train.csv` too."""
    stem = labels_csv.stem
    for name in SPLITS:
        if stem.endswith(f"_{name}"):
            stem = stem[: -len(name) - 1]
            break
    base = labels_csv.with_name(stem + labels_csv.suffix)
    return {name: path for name, path in split_file_paths(base).items() if path.is_file()}


def clips_in_other_splits(labels_csv: Path) -> set[str]:
    """Clip names that the other split files beside a split file label (`labels_val.csv` for
    `labels_train.csv`): in one directory shared by the splits, those clips are not unlabelled."""
    labels_csv = Path(labels_csv)
    siblings = _sibling_split_files(labels_csv)
    if labels_csv not in siblings.values():
        return set()
    names: set[str] = set()
    for path in siblings.values():
        if path != labels_csv:
            names |= set(load_labels(path).rows["file"])
    return names


def _rows_of(path: Path, labels: LabelTable) -> pd.DataFrame:
    if path == labels.path:
        return labels.rows
    return load_labels(path).rows  # lenient: its own problems are for its own check
