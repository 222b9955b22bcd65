"""Results by group: accuracy per value of a labels.csv column (signer, session, camera, ...).

A model that is 90% right overall may be 60% right on one signer; the mean hides it. Each
group's numbers are the evaluation's own metrics computed on that group's clips alone, so a
group's accuracy is exactly what evaluating its clips by themselves would report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slr.errors import ConfigError, setting

if TYPE_CHECKING:
    import pandas as pd

    from slr.analysis.evaluate import ScoredClips

#: How a blank cell of the grouping column is shown (its clips still form a group).
BLANK = "(blank)"


@dataclass
class GroupResult:
    value: str  # the column's value; BLANK for empty cells
    clips: int
    gloss_top1: float
    gloss_top5: float
    top5_k: int
    gloss_macro_f1: float
    cat_top1: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "clips": self.clips,
            "gloss_top1": self.gloss_top1,
            "gloss_top5": self.gloss_top5,
            "top5_k": self.top5_k,
            "gloss_macro_f1": self.gloss_macro_f1,
            "cat_top1": self.cat_top1,
        }


def check_group_column(rows: "pd.DataFrame", column: str, labels_csv: Path) -> None:
    """`ConfigError` naming the labels file and its columns unless `column` is one of them."""
    if column not in rows.columns:
        listed = ", ".join(str(c) for c in rows.columns)
        raise ConfigError(f"{setting('group_by')} {column!r}: no such column; its columns are {listed}", labels_csv)


def _order(value: str) -> tuple:
    """Numbers in numeric order (signer 2 before signer 10), then text, then blanks."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1 if value != BLANK else 2, 0.0, value)


def group_results(scored: "ScoredClips", column: str) -> list[GroupResult]:
    """Gloss top-1 / top-5 / macro F1 and category accuracy per value of `column`, in value order."""
    check_group_column(scored.rows, column, scored.labels_csv)
    values = np.array([str(v).strip() or BLANK for v in scored.rows[column]], dtype=object)
    results = []
    for value in sorted(set(values), key=_order):
        gloss, cat = scored.task_metrics(0, subset=values == value)
        results.append(GroupResult(value, gloss.clips, gloss.top1, gloss.top5, gloss.top5_k, gloss.macro_f1, cat.top1))
    return results


def groups_table(column: str, groups: list[GroupResult]) -> "pd.DataFrame":
    """per_group.csv: one row per group; the first column is named after the grouping column."""
    import pandas as pd

    table = pd.DataFrame([g.to_dict() for g in groups], columns=list(GroupResult.__dataclass_fields__))
    return table if column in table.columns else table.rename(columns={"value": column})
