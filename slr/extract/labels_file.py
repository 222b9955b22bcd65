"""Adding `slr extract`'s rows to a labels.csv that is already there, without losing a byte of it.

The existing file is the user's: it may carry extra columns (`signer`, `note`: the groups `slr split`
needs), another delimiter, Windows line ends, a byte-order mark. Its records are kept as they were
written, byte for byte; a record for a clip this run extracted again gets its gloss and cat cells
changed and nothing else; new clips are appended. A file that cannot be read that exactly (not
UTF-8, an unclosed quote, no file/gloss/cat header) is refused with the reason, before any video is
extracted, and left untouched: rewriting what cannot be read would lose what the parser missed.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from slr.data.clips import clip_stem
from slr.data.files import describe_non_file
from slr.errors import DataError

HEADER = ("file", "gloss", "cat")
#: Delimiters a labels.csv is recognised by: the first under which the header has file, gloss and cat.
DELIMITERS = (",", ";", "\t", "|")
_LINES = re.compile(r"[^\n]*\n|[^\n]+$")  # only "\n" ends a line (str.splitlines also splits at \x1c, \u2028, ...)


class LabelsFileRefused(DataError):
    """An existing labels.csv that extraction will not merge into (the file is left as it was)."""


@dataclass
class LabelsFile:
    """An existing labels.csv as records of fields, each with the exact text it was read from."""

    path: Path
    bom: bool
    delimiter: str
    newline: str  # the header's line end; new rows use it
    columns: dict[str, int]  # file, gloss, cat -> position
    width: int  # fields in the header
    records: list[tuple[list[str], str]]  # (fields, raw text) after the header, in file order
    header_text: str


def _refuse(path: Path, why: str) -> LabelsFileRefused:
    return LabelsFileRefused(
        f"{why}; it was left as it was and no video was extracted: fix it or move it away, then run again", path
    )


def read_labels_file(path: Path) -> Optional[LabelsFile]:
    """The labels.csv at `path`, or None where there is none (or it holds nothing but blanks).

    Raises `LabelsFileRefused` naming the file and the reason when it cannot be merged exactly."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise _refuse(path, f"is {describe_non_file(path)}, not a labels file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data[len(codecs.BOM_UTF8) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _refuse(path, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); slr reads and "
                            f"writes labels as UTF-8 and will not add rows in another encoding "
                            f"(convert it, e.g. with iconv)") from None
    if not text.strip():
        return None
    lines = _LINES.findall(text)
    header_line = lines[0]
    delimiter, header = _header(header_line, path)
    columns = {name: header.index(name) for name in HEADER}
    records: list[tuple[list[str], str]] = []
    reader = csv.reader(iter(lines[1:]), delimiter=delimiter, strict=True)
    done = 0
    try:
        for fields in reader:
            records.append((fields, "".join(lines[1 + done: 1 + reader.line_num])))
            done = reader.line_num
    except csv.Error as exc:
        raise _refuse(path, f"is not a CSV file slr can read exactly (line {reader.line_num + 1}: {exc}, "
                            f"e.g. a quote that is never closed)") from None
    newline = "\r\n" if header_line.endswith("\r\n") else "\n"
    return LabelsFile(path, bom, delimiter, newline, columns, len(header), records, header_line)


def _header(line: str, path: Path) -> tuple[str, list[str]]:
    for delimiter in DELIMITERS:
        try:
            names = [n.strip() for n in next(csv.reader([line], delimiter=delimiter, strict=True))]
        except (csv.Error, StopIteration):
            continue
        if all(n in names for n in HEADER):
            repeated = [n for n in HEADER if names.count(n) > 1]
            if repeated:
                raise _refuse(path, f"has the column(s) {', '.join(repeated)} more than once in its header")
            return delimiter, names
    shown = line.strip()[:80]
    raise _refuse(path, f"has no file, gloss and cat columns in its first line ({shown!r})")


def merged_labels(existing: Optional[LabelsFile], rows: dict[str, tuple[int, int]]) -> bytes:
    """The bytes of labels.csv with `rows` (clip stem -> gloss, cat) in it.

    Without an existing file: `file,gloss,cat` and the rows, sorted. With one: its bytes, where a
    record naming one of `rows`' clips with other ids has those two cells replaced, and the clips
    it does not name appended (sorted)."""
    if existing is None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for stem in sorted(rows):
            writer.writerow([stem, *rows[stem]])
        return out.getvalue().encode("utf-8")
    cols, seen = existing.columns, set()
    parts = [existing.header_text]
    for fields, raw in existing.records:
        stem = clip_stem(fields[cols["file"]]) if len(fields) > cols["file"] else ""
        if stem in rows:
            seen.add(stem)
            if not _same_ids(fields, cols, rows[stem]):
                raw = _rewritten(existing, fields, rows[stem], raw)
        parts.append(raw)
    new = [stem for stem in sorted(rows) if stem not in seen]
    if new and parts[-1] and not parts[-1].endswith("\n"):
        parts[-1] += existing.newline
    for stem in new:
        fields = [""] * existing.width
        fields[cols["file"]], fields[cols["gloss"]], fields[cols["cat"]] = stem, *map(str, rows[stem])
        parts.append(_row_text(existing, fields, existing.newline))
    return (codecs.BOM_UTF8 if existing.bom else b"") + "".join(parts).encode("utf-8")


def _same_ids(fields: list[str], cols: dict[str, int], ids: tuple[int, int]) -> bool:
    for name, value in zip(("gloss", "cat"), ids):
        try:
            if float(fields[cols[name]].strip()) != value:
                return False
        except (IndexError, ValueError):
            return False
    return True


def _rewritten(existing: LabelsFile, fields: list[str], ids: tuple[int, int], raw: str) -> str:
    fields = fields + [""] * (max(existing.columns.values()) + 1 - len(fields))
    fields[existing.columns["gloss"]], fields[existing.columns["cat"]] = map(str, ids)
    end = "\r\n" if raw.endswith("\r\n") else "\n" if raw.endswith("\n") else ""
    return _row_text(existing, fields, end)


def _row_text(existing: LabelsFile, fields: list[str], end: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=existing.delimiter, lineterminator=end).writerow(fields)
    return out.getvalue()
