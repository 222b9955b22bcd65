"""labels.csv: one row per clip with `file,gloss[,cat]` (0-based ids); extra columns are kept.

`cat` is optional: labels without it are one category (0), and `LabelTable.categories` says so, so
that reports can leave category figures out.

`load_labels` parses leniently and lists every problem it finds (for `slr validate`);
`read_labels` is the strict form for training: it returns clean rows or raises `DataError`.
Accepted: a UTF-8 byte-order mark, CRLF line ends, `file` with or without `.npz`, names with
spaces, apostrophes and quotes, ids written as `3` or `3.0`.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from slr.data.clips import NPZ_SUFFIX, clip_stem
from slr.data.csv_table import TableError, integer_ids, read_table
from slr.data.problems import Problem
from slr.errors import DataError, setting

REQUIRED_COLUMNS = ("file", "gloss")
LAYOUT = "file,gloss[,cat]"
ID_COLUMNS = ("gloss", "cat")
ID_ORDER = ("file", "gloss", "cat")  # the columns every parsed table has, first
_ID_OPTIONS = {"gloss": setting("num_gloss"), "cat": setting("num_cat")}
_CLIP_NAME = re.compile(r"^clip_\d+_(.+)$")


@dataclass
class LabelTable:
    """The parsed labels: `rows` holds every row naming a clip, first occurrence only.

    Columns: `file` (the clip's stem), `gloss` and `cat` (nullable Int64: missing where the id
    is unusable), then the file's extra columns, whatever their names. The index is each row's
    line in the CSV (for messages): an index, not a column, so that no user column can clash
    with it (an extra column may well be called `line`).
    """

    path: Path
    rows: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    categories: bool = True  # False: the file has no cat column (every clip is category 0)

    @property
    def usable(self) -> pd.DataFrame:
        """Rows whose ids are both usable integers (negative or out-of-range ids excluded)."""
        return self.rows[self.rows["gloss"].notna() & self.rows["cat"].notna()]


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {"file": pd.Series(dtype=str), "gloss": pd.Series(dtype="Int64"), "cat": pd.Series(dtype="Int64")},
        index=pd.Index([], dtype=int),
    )


_TABLE_PROBLEMS = {
    "missing": "labels_missing",
    "not_a_file": "labels_unreadable",
    "unreadable": "labels_unreadable",
    "empty": "labels_empty",
    "columns": "labels_columns",
}


def _read_csv(path: Path) -> tuple[Optional[pd.DataFrame], list[Problem]]:
    try:
        return read_table(path, REQUIRED_COLUMNS, LAYOUT, optional=("cat",)), []
    except TableError as error:
        message = f"labels file not found: {path}" if error.kind == "missing" else error.message
        return None, [Problem(_TABLE_PROBLEMS[error.kind], path.name, message)]


def _parse_ids(table: pd.DataFrame, column: str, limit: Optional[int], where: str) -> tuple[pd.Series, list[Problem]]:
    """Integer ids as nullable Int64 (missing where unusable), and a problem per unusable one."""
    ids = integer_ids(table[column])
    integral = ids.notna()
    problems = []
    for index in table.index[~integral]:
        value = table.at[index, column]
        problems.append(
            _row_problem("non_integer_id", table, index, where, f"{column} {value!r} is not an integer id")
        )
    negative = integral & (ids < 0)
    for index in table.index[negative]:
        problems.append(_row_problem("negative_id", table, index, where, f"{column} {ids[index]} is negative"))
    if limit is not None:
        too_big = integral & (ids >= limit)
        for index in table.index[too_big]:
            problems.append(
                _row_problem(
                    "id_out_of_range",
                    table,
                    index,
                    where,
                    f"{column} {ids[index]} is outside 0..{limit - 1} ({_ID_OPTIONS[column]} {limit})",
                )
            )
        ids[too_big] = pd.NA
    ids[negative] = pd.NA
    return ids, problems


def _row_problem(kind: str, table: pd.DataFrame, index: object, where: str, message: str) -> Problem:
    clip = str(table.at[index, "file"]).strip()
    file = clip_stem(clip) + NPZ_SUFFIX if clip else where
    return Problem(kind, file, f"{where} line {index}: {message}")


def load_labels(path: Path, *, num_gloss: Optional[int] = None, num_cat: Optional[int] = None) -> LabelTable:
    """Parse labels.csv and list every problem in it that does not need the clip files."""
    path = Path(path)
    table, problems = _read_csv(path)
    if table is None:
        return LabelTable(path, _empty_rows(), problems)
    where = path.name
    categories = "cat" in table.columns
    if not categories:  # one category: training's category head has one class, reports show none
        table["cat"] = "0"

    named = table["file"].str.strip() != ""
    for index in table.index[~named]:
        problems.append(Problem("bad_row", where, f"{where} line {index}: no clip name in 'file'"))
    table = table[named].copy()
    table["file"] = table["file"].map(clip_stem)

    for column, limit in (("gloss", num_gloss), ("cat", num_cat)):
        table[column], found = _parse_ids(table, column, limit, where)
        problems += found

    problems += _duplicate_problems(table, where)
    rows = table.drop_duplicates("file", keep="first")
    rows = rows[[*ID_ORDER] + [c for c in rows.columns if c not in ID_ORDER]]
    labels = LabelTable(path, rows, problems, categories)
    labels.problems += _gloss_category_problems(labels.usable, where)
    return labels


def _duplicate_problems(table: pd.DataFrame, where: str) -> list[Problem]:
    problems = []
    first_seen: dict[str, object] = {}
    for index, name in zip(table.index, table["file"]):
        if name not in first_seen:
            first_seen[name] = index
            continue
        first = first_seen[name]
        same = all(_same_id(table.at[index, c], table.at[first, c]) for c in ID_COLUMNS)
        detail = "with the same labels" if same else (
            f"with different labels (gloss {table.at[index, 'gloss']}, cat {table.at[index, 'cat']} "
            f"vs gloss {table.at[first, 'gloss']}, cat {table.at[first, 'cat']})"
        )
        problems.append(
            Problem(
                "duplicate_row",
                name + NPZ_SUFFIX,
                f"{where} line {index} repeats line {first} {detail}",
            )
        )
    return problems


def _same_id(a: object, b: object) -> bool:
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return bool(a == b)


def _gloss_category_problems(rows: pd.DataFrame, where: str) -> list[Problem]:
    problems = []
    pairs = rows.groupby(["gloss", "cat"]).size()
    for gloss, per_cat in pairs.groupby(level="gloss"):
        if len(per_cat) < 2:
            continue
        counts = ", ".join(f"{cat} ({n} clip{'s' if n != 1 else ''})" for (_, cat), n in per_cat.items())
        rare_cat = per_cat.idxmin()[1]
        examples = rows[(rows["gloss"] == gloss) & (rows["cat"] == rare_cat)]["file"].head(3).tolist()
        problems.append(
            Problem(
                "gloss_in_two_categories",
                where,
                f"gloss {gloss} is in categories {counts}; e.g. category {rare_cat}: {', '.join(examples)}",
            )
        )
    return problems


def read_labels(path: Path, *, num_gloss: Optional[int] = None, num_cat: Optional[int] = None) -> pd.DataFrame:
    """Clean labels rows (`file`, `gloss`, `cat` as int64, extras; index = line) or `DataError`."""
    labels = load_labels(path, num_gloss=num_gloss, num_cat=num_cat)
    errors = [p for p in labels.problems if p.is_error]
    if errors:
        more = f" (and {len(errors) - 1} more problems; run `slr validate` on the directory)" if len(errors) > 1 else ""
        first = errors[0]
        # A problem with the labels file itself is named by `path` already; one with a row names its clip.
        text = first.message if first.file == path.name else str(first)
        raise DataError(f"{text}{more}", path)
    rows = labels.rows.copy()
    rows["gloss"] = rows["gloss"].astype("int64")
    rows["cat"] = rows["cat"].astype("int64")
    return rows


def gloss_name_from_clip(stem: str) -> str:
    """The sign named in a clip's file name: `clip_0089_how are you` -> `how are you`."""
    match = _CLIP_NAME.match(clip_stem(stem))
    return match.group(1) if match else clip_stem(stem)


def class_names_from_clips(names: Sequence[str], gloss: Sequence[int]) -> dict[int, str]:
    """Gloss id -> name, taking the most common name among that gloss's clip file names."""
    votes: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, gloss_id in zip(names, gloss):
        votes[int(gloss_id)][gloss_name_from_clip(name)] += 1
    # Ties go to the alphabetically first name so the result never depends on clip order.
    return {g: min(c, key=lambda n: (-c[n], n)) for g, c in sorted(votes.items())}
