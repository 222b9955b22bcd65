"""Class names for reports: a classes file, else the checkpoint's names, else the clip file names.

A classes file has the `gloss,name,cat,cat_name` layout of the FSL-105 label map (`cat` and
`cat_name` may be left out). Names are looked up per id, so a partial source is completed by the
next one; an id no source names is shown as `gloss 7` / `cat 2`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from slr.errors import DataError


@dataclass
class ClassNames:
    gloss: dict[int, str] = field(default_factory=dict)
    cat: dict[int, str] = field(default_factory=dict)
    gloss_cat: dict[int, int] = field(default_factory=dict)  # a gloss's category, where a classes file gives it

    def gloss_name(self, gloss_id: int) -> str:
        return self.gloss.get(int(gloss_id), f"gloss {int(gloss_id)}")

    def cat_name(self, cat_id: int) -> str:
        return self.cat.get(int(cat_id), f"cat {int(cat_id)}")

    def names(self, task: str, count: int) -> list[str]:
        lookup = self.gloss_name if task == "gloss" else self.cat_name
        return [lookup(i) for i in range(count)]

    def fill(self, other: "ClassNames") -> "ClassNames":
        """These names, with ids they lack taken from ``other``."""
        return ClassNames({**other.gloss, **self.gloss}, {**other.cat, **self.cat}, {**other.gloss_cat, **self.gloss_cat})

    def category_of(self, gloss_id: int) -> Optional[tuple[int, str]]:
        """The category (id, name) the classes file puts a gloss in; None where it says none."""
        cat = self.gloss_cat.get(int(gloss_id))
        return None if cat is None else (cat, self.cat_name(cat))


def read_classes_csv(path: Path) -> ClassNames:
    """`gloss,name[,cat,cat_name]` rows -> names by id, and each gloss's category; `DataError` naming the
    file otherwise."""
    from slr.data.classes import gloss_categories, read_class_names

    stored = read_class_names(Path(path))
    if not stored["gloss"]:
        raise DataError("the classes file has no rows", path)
    return ClassNames(dict(stored["gloss"]), dict(stored["cat"]), gloss_categories(Path(path)))


def from_checkpoint(state: Mapping[str, Any]) -> ClassNames:
    """The names stored with a checkpoint: `{"gloss": {id: name}, "cat": {id: name}}`, maybe partial."""
    stored = state.get("class_names") or {}
    if not isinstance(stored, Mapping):
        return ClassNames()
    if "gloss" not in stored and "cat" not in stored:  # an older layout: gloss id -> name only
        stored = {"gloss": stored}
    names = ClassNames()
    for task in ("gloss", "cat"):
        part = stored.get(task) or {}
        if isinstance(part, Mapping):
            for key, value in part.items():
                try:
                    getattr(names, task)[int(key)] = str(value)
                except (TypeError, ValueError):
                    continue
    return names


def resolve_class_names(
    state: Mapping[str, Any],
    classes_csv: Optional[Path] = None,
    clip_names: Sequence[str] = (),
    gloss_ids: Sequence[int] = (),
) -> ClassNames:
    """Classes file first, then the checkpoint's names, then names taken from clip file names."""
    names = read_classes_csv(classes_csv) if classes_csv is not None else ClassNames()
    names = names.fill(from_checkpoint(state))
    if len(clip_names):
        from slr.data.labels import class_names_from_clips

        names = names.fill(ClassNames(gloss=class_names_from_clips(list(clip_names), list(gloss_ids))))
    return names
