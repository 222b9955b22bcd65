"""labels.csv rows from video file names: the sign's name in the name, looked up in a classes file.

`clip_0089_how are you.mp4` names "how are you" under the default pattern; the lookup ignores case
and surrounding spaces. A name that matches no class is listed for the user, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from slr.data.classes import read_class_names
from slr.data.clips import name_text
from slr.atomic import write_atomically
from slr.extract.labels_file import merged_labels, read_labels_file
from slr.errors import ConfigError, setting


@dataclass
class LabelRows:
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # clip name -> (gloss, cat)
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (video file name, why)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{setting('name_pattern')} {pattern!r} is not a regular expression ({exc})") from None
    if compiled.groups == 0:
        raise ConfigError(
            f"{setting('name_pattern')} {pattern!r} has no group: put the sign's name in (...) or (?P<name>...)"
        )
    return compiled


def name_in(stem: str, pattern: re.Pattern[str]) -> Optional[str]:
    """The sign's name in a file name (without its suffix), or None when the pattern does not match."""
    match = pattern.fullmatch(stem)
    if not match:
        return None
    name = match.group("name") if "name" in pattern.groupindex else match.group(1)
    return name.strip() if name and name.strip() else None


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def label_rows(videos: list[Path], classes_csv: Path, pattern: str) -> LabelRows:
    """gloss and cat ids for each video whose name is a class; the others listed with the reason."""
    names = read_class_names(Path(classes_csv))
    compiled = compile_pattern(pattern)
    by_name: dict[str, int] = {}
    for gloss, name in names["gloss"].items():
        by_name.setdefault(_key(name), gloss)
    cats = _categories(Path(classes_csv))
    result = LabelRows()
    for video in videos:
        stem = clip_text_stem(video)
        if not _utf8(stem):
            result.unmatched.append((Path(video).name, "the name is not UTF-8 text, which labels.csv cannot hold: "
                                                       "rename the video"))
            continue
        name = name_in(stem, compiled)
        if name is None:
            result.unmatched.append((Path(video).name, f"the name does not match {setting('name_pattern')} {pattern!r}"))
            continue
        gloss = by_name.get(_key(name))
        if gloss is None:
            result.unmatched.append((Path(video).name, f"{name!r} is not a class in {classes_csv}"))
            continue
        if gloss not in cats:
            result.unmatched.append((Path(video).name, f"{name!r} (gloss {gloss}) has no category in {classes_csv}"))
            continue
        result.rows[stem] = (gloss, cats[gloss])
    return result


def clip_text_stem(video: Path) -> str:
    """The clip name of a video as labels.csv writes it (UTF-8 text, whatever the locale)."""
    return name_text(Path(video).stem)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: bytes that are not UTF-8
        return False
    return True


def _categories(classes_csv: Path) -> dict[int, int]:
    """gloss id -> cat id, from the same file (read_class_names keeps only the names)."""
    from slr.data.csv_table import integer_ids, read_table

    table = read_table(classes_csv, ("gloss", "name"), "gloss,name[,cat,cat_name]")
    if "cat" not in table.columns:
        return {}
    gloss, cat = integer_ids(table["gloss"]), integer_ids(table["cat"])
    return {int(g): int(c) for g, c in zip(gloss, cat) if g == g and c == c}


def write_labels(path: Path, rows: dict[str, tuple[int, int]]) -> bool:
    """labels.csv with `rows`, keeping every byte of an earlier labels.csv but the ids of these clips
    (slr/extract/labels_file.py); `LabelsFileRefused` when that file cannot be kept exactly.
    Returns whether the file was written (an unchanged one is left alone)."""
    existing = read_labels_file(path)
    data = merged_labels(existing, rows)
    if existing is not None and data == Path(path).read_bytes():
        return False
    write_atomically(Path(path), lambda f: f.write(data))
    return True
