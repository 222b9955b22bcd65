"""Reading the small CSV files slr takes (labels.csv, classes.csv) the same way, with the same id rules.

`read_table` returns every cell as text, indexed by the row's line in the file, and raises
`TableError` with a short reason otherwise; `integer_ids` parses an id column. Both files share
them so that a value accepted in one (`3.0`) is accepted in the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slr.data.files import describe_non_file


class TableError(Exception):
    """Why a CSV file cannot be read.

    `kind`: "missing", "not_a_file" (a directory, a broken link, ...), "unreadable", "empty" or
    "columns".
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def read_table(path: Path, required: tuple[str, ...], layout: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a CSV file as text, indexed by line number; blank lines are dropped.

    The header row is read as data (`header=None`) and applied here, so pandas neither renames a
    repeated column (`cat` and `cat.1`) nor takes the first column as an index when the rows are
    one field longer than the header: a row of the wrong length is an error naming its line.
    Column names are stripped of spaces; extra columns are kept under any name. `layout` is the
    expected header, for messages ("file,gloss,cat"). `optional` columns need not be there, but like
    the required ones may not appear twice.
    """
    path = Path(path)
    if not path.is_file():
        what = describe_non_file(path)
        raise TableError("missing" if what == "not found" else "not_a_file", f"is {what}, not a CSV file")
    try:
        if not path.read_bytes().strip():
            raise TableError("empty", "the file is empty")
        # Blank lines are kept (as rows of empty cells) so that row i is line i + 1 in messages.
        table = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=False
        )
    except UnicodeDecodeError as exc:
        raise TableError("unreadable", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError("unreadable", f"not a readable CSV file ({reason})") from None
    table.index = np.arange(len(table)) + 1
    names = [str(c).strip() for c in table.iloc[0]]
    table = table.iloc[1:]
    missing = [c for c in required if c not in names]
    if missing:
        found = ", ".join(n for n in names if n) or "none"
        raise TableError("columns", f"missing column(s) {', '.join(missing)}; expected {layout} (found: {found})")
    repeated = sorted({c for c in (*required, *optional) if names.count(c) > 1})
    if repeated:  # which of the two is meant cannot be guessed
        raise TableError("columns", f"column(s) {', '.join(repeated)} appear more than once in the header")
    table.columns = _unique(names)
    # A blank line reads as a row of empty cells: skip it silently, like a trailing newline.
    table = table[~(table == "").all(axis=1)]
    if table.empty:
        raise TableError("empty", "the file has a header but no rows")
    return table


def _unique(names: list[str]) -> list[str]:
    """Extra columns with the same name (or no name) stay apart: `note`, `note.1`; `column 4`."""
    seen: set[str] = set()
    result = []
    for position, name in enumerate(names, start=1):
        base = name or f"column {position}"
        unique, n = base, 0
        while unique in seen:
            n += 1
            unique = f"{base}.{n}"
        seen.add(unique)
        result.append(unique)
    return result


def integer_ids(text: pd.Series) -> pd.Series:
    """Ids as nullable Int64: `3`, ` 3 `, `3.0` and `3e0` are 3; anything else is missing (NA).

    Negative ids are returned as they are: callers say why they are refused.
    """
    number = pd.to_numeric(text.str.strip(), errors="coerce")
    # Beyond 2**53 a float no longer holds every integer exactly: not a plausible class id anyway.
    integral = number.notna() & (number.abs() < 2**53) & (number == np.floor(number))
    ids = pd.Series(pd.NA, index=text.index, dtype="Int64")
    ids[integral] = number[integral].astype("int64")
    return ids
