"""How `slr predict` shows its answers: a table per clip on a terminal, plain lines in a pipe or a
file, or JSON; with the doubts about each answer in words, and with --window the segments and
the windows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional, Sequence

from rich.table import Table
from rich.text import Text

from slr.errors import setting, spell_settings
from slr.ui.console import interactive, out, shown_name as _n, shown_text

if TYPE_CHECKING:
    from slr.analysis.predict import Prediction
    from slr.analysis.sanity import Sanity, SanitySummary
    from slr.analysis.windows import WindowAnswer

_PART_LABEL = {"pose": "pose", "left_hand": "left hand", "right_hand": "right hand"}


def _line(text: str = "", style: Optional[str] = None) -> None:
    out().print(Text(shown_text(spell_settings(text)), style=style), soft_wrap=True)  # names escaped (_n)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def print_predictions_json(predictions: Sequence["Prediction"]) -> None:
    answers = [p.to_dict() for p in predictions]
    for answer in answers:  # the note names a setting: as the flag the user would type, as on the terminal
        if answer.get("length_note"):
            answer["length_note"] = spell_settings(answer["length_note"])
    # allow_nan=False: predict refuses clips and models that would give NaN; raising here is a bug.
    out().out(json.dumps(answers, indent=2, ensure_ascii=False, allow_nan=False), highlight=False)


def detection_text(detection: Optional[dict[str, float]]) -> str:
    if detection is None:
        return ""
    return "found in " + ", ".join(f"{_PART_LABEL[p]} {100 * s:.0f}%" for p, s in detection.items()) + " of frames"


def _gloss_text(name: str, prob: float, gloss_id: int, sanity: Optional["Sanity"], rank: int) -> str:
    category = f", {_n(sanity.gloss_category[1])}" if rank == 1 and sanity and sanity.gloss_category else ""
    return f"{_n(name)} ({_pct(prob)}, gloss {gloss_id}{category})"


def _title(p: "Prediction") -> str:
    length = f", {p.seconds:.2f} s" if p.seconds is not None else ""
    if p.category is None:  # a model of one category (labels without cat): nothing to say
        return f"{_n(p.clip)} ({p.frames} frames{length})"
    return f"{_n(p.clip)} ({p.frames} frames{length}): category {_n(p.category[1])} ({_pct(p.category[2])})"


def _doubts(p: "Prediction") -> list[str]:
    lines = []
    if p.sanity is not None:
        found = detection_text(p.sanity.detection)
        if found:
            lines.append(found)
        lines += [f"! {note}" for note in p.sanity.notes(_n(p.glosses[0][1]))]
    if p.length_note:
        lines.append(f"! {p.length_note}")
    return lines


def print_predictions(predictions: Sequence["Prediction"]) -> None:
    for p in predictions:
        if p.windows:
            _print_windows(p)
        elif interactive():
            _print_table(p)
        else:
            _line(_title(p))
            for rank, (gloss_id, name, prob) in enumerate(p.glosses, start=1):
                _line(f"  {rank}. {_gloss_text(name, prob, gloss_id, p.sanity, rank)}")
            for text in _doubts(p):
                _line(f"  {text}")


def _print_table(p: "Prediction") -> None:
    table = Table(title=Text(shown_text(_title(p))), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("gloss")
    table.add_column("id", justify="right")
    table.add_column("probability", justify="right")
    for rank, (gloss_id, name, prob) in enumerate(p.glosses, start=1):
        label = _n(name)
        if rank == 1 and p.sanity is not None and p.sanity.gloss_category is not None:
            label += f" ({_n(p.sanity.gloss_category[1])})"
        table.add_row(str(rank), Text(label), str(gloss_id), _pct(prob), style="bold" if rank == 1 else None)
    out().print(table)
    for text in _doubts(p):
        _line(f"  {text}", style="yellow" if text.startswith("!") else None)


def window_text(w: "WindowAnswer") -> str:
    """One window's answer on one line: its time, the top glosses, and its doubts in short."""
    glosses = ", ".join(f"{_n(name)} {100 * prob:.1f}%" for _, name, prob in w.glosses)
    flags = []
    if w.sanity.no_hand:
        flags.append("no hand")
    if w.sanity.uncertain:
        flags.append("uncertain")
    if w.sanity.category_disagrees and w.category is not None:
        flags.append(f"category head: {_n(w.category[1])}")
    shown = f"  [{'; '.join(flags)}]" if flags else ""
    return f"{w.span.start_s:7.2f}-{w.span.end_s:<7.2f}s  {glosses}{shown}"


def _print_windows(p: "Prediction") -> None:
    window = p.windows[0].span.end_s - p.windows[0].span.start_s
    _line(f"{_n(p.clip)} ({p.frames} frames{f', {p.seconds:.2f} s' if p.seconds is not None else ''}): "
          f"{len(p.windows)} windows of {window:.2f} s, {len(p.segments)} segments", style="bold")
    if p.sanity is not None and p.sanity.detection is not None:
        _line(f"  {detection_text(p.sanity.detection)}")
        if p.sanity.no_hand:
            _line("  ! no hand was found in any frame: the answers are not about signs", style="yellow")
    _line("  segments:")
    for s in p.segments:
        if s.confident:
            _line(f"  {s.start_s:7.2f}-{s.end_s:<7.2f}s  {_n(s.gloss[1])} ({100 * s.prob:.1f}%)", style="bold")
        else:
            _line(f"  {s.start_s:7.2f}-{s.end_s:<7.2f}s  (uncertain; at best {_n(s.gloss[1])} "
                  f"{100 * s.prob:.1f}%)")
    _line("  windows:")
    for w in p.windows:
        _line(f"  {window_text(w)}")


def sanity_summary_lines(summary: "SanitySummary") -> list[str]:
    """`slr evaluate`'s lines about the signals (settings as the flags that set them)."""
    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}%" if whole else "-"

    below = spell_settings(setting("uncertain_below", summary.threshold))
    lines = [f"uncertain (top probability below {below}): {summary.uncertain} of {summary.uncertain + summary.certain} "
             f"clips, {share(summary.uncertain_correct, summary.uncertain)} of them right; the others "
             f"{share(summary.certain_correct, summary.certain)} right"]
    if summary.category_checked:
        lines.append(f"category head against the classes file's category of the top gloss: disagrees on "
                     f"{summary.category_disagree} of {summary.category_checked} clips (top gloss right on "
                     f"{summary.category_disagree_correct} of them)")
    if summary.detection_known:
        named = ", ".join(_n(c) for c in summary.no_hand_clips[:5])
        more = f" and {len(summary.no_hand_clips) - 5} more (metrics.json)" if len(summary.no_hand_clips) > 5 else ""
        lines.append(f"no hand found in any frame: {len(summary.no_hand_clips)} of {summary.detection_known} clips"
                     + (f": {named}{more}" if named else ""))
    return lines
