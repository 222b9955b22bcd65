"""What an import writes into its output folder: the clips, labels.csv, classes.csv and layout.json.

Clips are written atomically (slr/atomic.py) and carry `X`, `mask`, `timestamps_ms` where the source
has times, and `meta`; a clip whose meta names the same source and import settings is complete and
skipped by the next run. The three tables are checked before any clip is written: an existing
labels.csv or classes.csv is kept whole (every row and column) and added to, or the import is
refused with the reason; an existing layout.json must declare the same layout.

classes.csv ids: on the first import the sign names in Unicode order (case-folded first, so `Hello`
sits beside `hello`); later imports keep every existing id and append new names in the same order.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from slr import __version__
from slr.atomic import raise_if_disk_full, temporary_name, write_atomically
from slr.data.clips import clip_stem
from slr.data.layout_file import read_layout_file
from slr.errors import DataError
from slr.importers.points import KeptPoints, select
from slr.importers.sequence import Sequence

LABELS, CLASSES, LAYOUT = "labels.csv", "classes.csv", "layout.json"


def clip_arrays(sequence: Sequence, kept: KeptPoints, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    x, mask = select(kept, sequence.parts, sequence.frames)
    arrays = {"X": x, "mask": mask, "meta": np.array(json.dumps(meta, sort_keys=True))}
    if sequence.timestamps_ms is not None:
        arrays["timestamps_ms"] = np.asarray(sequence.timestamps_ms, np.float64)
    return arrays


def write_clip(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Written beside its name and renamed into place, as slr/atomic.py does, but without its two
    fsyncs: they took three quarters of the time per GISLR clip (16 of 21 ms, measured on this
    project's machine), and a clip that a power cut leaves torn is not complete (`is_complete` opens
    it), so the next run redoes it. A killed import leaves only a temporary, which the next removes."""
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as f:
            _savez_fast(f, arrays)
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise_if_disk_full(exc, path)
        raise


