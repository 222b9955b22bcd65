"""How many gloss and category classes the data has, for `--num-gloss` / `--num-cat` left unset.

The count is one more than the largest id that the labels files (training and validation) or the
classes file use, so that every id has its output and the model built matches the classes file's
numbering; a labels file without a `cat` column has one category. The labels themselves are checked
later, as always (an id that is not an integer is reported there, naming its line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from slr.data.csv_table import TableError, integer_ids, read_table


def _largest(path: Path, column: str, required: tuple[str, ...]) -> tuple[Optional[int], bool]:
    """The largest usable id of ``column`` in the CSV at ``path`` and whether the column is there;
    (None, True) for a file that cannot be read (its reader names the problem later)."""
    try:
        table = read_table(path, required, ",".join(required))
    except TableError:
        return None, True
    if column not in table.columns:
        return None, False
    ids = integer_ids(table[column])
    ids = ids[ids.notna() & (ids >= 0)]
    return (int(ids.max()) if len(ids) else None), True


def class_counts(labels: Sequence[Path], classes_csv: Optional[Path]) -> tuple[int, int]:
    """(num_gloss, num_cat) the labels and the classes file need; at least 2 glosses and 1 category."""
    gloss, cat, has_cat = [], [], False
    for path in labels:
        largest, _ = _largest(Path(path), "gloss", ("file", "gloss"))
        gloss.append(largest)
        largest, present = _largest(Path(path), "cat", ("file", "gloss"))
        has_cat |= present
        cat.append(largest)
    if classes_csv is not None:
        gloss.append(_largest(Path(classes_csv), "gloss", ("gloss", "name"))[0])
        if has_cat:
            cat.append(_largest(Path(classes_csv), "cat", ("gloss", "name"))[0])
    num_gloss = max((g for g in gloss if g is not None), default=1) + 1
    num_cat = max((c for c in cat if c is not None), default=0) + 1 if has_cat else 1
    return max(num_gloss, 2), num_cat
