"""What training says about its data before it starts, in words: class counts that do not fit
the labels, and the text of each warning the data checks found (not only how many there were).

The library returns these texts; the command layer prints them (settings are named with
``setting()``, so the console spells them as flags).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional

from slr.data.problems import KINDS, Problem, group_by_kind
from slr.errors import setting

#: The training guide's class counts for FSL-105, which are also slr's defaults: a run on other
#: data that leaves them as they are is the likely mistake this module names.
GUIDE_CLASS_COUNTS = (105, 10)
#: Files and examples named per kind of warning; `slr validate` lists them all.
NAMED_PER_KIND = 3


@dataclass(frozen=True)
class CheckedSplit:
    """One checked clip directory: its class counts (id -> clips) and the warnings found in it."""

    directory: Path
    class_counts: Mapping[str, Mapping[int, int]]
    warnings: list[Problem]
    validate_hint: str  # the `slr validate ...` command that lists everything


def _ids(splits: Iterable[CheckedSplit], column: str) -> set[int]:
    return {i for s in splits for i, n in s.class_counts.get(column, {}).items() if n}


def _used(ids: set[int], noun: str, plural: str) -> str:
    if not ids:
        return f"no {plural}"
    top = max(ids)
    gaps = top + 1 - len(ids)
    where = f"id {top}" if len(ids) == 1 else f"ids {min(ids)}–{top}"
    without = f", {gaps} of them without clips" if gaps else ""
    return f"{len(ids)} {noun if len(ids) == 1 else plural} ({where}{without})"


def class_count_notice(splits: list[CheckedSplit], num_gloss: int, num_cat: int) -> Optional[str]:
    """A notice when num_gloss / num_cat are larger than the labels need, else None.

    Larger counts are allowed (classes still to come), but usually they were left at the guide's
    105 / 10: the model then carries outputs that no clip ever trains, and its checkpoint only
    fits data of those counts.
    """
    glosses, cats = _ids(splits, "gloss"), _ids(splits, "cat")
    need_gloss = max(glosses, default=-1) + 1
    need_cat = max(cats, default=-1) + 1
    over_gloss, over_cat = num_gloss > need_gloss > 0, num_cat > need_cat > 0
    if not (over_gloss or over_cat):
        return None
    uses = []
    if over_gloss:
        uses.append(_used(glosses, "gloss", "glosses"))
    if over_cat:
        uses.append(_used(cats, "category", "categories"))
    counts = []
    if over_gloss:
        counts.append(f"{setting('num_gloss')} is {num_gloss}")
    if over_cat:
        counts.append(f"{setting('num_cat')} {num_cat}" if over_gloss else f"{setting('num_cat')} is {num_cat}")
    guide = " (the guide's FSL-105 values, and slr's defaults)" if (num_gloss, num_cat) == GUIDE_CLASS_COUNTS else ""
    unused = []
    if over_gloss:
        unused.append(f"{num_gloss - need_gloss} gloss")
    if over_cat:
        unused.append(f"{num_cat - need_cat} category")
    fix = []
    if over_gloss:
        fix.append(f"{setting('num_gloss')} {need_gloss}")
    if over_cat:
        fix.append(f"{setting('num_cat')} {need_cat}")
    return (
        f"the labels use {' and '.join(uses)}, but {' and '.join(counts)}{guide}: the model gets "
        f"{' and '.join(unused)} output(s) that no clip trains, and its checkpoints fit only data with these "
        f"counts. Pass {' '.join(fix)} for these labels (keep the larger counts only if those classes are "
        f"still to come)"
    )


def warning_notice(split: CheckedSplit, skip_kinds: Iterable[str] = ()) -> Optional[str]:
    """The warnings of one split in words: per kind, how many, which files, and one example."""
    skip = set(skip_kinds)
    shown = [p for p in split.warnings if p.kind not in skip]
    if not shown:
        return None
    parts = []
    for kind, found in group_by_kind(shown).items():
        if len(found) == 1:
            parts.append(f"{KINDS[kind].title}: {found[0]}")
            continue
        files = ", ".join(p.file for p in found[:NAMED_PER_KIND])
        more = f", ... ({len(found) - NAMED_PER_KIND} more)" if len(found) > NAMED_PER_KIND else ""
        parts.append(f"{KINDS[kind].title}: {len(found)} ({files}{more}); e.g. {found[0].message}")
    count = f"{len(shown)} warning{'s' if len(shown) > 1 else ''}"
    return f"{split.directory}: {count} in the data: " + "; ".join(parts) + f" ({split.validate_hint} lists them)"


def unlearnable_validation_notice(train: CheckedSplit, val: CheckedSplit) -> Optional[str]:
    """Validation clips of glosses no training clip has: no model can get them right, so the
    validation accuracy has a ceiling the user should know before reading the log."""
    seen = _ids([train], "gloss")
    counts = val.class_counts.get("gloss", {})
    unseen = sorted(i for i, n in counts.items() if n and i not in seen)
    if not unseen:
        return None
    clips, total = sum(counts[i] for i in unseen), sum(counts.values())
    ids = ", ".join(map(str, unseen[:NAMED_PER_KIND])) + (f", ... ({len(unseen) - NAMED_PER_KIND} more)"
                                                         if len(unseen) > NAMED_PER_KIND else "")
    return (f"{val.directory}: {clips} of {total} validation clips are of glosses with no training clip "
            f"({len(unseen)} gloss{'es' if len(unseen) > 1 else ''}: id {ids}); the model cannot learn them, "
            f"so val_gloss_acc is at most {(total - clips) / total:.1%}")


def training_data_notices(splits: list[CheckedSplit], num_gloss: int, num_cat: int) -> list[str]:
    """Every notice about the checked data, the likely mistake first.

    When the class counts are the problem, the "class without clips" warnings they cause are not
    repeated: the notice already says it in words (and names any gaps inside the used ids).
    """
    notices = []
    counts = class_count_notice(splits, num_gloss, num_cat)
    if counts is not None:
        notices.append(counts)
    if len(splits) == 2:  # (training, validation)
        unseen = unlearnable_validation_notice(*splits)
        if unseen is not None:
            notices.append(unseen)
    for split in splits:
        # Repeat "class without clips" only where this split also lacks classes the labels use.
        covered = all(_ids([split], c) == _ids(splits, c) for c in ("gloss", "cat"))
        text = warning_notice(split, ("empty_class",) if counts is not None and covered else ())
        if text is not None:
            notices.append(text)
    return notices
