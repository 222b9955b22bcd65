"""How `slr compare` shows its result: side-by-side tables on a terminal, plain lines in a pipe or a
file, or JSON. Notices (clips left out, runs without a log) go to stderr."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from slr.ui.console import interactive, out, print_notice
from slr.ui.evaluate_view import _line, _pct

if TYPE_CHECKING:
    from slr.analysis.compare import Comparison, RunResult

_TASK_LABEL = {"gloss": "gloss", "cat": "category"}


def _rows(run: "RunResult") -> list[tuple[str, str]]:
    g = run.gloss
    rows = [
        ("gloss top-1", _pct(g.top1)),
        (f"gloss top-{g.top5_k}", _pct(g.top5)),
        ("gloss macro F1", _pct(g.macro_f1)),
    ]
    if not run.cat.single_class:  # one category (labels without cat): always right, nothing to compare
        rows.append(("category accuracy", _pct(run.cat.top1)))
    return rows


def print_comparison_json(comparison: "Comparison") -> None:
    for notice in comparison.notices:
        print_notice(notice)
    out().out(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False, allow_nan=False), highlight=False)


def print_comparison(comparison: "Comparison") -> None:
    for notice in comparison.notices:
        print_notice(notice)
    if interactive():
        _tables(comparison)
    else:
        _lines(comparison)


def _lines(c: "Comparison") -> None:
    _line(f"compared on {c.clips} clips (of {c.labelled} in {c.labels_csv})")
    for run in c.runs:
        _line(f"{run.label}: {run.checkpoint} ({run.model_class}, clips from {run.directory})")
    _line()
    width = max(len(name) for name, _ in _rows(c.runs[0]))
    _line(" " * width + "".join(f"  {run.label:>8}" for run in c.runs))
    columns = [_rows(run) for run in c.runs]
    for k, (name, _) in enumerate(columns[0]):
        _line(f"{name:<{width}}" + "".join(f"  {col[k][1]:>8}" for col in columns))
    _line()
    for t in c.tests:
        _line(f"McNemar's exact test, {_TASK_LABEL[t.task]}, {t.first} vs {t.second}: only {t.first} right "
              f"{t.only_first}, only {t.second} right {t.only_second}, p = {t.p_value:.3g}")
        _line(f"  {t.meaning}")
    _line()
    if not c.differing:
        _line("no gloss class has a different accuracy in the runs")
    else:
        _line("gloss classes whose accuracy differs most:")
        for d in c.differing:
            accuracies = ", ".join(f"{run.label} {_pct(a)}" for run, a in zip(c.runs, d.accuracy))
            _line(f"  {d.id:>4}  {d.name} ({d.clips} clips): {accuracies}")
    _line()
    for name, path in c.files.items():
        _line(f"{name}: {path}")


def _tables(c: "Comparison") -> None:
    console = out()
    summary = Table(title=f"compared on {c.clips} clips (of {c.labelled} in {c.labels_csv})", title_justify="left")
    summary.add_column("")
    for run in c.runs:
        summary.add_column(Text(f"{run.label}: {run.model_class}\n{run.checkpoint.parent}"), justify="right")
    columns = [_rows(run) for run in c.runs]
    for k, (name, _) in enumerate(columns[0]):
        values = [col[k][1] for col in columns]
        summary.add_row(name, *values)
    console.print(summary)

    tests = Table(title="McNemar's exact test on the paired top-1 answers", title_justify="left")
    for column, justify in (("runs", "left"), ("head", "left"), ("only first right", "right"),
                            ("only second right", "right"), ("both right", "right"), ("both wrong", "right"),
                            ("p-value", "right")):
        tests.add_column(column, justify=justify)  # type: ignore[arg-type]
    for t in c.tests:
        tests.add_row(f"{t.first} vs {t.second}", _TASK_LABEL[t.task], str(t.only_first), str(t.only_second),
                      str(t.both_right), str(t.both_wrong), f"{t.p_value:.3g}",
                      style="bold" if t.p_value < 0.05 else None)
    console.print(tests)
    for t in c.tests:
        console.print(Text(f"{_TASK_LABEL[t.task]}, {t.first} vs {t.second}: {t.meaning}"))

    if c.differing:
        classes = Table(title="gloss classes whose accuracy differs most", title_justify="left")
        for column, justify in (("id", "right"), ("name", "left"), ("clips", "right")):
            classes.add_column(column, justify=justify)  # type: ignore[arg-type]
        for run in c.runs:
            classes.add_column(run.label, justify="right")
        for d in c.differing:
            classes.add_row(str(d.id), Text(d.name), str(d.clips), *[_pct(a) for a in d.accuracy])
        console.print(classes)
    else:
        console.print("no gloss class has a different accuracy in the runs")

    files = Table(title="written", title_justify="left", show_header=False)
    files.add_column("what")
    files.add_column("path")
    for name, path in c.files.items():
        files.add_row(name, Text(str(path)))
    console.print(files)
