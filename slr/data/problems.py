"""The problems `slr validate` can find in clips and labels, and how serious each one is.

Every check reports `Problem`s instead of raising, so one run lists everything that is wrong.
A kind's severity is fixed here, in one table: errors stop training (exit 1 from
`slr validate`), warnings are printed but leave the data usable (exit 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ProblemKind:
    severity: Severity
    title: str


#: Every kind, in the order reports list them (errors before warnings).
KINDS: dict[str, ProblemKind] = {
    # the directory and the clip files
    "no_clips": ProblemKind("error", "No clip files"),
    "not_a_file": ProblemKind("error", "Named like a clip but not a file"),
    "name_clash": ProblemKind("error", "Several files for one clip name"),
    "unreadable": ProblemKind("error", "Unreadable or corrupt archive"),
    "too_large": ProblemKind("error", "Array too large (refused before reading it)"),
    "missing_key": ProblemKind("error", "Missing key"),
    "object_array": ProblemKind("error", "Object array (refused, never unpickled)"),
    "bad_dtype": ProblemKind("error", "Not a numeric array"),
    "bad_shape": ProblemKind("error", "Not a 2-D [T, D] array"),
    "empty_clip": ProblemKind("error", "No frames (T = 0)"),
    "zero_width": ProblemKind("error", "No values per frame (D = 0)"),
    "bad_width": ProblemKind("error", "Wrong width D"),
    "non_finite": ProblemKind("error", "NaN or infinite values"),
    "huge_values": ProblemKind("error", "Values too large for float32 arithmetic"),
    # labels.csv
    "labels_missing": ProblemKind("error", "Labels file missing"),
    "labels_unreadable": ProblemKind("error", "Labels file unreadable"),
    "labels_empty": ProblemKind("error", "Labels file empty"),
    "labels_columns": ProblemKind("error", "Labels columns missing"),
    "bad_row": ProblemKind("error", "Labels row without a clip name"),
    "non_integer_id": ProblemKind("error", "Non-integer id"),
    "negative_id": ProblemKind("error", "Negative id"),
    "id_out_of_range": ProblemKind("error", "Id out of range"),
    "duplicate_row": ProblemKind("error", "Clip listed more than once"),
    "missing_clip": ProblemKind("error", "Labelled clip missing"),
    # warnings: worth a look, but training can go on
    "zero_frames": ProblemKind("warning", "Many all-zero frames (nothing detected)"),
    "unlabelled_clip": ProblemKind("warning", "Clip without a labels row (ignored in training)"),
    "empty_class": ProblemKind("warning", "Class without clips"),
    "gloss_in_two_categories": ProblemKind("warning", "Gloss in more than one category"),
    "shared_group": ProblemKind("warning", "Group (signer, session) in train and another split"),
}


@dataclass(frozen=True)
class Problem:
    """One problem with one file: `file` is the clip (or labels file) it is about."""

    kind: str
    file: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:  # a typo here would silently change exit codes
            raise ValueError(f"unknown problem kind {self.kind!r}")

    @property
    def severity(self) -> Severity:
        return KINDS[self.kind].severity

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def group_by_kind(problems: list[Problem]) -> dict[str, list[Problem]]:
    """Problems grouped by kind, kinds in the order of `KINDS`, files in the order found."""
    groups: dict[str, list[Problem]] = {}
    for kind in KINDS:
        found = [p for p in problems if p.kind == kind]
        if found:
            groups[kind] = found
    return groups
