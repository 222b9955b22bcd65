"""Kaggle GISLR (`asl-signs`) parquet: one file per clip, 543 rows per frame, plus train.csv.

Columns `frame, type, landmark_index, x, y, z` (`row_id` is not needed); `type` is face (468),
left_hand (21), pose (33) or right_hand (21); NaN x/y = not found. Rows are placed by
type and landmark_index, never by position (files written by others order the parts differently),
and frames by their number (Kaggle's start mid-video: 103...207). x and y are MediaPipe's
image-normalised coordinates and are kept as they are (outside [0, 1] where a point is off-frame).

train.csv (`path,participant_id,sequence_id,sign`, paths relative to its folder) gives each file its
sign, signer and sequence id; a file it does not list is imported as an unlabelled clip.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np

from slr.errors import DataError
from slr.importers.points import HOLISTIC_SIZES
from slr.importers.sequence import BadSource, Sequence, SourceSequence

COLUMNS = ("frame", "type", "landmark_index", "x", "y", "z")
CSV_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
_TYPES = ("face", "left_hand", "pose", "right_hand")


def require_pyarrow():
    """pyarrow's parquet module, or one DataError with the install command (checked before any work)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # missing, or built for another numpy (pyarrow 22+ needs numpy 2)
        raise DataError(f"reading GISLR parquet files needs pyarrow ({exc}): pip install 'slr[import]'") from None
    return pq


def read_parquet(path: Path) -> Sequence:
    pq = require_pyarrow()
    try:
        parquet = pq.ParquetFile(path)
        names = set(parquet.schema_arrow.names)
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise BadSource(f"not a GISLR landmark file: no column(s) {', '.join(missing)} (expected "
                            f"{','.join(COLUMNS)}; found {','.join(sorted(names)) or 'none'})", path)
        created_by = parquet.metadata.created_by or "unknown writer"
        table = parquet.read(columns=list(COLUMNS))
    except BadSource:
        raise
    except Exception as exc:  # pyarrow's errors for damaged files (ArrowInvalid, OSError) name no file
        raise BadSource(f"unreadable parquet file ({type(exc).__name__}: {exc})", path) from None
    if table.num_rows == 0:
        raise BadSource("no frames (the file has no rows)", path)
    try:
        frame = table.column("frame").to_numpy().astype(np.int64)
        kind = table.column("type").combine_chunks()
        if str(kind.type).startswith("dictionary"):  # written as a categorical: plain text first
            kind = kind.cast(kind.type.value_type)
        kind = kind.dictionary_encode()
        index = table.column("landmark_index").to_numpy().astype(np.int64)
        xyz = np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in "xyz"], axis=1)
    except Exception as exc:  # a column of the wrong kind (text coordinates, null frame numbers)
        raise BadSource(f"unusable column values ({type(exc).__name__}: {exc})", path) from None
    numbers, row_frame = _frame_numbers(frame)
    codes = kind.indices.to_numpy(zero_copy_only=False)
    kinds = [str(v) for v in kind.dictionary.to_pylist()]
    parts = {}
    ignored = sum(int((codes == code).sum()) for code, name in enumerate(kinds) if name not in _TYPES)
    for name in _TYPES:
        size = HOLISTIC_SIZES[name] if name != "face" else 468
        array = np.full((len(numbers), size, 3), np.nan, np.float32)
        if name in kinds:
            rows = np.flatnonzero(codes == kinds.index(name))
            inside = rows[(index[rows] >= 0) & (index[rows] < size)]
            ignored += len(rows) - len(inside)
            array[row_frame[inside], index[inside]] = xyz[inside]
        parts[name] = array
    notes = {"frame_numbers": [int(numbers[0]), int(numbers[-1])]}
    gaps = int(numbers[-1] - numbers[0] + 1 - len(numbers))
    if gaps:
        notes["frames_missing_between"] = gaps  # the clip runs on without them; timing is lost there
    if ignored:
        notes["rows_ignored"] = ignored  # unknown types or landmark indices beyond the part
    return Sequence(parts, len(numbers), version=created_by,
                    coordinates="MediaPipe image-normalised x, y (as in the file; may lie outside [0, 1]); z "
                                "MediaPipe relative depth", notes=notes)


def _frame_numbers(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct frame numbers in order, and each row's frame index: by counting over the range of
    numbers (a clip's frames are nearly consecutive), which costs a third of np.unique's sort."""
    low, high = int(frame.min()), int(frame.max())
    if high - low > 4 * len(frame) + 1024:  # far apart: sorting is cheaper than the range
        return np.unique(frame, return_inverse=True)
    present = np.zeros(high - low + 1, bool)
    present[frame - low] = True
    index = np.cumsum(present) - 1
    return np.flatnonzero(present) + low, index[frame - low]


def find_train_csv(sources: list[Path], given: Optional[Path]) -> Optional[Path]:
    """The train.csv that labels these files: `given`, else one in a source folder or above a source."""
    if given is not None:
        if not Path(given).is_file():
            raise DataError("GISLR train.csv not found", given)
        return Path(given)
    for source in sources:
        if source.is_file() and source.suffix.lower() == ".csv":
            return source
        for folder in [source] + list(source.parents)[:3]:
            candidate = folder / "train.csv"
            if folder.is_dir() and candidate.is_file():
                return candidate
    return None


def read_train_csv(path: Path) -> dict[str, dict[str, str]]:
    """train.csv rows by the resolved path of their file and by sequence id."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"GISLR train.csv without column(s) {', '.join(missing)} (expected "
                                f"{','.join(CSV_COLUMNS)})", path)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"GISLR train.csv unreadable ({exc})", path) from None
    by_key: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.get("path"):
            by_key[str((path.parent / row["path"]).resolve())] = row
        if row.get("sequence_id"):
            by_key.setdefault(f"id:{row['sequence_id'].strip()}", row)
    return by_key


def find_sequences(sources: list[Path], train_csv: Optional[Path]) -> list[SourceSequence]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(source.rglob("*.parquet"))
        elif source.suffix.lower() == ".parquet":
            files.append(source)
    rows = read_train_csv(train_csv) if train_csv is not None else {}
    found = []
    for file in files:
        row = rows.get(str(file.resolve())) or rows.get(f"id:{file.stem}")
        if row is None:
            found.append(SourceSequence(file, file.stem, None, ()))
            continue
        sequence_id = (row.get("sequence_id") or file.stem).strip()
        groups = (("signer", row["participant_id"].strip()), ("sequence_id", sequence_id))
        found.append(SourceSequence(file, sequence_id, row["sign"].strip() or None, groups))
    return found
