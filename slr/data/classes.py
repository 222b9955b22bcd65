"""Class names from a classes file: `gloss,name,cat,cat_name` (as in FSL-105 and asl-words)."""

from __future__ import annotations

from pathlib import Path

from slr.errors import DataError


def read_class_names(path: Path) -> dict[str, dict[int, str]]:
    """{"gloss": {id: name}, "cat": {id: cat_name}}; `cat`/`cat_name` columns are optional."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError("classes file not found", path)
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable classes CSV: {str(exc).splitlines()[0]}", path) from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = {"gloss", "name"} - set(table.columns)
    if missing:
        raise DataError(f"classes file needs columns gloss,name[,cat,cat_name]; missing {', '.join(sorted(missing))}", path)
    names: dict[str, dict[int, str]] = {"gloss": {}, "cat": {}}
    for line, row in enumerate(table.itertuples(index=False), start=2):
        row = row._asdict()
        try:
            names["gloss"][int(row["gloss"])] = row["name"].strip()
            if row.get("cat", "") != "" and row.get("cat_name", "") != "":
                names["cat"][int(row["cat"])] = row["cat_name"].strip()
        except ValueError:
            raise DataError(f"line {line}: ids must be integers, got gloss={row['gloss']!r}", path) from None
    return names