def _savez_fast(file, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's archive (np.load reads it alike) at zlib level 1, not numpy's 6: a third
    of the compression time for nearly the same size on landmark clips, whose zeros (parts not
    found) are most of what compresses."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def is_complete(path: Path, source: str, wanted: dict[str, Any]) -> bool:
    """Whether `path` is a clip this import wrote from `source` with the same settings."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not {"X", "mask", "meta"} <= set(archive.files):
                return False
            meta = json.loads(str(archive["meta"][()]))
    except Exception:  # a damaged clip is redone
        return False
    return isinstance(meta, dict) and meta.get("source") == source and meta.get("import") == wanted


@dataclass
class Table:
    """A small CSV file as text: its columns in order and its rows."""

    path: Path
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return bool(self.columns)


def read_existing(path: Path, required: tuple[str, ...]) -> Table:
    """The table at `path` (empty when there is none), or a DataError saying why it cannot be merged."""
    table = Table(path)
    if not path.exists():
        return table
    refuse = "; the import adds to this file and will not replace it: fix it, move it away, or import into another folder"
    if not path.is_file():
        raise DataError(f"is not a file{refuse}", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise DataError(f"not UTF-8 text{refuse}", path) from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"unreadable ({exc}){refuse}", path) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return table
    header = [c.strip() for c in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"has no column(s) {', '.join(missing)} (header: {','.join(header)}){refuse}", path)
    if len(set(header)) != len(header):
        raise DataError(f"names a column twice (header: {','.join(header)}){refuse}", path)
    for line, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            raise DataError(f"line {line} has {len(row)} fields but the header {len(header)}{refuse}", path)
        table.rows.append({c: (row[i] if i < len(row) else "") for i, c in enumerate(header)})
    table.columns = header
    return table


def class_ids(classes: Table, signs: set[str]) -> tuple[dict[str, int], list[str]]:
    """Sign name -> gloss id (the existing ids kept), and the names this import adds."""
    ids: dict[str, int] = {}
    for row in classes.rows:
        try:
            ids.setdefault(row["name"].strip(), int(float(row["gloss"])))
        except ValueError:
            raise DataError(f"gloss {row['gloss']!r} is not an integer id; the import adds to this file", classes.path) from None
    new = sorted((s for s in signs if s not in ids), key=lambda s: (s.casefold(), s))
    start = max(ids.values(), default=-1) + 1
    ids.update({name: start + i for i, name in enumerate(new)})
    return ids, new


def gloss_categories(classes: Table) -> dict[str, str]:
    """Sign name -> its cat id, where classes.csv gives one."""
    if "cat" not in classes.columns:
        return {}
    return {r["name"].strip(): r["cat"].strip() for r in classes.rows if r.get("cat", "").strip()}


def check_categories(labels: Table, classes: Table, signs: set[str]) -> None:
    """An existing labels.csv with a `cat` column needs one for every imported sign: refused otherwise."""
    if "cat" not in labels.columns:
        return
    known = gloss_categories(classes)
    lacking = sorted(s for s in signs if s not in known)
    if lacking:
        shown = ", ".join(map(repr, lacking[:5])) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        raise DataError(f"has a cat column, and the imported sign(s) {shown} have no category in {classes.path.name}; "
                        f"give each a cat (and cat_name) there and import again, or import into another folder",
                        labels.path)


def merged_classes(classes: Table, ids: dict[str, int], new: list[str]) -> Table:
    columns = classes.columns or ["gloss", "name"]
    rows = list(classes.rows) + [{"gloss": str(ids[name]), "name": name} for name in new]
    return Table(classes.path, columns, rows)


def merged_labels(labels: Table, new_rows: dict[str, dict[str, str]], categories: dict[str, str],
                  names: dict[str, str]) -> Table:
    """Every existing row and column kept; a re-imported clip's row updated; new clips appended.
    `names`: clip -> sign name, for the `cat` of a labels file that has one."""
    columns = list(labels.columns or ["file", "gloss"])
    for row in new_rows.values():
        columns += [c for c in row if c not in columns]
    at = {clip_stem(r["file"]): i for i, r in enumerate(labels.rows)}
    rows = [dict(r) for r in labels.rows]
    for clip, row in new_rows.items():
        row = dict(row)
        if "cat" in columns and "cat" not in row:
            row["cat"] = categories[names[clip]]
        if clip in at:
            rows[at[clip]].update(row)
        else:
            rows.append(row)
    return Table(labels.path, columns, rows)


def write_table(table: Table) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([row.get(c, "") for c in table.columns])
    write_atomically(table.path, lambda f: f.write(text.getvalue().encode("utf-8")))


def check_layout(path: Path, declared: dict[str, Any]) -> bool:
    """Whether layout.json is there already (then it must declare `declared`'s points)."""
    if not path.exists():
        return False
    existing = read_layout_file(path)
    same = all(existing.get(k) == declared.get(k) for k in ("dims", "points", "mirror_pairs", "hands", "shoulders"))
    if not same or existing.get("point_names", declared["point_names"]) != declared["point_names"]:
        raise DataError(f"declares another layout ({existing.get('name', '?')}: {existing.get('points', '?')} points x "
                        f"{existing['dims']}) than this import writes ({declared['name']}: {declared['points']} x "
                        f"{declared['dims']}); clips of two layouts cannot train together: import into another "
                        f"folder, or with the same --parts and --dims", path)
    return True


def write_layout(path: Path, declared: dict[str, Any]) -> None:
    """One key per line, each value on its line (78 point names read better as one list than as 78 lines)."""
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in declared.items()) + "\n}\n"
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def clip_meta(source: str, fmt: str, sequence: Sequence, kept: KeptPoints, wanted: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source,
        "format": fmt,
        "format_version": sequence.version,
        "layout": kept.name,
        "points": kept.names,
        "coordinates": sequence.coordinates,
        "frames": sequence.frames,
        "found": {k: round(v, 4) for k, v in sequence.found_share().items() if k in kept.parts},
        "import": wanted,
        "slr_version": __version__,
        **{k: v for k, v in sequence.notes.items() if k not in ("source", "import")},
    }


