"""How `slr cv` shows its progress (one line per fold run) and its report (plain lines, or JSON)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Optional

from rich.text import Text

from slr.errors import spell_settings
from slr.ui.console import err, out, shown_name, shown_text
from slr.ui.training_view import TrainingView

if TYPE_CHECKING:
    from slr.crossval.fold_run import FoldResult, FoldTask
    from slr.crossval.report import CvReport


def _line(text: str, console=None) -> None:  # names are shown as they are: no markup
    (console or out()).print(Text(text), soft_wrap=True)


def _pct(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


class CvView:
    """The command line's `slr cv` observer (slr.crossval.runner.CvObserver)."""

    def __init__(self, log_every_s: float = 30.0, for_json: bool = False):
        """`for_json`: stdout carries the JSON report alone; progress goes to stderr, epochs unshown."""
        self.log_every_s = log_every_s
        self.for_json = for_json

    def _say(self, text: str) -> None:
        _line(text, err() if self.for_json else None)

    def note(self, text: str) -> None:
        self._say(shown_text(spell_settings(text)))

    def _name(self, recipe: str, fold: int) -> str:
        return f"{shown_text(recipe)}, fold {fold}"

    def fold_start(self, task: "FoldTask", resumed: bool) -> None:
        how = "continuing its killed run from _last.pt" if resumed else "training"
        self._say(f"{self._name(task.recipe, task.fold)}: {how} ({shown_name(str(task.run_dir))})")

    def fold_kept(self, result: "FoldResult") -> None:
        self._say(f"{self._name(result.recipe, result.fold)}: finished earlier, kept (held-out gloss "
                  f"{_pct(result.gloss_top1)})")

    def fold_done(self, result: "FoldResult") -> None:
        self._say(f"{self._name(result.recipe, result.fold)}: {_fold_numbers(result)}")

    def training(self, task: "FoldTask") -> Any:
        return TrainingView(enabled=not self.for_json, log_every_s=self.log_every_s)


def _fold_numbers(result: "FoldResult") -> str:
    cat = f", category {_pct(result.cat_top1)}" if result.cat_top1 is not None else ""
    return (f"held-out gloss {_pct(result.gloss_top1)} (top-{result.top5_k} {_pct(result.gloss_top5)}){cat} on "
            f"{result.clips} clips; inner val best {_pct(result.inner_best)} at epoch {result.best_epoch} "
            f"(last epoch {_pct(result.inner_last)})")


def print_cv_json(report: "CvReport") -> None:
    out().out(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), highlight=False)


def print_cv_report(report: "CvReport") -> None:
    _line(f"{report.model} on {shown_name(report.data)}: {report.fold_count} folds by {shown_text(report.grouping)}; "
          f"each fold scored once on {report.noun}s it never saw, with the checkpoint its inner validation chose")
    for recipe in report.recipes:
        _line("")
        _line(f"recipe {shown_text(recipe.name)}" + (f" ({shown_name(recipe.file)})" if recipe.file else
                                                     " (slr's defaults)"))
        _line(f"  {'fold':>4}  {'held out':<24} {'clips':>5}  {'gloss':>6} {'top-k':>6} {'cat':>6}  "
              f"{'inner val best':>14}")
        for fold in recipe.folds:
            groups = shown_text(" ".join(fold.held_out))
            groups = groups if len(groups) <= 24 else groups[:23] + "…"
            _line(f"  {fold.fold:>4}  {groups:<24} {fold.clips:>5}  {_pct(fold.gloss_top1):>6} "
                  f"{_pct(fold.gloss_top5):>6} {_pct(fold.cat_top1):>6}  {_pct(fold.inner_best):>14}")
        parts = [f"{label} {_mean_sd(recipe.score(name))}" for name, label in
                 (("gloss_top1", "gloss"), ("gloss_top5", "top-5"), ("cat_top1", "category"))
                 if name != "cat_top1" or recipe.has_categories]
        inner = recipe.score("inner_best")
        gap = (inner[0] - recipe.score("gloss_top1")[0]) * 100
        _line(f"  held out, mean ± sd over {len(recipe.folds)} folds: " + ", ".join(parts)
              + f"; inner validation best {_mean_sd(inner)}"
              + (f" ({gap:+.1f} points against held out: what choosing on validation flatters)" if gap > 0 else
                 f" ({gap:+.1f} points against held out)" if not math.isnan(gap) else ""))
    for pair in report.pairs:
        _line("")
        _line(f"{shown_text(pair.second)} vs {shown_text(pair.first)}: per-fold differences "
              + " ".join(f"{d * 100:+.1f}" for d in pair.differences) + " points")
        _line("  " + shown_text(pair.meaning))
        test = pair.mcnemar
        pooled = test.both_right + test.only_first + test.only_second + test.both_wrong
        _line(f"  McNemar's exact test on the {pooled} pooled held-out clips: {shown_text(test.meaning)}")
    for text in report.notices:
        _line(shown_text(spell_settings(text)))
    if report.files:
        _line("")
        _line("written: " + ", ".join(shown_name(p) for p in report.files.values()))


def _mean_sd(values: tuple[float, float]) -> str:
    mean, sd = values
    return "-" if math.isnan(mean) else f"{mean:.3f} ± {sd:.3f}"
