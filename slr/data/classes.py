"""Class names from a classes file: `gloss,name,cat,cat_name` (as in FSL-105 and asl-words).

Read with the same reader and id rules as labels.csv (`3` and `3.0` are both id 3). Each gloss
id may appear once; a category id may repeat (one row per gloss) but must keep its name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slr.data.csv_table import TableError, integer_ids, read_table
from slr.errors import DataError

_LAYOUT = "gloss,name[,cat,cat_name]"


def read_class_names(path: Path) -> dict[str, dict[int, str]]:
    """{"gloss": {id: name}, "cat": {id: cat_name}}; `cat`/`cat_name` columns are optional."""
    path = Path(path)
    try:
        table = read_table(path, ("gloss", "name"), _LAYOUT)
    except TableError as error:
        if error.kind == "missing":
            raise DataError("classes file not found", path) from None
        if error.kind == "not_a_file":
            raise DataError(f"classes file {error.message}", path) from None
        raise DataError(f"classes file: {error.message}", path) from None
    gloss = _ids(table, "gloss", path)
    names: dict[str, dict[int, str]] = {"gloss": {}, "cat": {}}
    first_line: dict[str, dict[int, int]] = {"gloss": {}, "cat": {}}
    for line in table.index:
        _add(names, first_line, "gloss", int(gloss[line]), table.at[line, "name"], line, path)
    if "cat" in table.columns and "cat_name" in table.columns:
        with_cat = table[(table["cat"].str.strip() != "") & (table["cat_name"].str.strip() != "")]
        cat = _ids(with_cat, "cat", path)
        for line in with_cat.index:
            _add(names, first_line, "cat", int(cat[line]), with_cat.at[line, "cat_name"], line, path)
    return names


def _ids(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """The column's ids, or `DataError` naming the first line whose id is not a usable one."""
    ids = integer_ids(table[column])
    for line in table.index:
        if pd.isna(ids[line]):
            raise DataError(f"line {line}: {column} {table.at[line, column]!r} is not an integer id", path)
        if ids[line] < 0:
            raise DataError(f"line {line}: {column} {ids[line]} is negative", path)
    return ids


def _add(
    names: dict[str, dict[int, str]],
    first_line: dict[str, dict[int, int]],
    column: str,
    class_id: int,
    name: str,
    line: int,
    path: Path,
) -> None:
    """Record one id's name; a gloss listed twice, or a category with two names, is refused."""
    name = name.strip()
    if not name:  # a short row ("1"): a classes file is there to give names
        raise DataError(f"line {line}: {column} {class_id} has no name", path)
    seen = first_line[column].get(class_id)
    if seen is None:
        names[column][class_id] = name
        first_line[column][class_id] = line
    elif column == "gloss":
        raise DataError(f"line {line}: gloss {class_id} is already on line {seen}", path)
    elif names[column][class_id] != name:
        raise DataError(
            f"line {line}: cat {class_id} is named {name!r} here but {names[column][class_id]!r} on line {seen}",
            path,
        )


def gloss_categories(path: Path) -> dict[int, int]:
    """{gloss id: cat id} where the classes file gives a gloss its category (read after
    `read_class_names` has checked the file)."""
    table = read_table(Path(path), ("gloss", "name"), _LAYOUT)
    if "cat" not in table.columns:
        return {}
    rows = table[table["cat"].str.strip() != ""]
    gloss, cat = integer_ids(rows["gloss"]), integer_ids(rows["cat"])
    return {int(gloss[line]): int(cat[line]) for line in rows.index if pd.notna(gloss[line]) and pd.notna(cat[line])}


#: Glosses and disagreements named per notice; the count says how many more.
_NAMED = 5


def classes_file_notices(path: Path, names: dict[str, dict[int, str]], labels: "pd.DataFrame",
                         labels_path: Path) -> list[str]:
    """Where the classes file and the labels disagree: glosses the labels use that the file does not
    name (they are shown as "gloss N"), and glosses the file puts in another category than the
    labels do (training follows the labels)."""
    notices = []
    used = labels[labels["gloss"].notna()]
    glosses = sorted({int(g) for g in used["gloss"]})
    unnamed = [g for g in glosses if g not in names["gloss"]]
    if unnamed:
        more = f", ... ({len(unnamed) - _NAMED} more)" if len(unnamed) > _NAMED else ""
        notices.append(f"{path}: names {len(glosses) - len(unnamed)} of the {len(glosses)} glosses the labels "
                       f"use; gloss id(s) {', '.join(map(str, unnamed[:_NAMED]))}{more} have no name there "
                       f"(shown as 'gloss N')")
    filed = gloss_categories(path)
    pairs = used[used["cat"].notna()].groupby("gloss")["cat"].agg(lambda c: int(c.mode().iloc[0]))
    differ = [(int(g), filed[int(g)], int(c)) for g, c in pairs.items() if int(g) in filed and filed[int(g)] != int(c)]
    if differ:
        shown = "; ".join(f"gloss {g} ({names['gloss'].get(g, g)}): cat {f} there, {c} in the labels"
                          for g, f, c in differ[:_NAMED])
        more = f"; ... ({len(differ) - _NAMED} more)" if len(differ) > _NAMED else ""
        notices.append(f"{path}: {len(differ)} gloss(es) in another category than in {labels_path}: {shown}{more}; "
                       f"training uses the labels' categories")
    return notices
