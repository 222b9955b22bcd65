"""How `slr split` shows a split: groups and clips per class per split, as a rich table on a terminal,
aligned plain lines otherwise (they read well in a log), or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from slr.ui.console import interactive, out

if TYPE_CHECKING:
    from slr.data.split import SplitResult


def print_split(result: "SplitResult", *, as_json: bool = False) -> None:
    if as_json:
        out().out(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), highlight=False)
    elif interactive():
        _print_table(result)
    else:
        _print_lines(result)


def _heading(result: "SplitResult") -> str:
    return f"split of {result.labels_csv} by {result.grouping.describe()}, seed {result.seed}"


def _split_lines(result: "SplitResult") -> list[str]:
    lines = []
    totals = result.totals()
    width = max(len(name) for name in totals)
    for name, t in totals.items():
        written = f" -> {result.outputs[name]}" if name in result.outputs else ""
        lines.append(
            f"{name.ljust(width)}  {t['groups']} {result.grouping.noun}(s), {t['clips']} clips "
            f"({t['share']:.1%} of the clips; asked {t['requested']:.1%}){written}"
        )
    return lines


def _class_rows(result: "SplitResult") -> tuple[list[str], list[list[str]]]:
    counts = result.counts()
    groups = f"{result.grouping.noun}s"  # "signers", or "groups" for a regular expression
    header = ["gloss", "name"] + [f"{name} {what}" for name in result.splits for what in (groups, "clips")]
    rows = []
    for gloss in sorted(result.class_names):
        row = [str(gloss), result.class_names.get(gloss, "")]
        for name in result.splits:
            count = counts[name][gloss]
            row += [str(count.groups), str(count.clips)]
        rows.append(row)
    return header, rows


def _print_lines(result: "SplitResult") -> None:
    def line(text: str) -> None:  # names are shown as they are: no markup
        out().print(Text(text), soft_wrap=True)

    line(_heading(result))
    for text in _split_lines(result):
        line("  " + text)
    header, rows = _class_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) if i == 1 else row[i].rjust(widths[i]) for i in range(len(row))]
        line("  ".join(cells).rstrip())


def _print_table(result: "SplitResult") -> None:
    console = out()
    console.print(Text(_heading(result), style="bold"))
    for text in _split_lines(result):
        console.print(Text("  " + text))
    header, rows = _class_rows(result)
    table = Table(title="Groups and clips per class", title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 1 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
