"""How `slr evaluate` and `slr export` show results: rich tables on a terminal,
plain lines in a pipe or a file, or JSON."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Optional

from rich.table import Table
from rich.text import Text

from slr.ui.console import interactive, out, shown_name as _n, shown_text

if TYPE_CHECKING:
    from slr.analysis.evaluate import EvaluationReport
    from slr.analysis.export import ExportResult
    from slr.analysis.metrics import TaskMetrics

_TASK_LABEL = {"gloss": "gloss", "cat": "category"}
#: Per-class rows shown on a terminal / in plain text (all of them are in metrics.json).
PER_CLASS_ROWS = 30


def _line(text: str = "") -> None:
    out().print(Text(shown_text(text)), soft_wrap=True)  # no markup; names escaped and shortened (_n)


def _json(value: Any) -> None:
    # allow_nan=False: NaN is not JSON. Reports hold null for "nothing to measure", and predict refuses
    # clips and models that would give NaN, so this raising would be a bug, not bad input.
    out().out(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False), highlight=False)


def _f1_classes(metrics: "TaskMetrics", table: bool = False) -> str:
    """The classes macro F1 is over: a model with 105 classes evaluated on 15 says so, not "105"."""
    used, known = metrics.classes_in_f1, len(metrics.classes)
    if table:
        return str(known) if used == known else f"{used} of {known}"
    return f"{known} classes" if used == known else f"over the {used} of {known} classes in the labels or the predictions"


def _pct(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.2f}%"


# --- evaluate ---------------------------------------------------------------------------------


def print_evaluation_json(report: "EvaluationReport") -> None:
    _json(report.to_dict())


def _worst_classes(metrics: "TaskMetrics") -> list:
    present = [c for c in metrics.classes if c.support]
    return sorted(present, key=lambda c: (c.recall, c.id))


def _heads(report: "EvaluationReport") -> list:
    """The heads with figures to show: not a category head of one class (labels without cat)."""
    return [m for m in (report.gloss, report.cat) if not m.single_class]


def print_evaluation(report: "EvaluationReport") -> None:
    if interactive():
        _evaluation_tables(report)
    else:
        _evaluation_lines(report)


def _evaluation_lines(report: "EvaluationReport") -> None:
    if report.ensemble:
        _line(_ensemble_line(report))
    else:
        _line(f"checkpoint: {_n(report.checkpoint)} ({report.model_class})")
    _line(f"clips: {report.clips} in {_n(report.directory)} (labels: {_n(report.labels_csv)})")
    for metrics in _heads(report):
        label = _TASK_LABEL[metrics.task]
        _line(
            f"{label}: top-1 {_pct(metrics.top1)}, top-{metrics.top5_k} {_pct(metrics.top5)}, "
            f"macro F1 {_pct(metrics.macro_f1)} ({_f1_classes(metrics)})"
        )
    for metrics in _heads(report):
        label = _TASK_LABEL[metrics.task]
        worst = _worst_classes(metrics)
        shown = worst[:PER_CLASS_ROWS]
        more = f", {len(worst) - len(shown)} more in metrics.json" if len(worst) > len(shown) else ""
        _line()
        _line(f"{label} accuracy per class, lowest first ({len(worst)} classes with clips{more}):")
        for c in shown:
            _line(f"  {c.id:>4}  {_n(c.name)}: {_pct(c.recall)} ({c.correct}/{c.support}), F1 {_pct(c.f1)}")
        _line()
        if metrics.confused:
            _line(f"most confused {label} pairs (true -> predicted):")
            for pair in metrics.confused:
                _line(
                    f"  {pair['count']:>4} x  {_n(pair['true_name'])} -> {_n(pair['predicted_name'])} "
                    f"({_pct(pair['share'])} of {_n(pair['true_name'])})"
                )
        else:
            _line(f"no {label} confusions")
    if report.group_by:
        _line()
        _line(f"by {report.group_by} ({len(report.groups)} groups):")
        for g in report.groups:
            _line(
                f"  {g.value}: {g.clips} clips, gloss top-1 {_pct(g.gloss_top1)}, top-{g.top5_k} "
                f"{_pct(g.gloss_top5)}" + ("" if report.cat.single_class else f", category {_pct(g.cat_top1)}")
            )
    _sanity(report)
    _line()
    for name, path in report.files.items():
        _line(f"{name}: {_n(path)}")


def _sanity(report: "EvaluationReport") -> None:
    """When answers should not be trusted (slr/analysis/sanity.py), and how right they are then."""
    if report.sanity is not None:
        from slr.ui.predict_view import sanity_summary_lines

        _line()
        for text in sanity_summary_lines(report.sanity):
            _line(text)


def _ensemble_line(report: "EvaluationReport") -> str:
    names = ", ".join(_n(p) for p in report.ensemble)
    return f"ensemble of {len(report.ensemble)} checkpoints ({report.model_class}; probabilities averaged): {names}"


def _evaluation_tables(report: "EvaluationReport") -> None:
    console = out()
    what = f"an ensemble of {len(report.ensemble)} {report.model_class}" if report.ensemble else report.model_class
    summary = Table(title=Text(f"{what} on {_n(report.directory)} ({report.clips} clips)"), title_justify="left")
    summary.add_column("head")
    summary.add_column("top-1", justify="right")
    summary.add_column("top-5", justify="right")
    summary.add_column("macro F1", justify="right")
    summary.add_column("classes in F1", justify="right")
    for metrics in _heads(report):
        top5 = _pct(metrics.top5) + ("" if metrics.top5_k == 5 else f" (top-{metrics.top5_k})")
        f1_classes = _f1_classes(metrics, table=True)
        summary.add_row(_TASK_LABEL[metrics.task], _pct(metrics.top1), top5, _pct(metrics.macro_f1), f1_classes)
    console.print(summary)
    if report.ensemble:
        console.print(Text(_ensemble_line(report)))
    for metrics in _heads(report):
        label = _TASK_LABEL[metrics.task]
        worst = _worst_classes(metrics)
        shown = worst[:PER_CLASS_ROWS]
        more = f"; {len(worst) - len(shown)} more in metrics.json" if len(worst) > len(shown) else ""
        table = Table(title=f"{label} accuracy per class, lowest first{more}", title_justify="left")
        for column, justify in (("id", "right"), ("name", "left"), ("accuracy", "right"), ("correct", "right"),
                                ("F1", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for c in shown:
            style = "red" if c.recall < 0.5 else "yellow" if c.recall < 0.9 else None
            table.add_row(str(c.id), Text(_n(c.name)), _pct(c.recall), f"{c.correct}/{c.support}", _pct(c.f1), style=style)
        console.print(table)
        if metrics.confused:
            pairs = Table(title=f"most confused {label} pairs", title_justify="left")
            for column, justify in (("true", "left"), ("predicted as", "left"), ("clips", "right"),
                                    ("share of true", "right")):
                pairs.add_column(column, justify=justify)  # type: ignore[arg-type]
            for pair in metrics.confused:
                pairs.add_row(Text(_n(pair["true_name"])), Text(_n(pair["predicted_name"])), str(pair["count"]),
                              _pct(pair["share"]))
            console.print(pairs)
    categories = not report.cat.single_class
    if report.group_by:
        groups = Table(title=f"by {report.group_by}", title_justify="left")
        for column, justify in ((report.group_by, "left"), ("clips", "right"), ("gloss top-1", "right"),
                                ("gloss top-5", "right"), ("category", "right"))[:None if categories else -1]:
            groups.add_column(column, justify=justify)  # type: ignore[arg-type]
        for g in report.groups:
            groups.add_row(Text(g.value), str(g.clips), _pct(g.gloss_top1), _pct(g.gloss_top5),
                           *([_pct(g.cat_top1)] if categories else []))
        console.print(groups)
    _sanity(report)
    files = Table(title="written", title_justify="left", show_header=False)
    files.add_column("what")
    files.add_column("path")
    for name, path in report.files.items():
        files.add_row(name, Text(_n(path)))
    console.print(files)


# --- export -----------------------------------------------------------------------------------


def print_export(result: "ExportResult") -> None:
    _line(f"exported {result.format} model to {_n(result.path)} ({result.exporter})")
    for check in result.checks:
        _line(f"  checked {_n(check['input'])}: max abs difference {check['max_abs_diff']:.3g}")
    _line(f"max abs difference from the PyTorch model: {result.max_abs_diff:.3g}")
