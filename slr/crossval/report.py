"""What `slr cv` reports: per recipe and fold the held-out scores beside the inner validation's best,
mean ± standard deviation over folds, and every pair of recipes compared (slr/crossval/paired.py).

Written to the output folder: `cv.json` (the report as `slr cv --json` prints it), `folds.csv`
(one row per recipe and fold) and `folds.png` (each fold's held-out accuracy as a point per recipe,
the fold's points joined across recipes, the mean ± sd beside them, and the inner validation's best
as hollow points: the gap between the two is the optimism of choosing on validation).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from slr.atomic import write_atomically
from slr.crossval.fold_run import FoldResult
from slr.crossval.paired import RecipePair, pair_recipes

if TYPE_CHECKING:
    from slr.crossval.folds import Fold
    from slr.crossval.runner import Recipe
    from slr.data.split import Grouping
    from slr.settings import CvSettings

REPORT_FILES = ("cv.json", "folds.csv", "folds.png")
#: The scores reported per fold, and how they are called.
SCORES = {"gloss_top1": "gloss", "gloss_top5": "gloss top-5", "cat_top1": "category", "inner_best": "inner val best"}


def mean_sd(values: Sequence[Optional[float]]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan where there is nothing to average)."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not kept:
        return math.nan, math.nan
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


@dataclass
class RecipeResult:
    name: str
    file: Optional[str]
    folds: list[FoldResult]

    def score(self, name: str) -> tuple[float, float]:
        return mean_sd([getattr(f, name) for f in self.folds])

    @property
    def has_categories(self) -> bool:
        return any(f.cat_top1 is not None for f in self.folds)

    def to_dict(self) -> dict[str, Any]:
        scores = {name: dict(zip(("mean", "sd"), self.score(name))) for name in SCORES
                  if name != "cat_top1" or self.has_categories}
        return {"name": self.name, "file": self.file, "scores": scores, "folds": [f.summary() for f in self.folds]}


@dataclass
class CvReport:
    model: str
    data: str
    labels_csv: str
    grouping: str
    noun: str  # what a group is called: signer, or group
    folds: list[dict[str, Any]]
    recipes: list[RecipeResult]
    pairs: list[RecipePair]
    notices: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def fold_count(self) -> int:
        return len(self.folds)

    def to_dict(self) -> dict[str, Any]:
        from slr.analysis.evaluate import _finite  # JSON has no NaN: missing numbers are null

        return _finite({
            "model": self.model, "data": self.data, "labels_csv": self.labels_csv, "group_by": self.grouping,
            "folds": self.folds, "recipes": [r.to_dict() for r in self.recipes],
            "pairs": [p.to_dict() for p in self.pairs], "notices": self.notices, "files": self.files,
        })


def build_report(settings: "CvSettings", labels_csv: Path, grouping: "Grouping", folds: Sequence["Fold"],
                 recipes: Sequence["Recipe"], results: Sequence[FoldResult]) -> CvReport:
    by_recipe = {r.name: RecipeResult(r.name, str(r.file) if r.file else None, []) for r in recipes}
    for result in results:
        by_recipe[result.recipe].folds.append(result)
    for recipe in by_recipe.values():
        recipe.folds.sort(key=lambda f: f.fold)
    ordered = list(by_recipe.values())
    pairs = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            pairs.append(pair_recipes(first.name, second.name, [f.gloss_top1 for f in first.folds],
                                      [f.gloss_top1 for f in second.folds], _pooled(first), _pooled(second)))
    notices = [text for fold in folds for text in fold.notices]
    return CvReport(settings.model, str(settings.data), str(labels_csv), grouping.describe(), grouping.noun,
                    [fold.describe() for fold in folds], ordered, pairs, notices)


def _pooled(recipe: RecipeResult) -> dict[str, bool]:
    """Every held-out clip of every fold -> right or not (each clip is held out in one fold only)."""
    pooled: dict[str, bool] = {}
    for fold in recipe.folds:
        pooled.update(fold.correct)
    return pooled


def write_report(report: CvReport, out: Path) -> None:
    paths = {name: out / name for name in REPORT_FILES}
    report.files = {name: str(path) for name, path in paths.items()}
    write_atomically(paths["folds.csv"], lambda f: f.write(_folds_csv(report)))
    try:
        figure = draw_folds(report)
    except ImportError:  # matplotlib is an extra: the numbers are in cv.json and folds.csv
        report.files.pop("folds.png")
    else:
        write_atomically(paths["folds.png"], lambda f: figure.savefig(f, format="png", dpi=100))
    text = json.dumps(report.to_dict(), indent=1)
    write_atomically(paths["cv.json"], lambda f: f.write(text.encode("utf-8")))


def _folds_csv(report: CvReport) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    columns = ["recipe", "fold", "held_out", "clips", "gloss_top1", "gloss_top5", "cat_top1", "inner_best",
               "best_epoch", "inner_last", "epochs", "run_dir"]
    writer.writerow(columns)
    for recipe in report.recipes:
        for fold in recipe.folds:
            row = fold.summary()
            row["held_out"] = " ".join(fold.held_out)
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return text.getvalue().encode("utf-8")


def draw_folds(report: CvReport):
    """Held-out gloss accuracy per fold (filled) and the inner validation's best (hollow), per recipe."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(4.0, 1.8 * len(report.recipes) + 2), 4.2))
    ax = figure.add_subplot()
    count = report.fold_count
    spread = 0.25
    offsets = [(-spread + 2 * spread * i / (count - 1)) if count > 1 else 0.0 for i in range(count)]
    for x, recipe in enumerate(report.recipes):
        held = [f.gloss_top1 for f in recipe.folds]
        inner = [f.inner_best for f in recipe.folds]
        xs = [x + offsets[i] for i in range(len(held))]
        ax.scatter(xs, held, color="C0", zorder=3, label="held out" if x == 0 else None)
        ax.scatter(xs, inner, facecolors="none", edgecolors="C1", zorder=3,
                   label="inner validation best" if x == 0 else None)
        mean, sd = recipe.score("gloss_top1")
        ax.errorbar([x + spread + 0.15], [mean], yerr=[sd], fmt="s", color="black", capsize=4, zorder=4,
                    label="mean ± sd (held out)" if x == 0 else None)
    for i in range(count):  # a fold's points joined across recipes: the pairing the tests use
        ys = [recipe.folds[i].gloss_top1 for recipe in report.recipes if i < len(recipe.folds)]
        if len(ys) > 1:
            ax.plot([x + offsets[i] for x in range(len(ys))], ys, color="0.75", linewidth=0.8, zorder=2)
    ax.set_xticks(range(len(report.recipes)), [r.name for r in report.recipes])
    ax.set_ylabel("gloss accuracy")
    ax.set_title(f"{report.model}: {count} folds by {report.grouping}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    return figure
