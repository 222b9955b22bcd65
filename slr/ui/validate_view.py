"""How `slr validate` shows its report: rich tables on a terminal, plain lines in a pipe, or JSON.

Problems are grouped by kind, each naming its file, then a summary. A kind lists at most
`SHOWN_PER_KIND` files, then says how many more there are: one mistake repeated in every clip
(`--require-x2048` on keypoint-only data) would otherwise print thousands of identical lines and
push the other kinds off the screen. `--json` lists every problem.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from slr.data.problems import KINDS, group_by_kind
from slr.errors import spell_settings
from slr.ui.console import interactive, out, shown_name, shown_text

if TYPE_CHECKING:
    from slr.data.validate import ValidationReport

_STYLE = {"error": "bold red", "warning": "yellow"}
#: Problems printed per kind before the rest are counted in one line.
SHOWN_PER_KIND = 20


def _more_line(found: list) -> str | None:
    hidden = len(found) - SHOWN_PER_KIND
    if hidden <= 0:
        return None
    return f"... ({hidden} more of this kind; --json lists every one)"


def print_validation_json(report: "ValidationReport") -> None:
    """One JSON object on stdout: problems grouped by kind with their files, and the summary."""
    data = report.to_dict()
    for group in data["problems"].values():  # settings named as the flags that set them
        for item in group["items"]:
            item["message"] = spell_settings(item["message"])
    out().out(json.dumps(data, indent=2, ensure_ascii=False), highlight=False)


def _message(text: str) -> str:
    return shown_text(spell_settings(text))


def print_validation_report(report: "ValidationReport") -> None:
    if interactive():
        _print_tables(report)
    else:
        _print_lines(report)


def summary_rows(report: "ValidationReport") -> list[tuple[str, str]]:
    summary = report.summary()
    frames = summary["frames"]
    rows = [
        ("directory", shown_name(report.directory)),
        ("labels", shown_name(report.labels_csv)),
        (
            "clips",
            f"{summary['clip_files']} files, {summary['readable_clips']} usable, "
            f"{summary['labelled_clips']} labelled",
        ),
        ("frames", f"min {frames['min']}, median {frames['median']:g}, max {frames['max']}" if frames else "-"),
        ("width", ", ".join(_width(key, width) for key, width in summary["widths"].items())),
    ]
    if report.layout:
        rows.append(("layout", _message(report.layout)))
    for column, label in (("gloss", "gloss classes"), ("cat", "categories")):
        if column == "cat" and not report.labels.categories:
            rows.append((label, "- (the labels have no cat column: one category, no category figures)"))
            continue
        rows.append((label, _class_line(summary["classes"][column])))
    return rows


def _width(key: str, width: int | None) -> str:
    # None: no readable clip has the key, so there is no width to show (even a required one)
    return f"{key}: {width}" if width is not None else f"{key}: - (in no readable clip)"


def _class_line(classes: dict[str, Any]) -> str:
    if not classes["classes"]:
        return "-"
    return (
        f"{classes['classes']}; clips per class min {classes['min']['clips']} (id {classes['min']['id']}), "
        f"median {classes['median']:g}, max {classes['max']['clips']} (id {classes['max']['id']})"
    )


def _verdict(report: "ValidationReport") -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    if errors:
        return f"{errors} error(s), {warnings} warning(s): fix the errors before training"
    if warnings:
        return f"no errors, {warnings} warning(s): usable for training"
    return "no problems found"


def _print_lines(report: "ValidationReport") -> None:
    def line(text: str) -> None:  # file names are shown as they are: no markup, no :emoji: codes
        out().print(Text(text), soft_wrap=True)

    for kind, found in group_by_kind(report.problems).items():
        info = KINDS[kind]
        line(f"{info.severity.upper()}: {info.title} ({len(found)})")
        for problem in found[:SHOWN_PER_KIND]:
            line(f"  {shown_name(problem.file)}: {_message(problem.message)}")
        more = _more_line(found)
        if more:
            line(f"  {more}")
    rows = summary_rows(report)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        line(f"{name.ljust(width)}  {value}")
    line(f"result: {_verdict(report)}")
    _print_layout_notice(report)


def _print_layout_notice(report: "ValidationReport") -> None:
    if report.layout_notice:
        from slr.ui.console import print_notice

        print_notice(report.layout_notice)


def _print_tables(report: "ValidationReport") -> None:
    console = out()
    groups = group_by_kind(report.problems)
    if groups:
        table = Table(title=Text(f"Problems in {shown_name(report.directory)}"), title_justify="left")
        table.add_column("kind", max_width=30)
        table.add_column("file", overflow="fold")
        table.add_column("problem", overflow="fold")
        for kind, found in groups.items():
            info = KINDS[kind]
            style = _STYLE[info.severity]
            label = f"[{style}]{info.severity}[/]\n{escape(info.title)} ({len(found)})"
            for i, problem in enumerate(found[:SHOWN_PER_KIND]):
                table.add_row(label if i == 0 else "", Text(shown_name(problem.file)), Text(_message(problem.message)))
            more = _more_line(found)
            if more:
                table.add_row("", "", Text(more))
            table.add_section()
        console.print(table)
    summary = Table(title="Summary", title_justify="left", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    for name, value in summary_rows(report):
        summary.add_row(name, Text(value))
    console.print(summary)
    style = _STYLE["error"] if report.errors else (_STYLE["warning"] if report.warnings else "bold green")
    console.print(Text(_verdict(report), style=style))
    _print_layout_notice(report)
