"""Check a clip directory and its labels.csv: every file, every problem, in one run.

`validate_directory` does the work and returns a `ValidationReport`; `run_validate` is
`slr validate`; `check_training_data` is the trainer's gate (raises `DataError` on errors and
hands the arrays it read to the dataset, so training does not read every file twice).
numpy + pandas only: `slr validate` never imports torch.
"""

from __future__ import annotations

import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from slr.data.clip_limits import ClipLimits, clip_limits
from slr.data.clips import (
    MIRROR_SUFFIX,
    ArraySpec,
    ClipListing,
    file_stem,
    inspect_clip,
    map_files,
    most_common_width,
    scan_clip_dir,
)
from slr.data.files import describe_non_file
from slr.data.labels import LabelTable, load_labels
from slr.data.problems import KINDS, Problem, group_by_kind
from slr.data.split import clips_in_other_splits, split_group_problems
from slr.errors import DataError, command, setting

if TYPE_CHECKING:
    from slr.settings import ValidateSettings

#: Width of the feature key when --feature-dim is not given (InceptionV3's pooled output).
DEFAULT_FEATURE_DIM = 2048
#: Files named per kind in `check_training_data`'s error message.
_FILES_NAMED_PER_KIND = 3


@dataclass
class _ClipFacts:
    """What the report keeps of one clip: its problems, shapes, and (if asked) its main array."""

    path: Path
    problems: list[Problem]
    shapes: dict[str, tuple[int, int]]
    array: Optional[np.ndarray]


@dataclass
class ValidationReport:
    """The outcome of checking one directory. `clips` holds the main arrays when kept."""

    directory: Path
    labels_csv: Path
    problems: list[Problem]
    widths: dict[str, Optional[int]]
    frames: list[int]
    clip_files: int
    readable_clips: int
    labels: LabelTable
    class_counts: dict[str, dict[int, int]]
    clips: dict[str, np.ndarray] = field(default_factory=dict)
    layout: Optional[str] = None  # which keypoint layout training would use, and from where
    layout_notice: Optional[str] = None  # what training loses on a width no layout explains

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        frames = (
            {"min": min(self.frames), "median": statistics.median(self.frames), "max": max(self.frames)}
            if self.frames
            else None
        )
        return {
            "clip_files": self.clip_files,
            "readable_clips": self.readable_clips,
            "labelled_clips": sum(self.class_counts["gloss"].values()),
            "frames": frames,
            "widths": self.widths,
            **({"layout": self.layout} if self.layout else {}),
            "classes": {name: _class_summary(counts) for name, counts in self.class_counts.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-able values (what `slr validate --json` prints)."""
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "labels_csv": str(self.labels_csv),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": {
                kind: {
                    "severity": KINDS[kind].severity,
                    "title": KINDS[kind].title,
                    "count": len(found),
                    "items": [{"file": p.file, "message": p.message} for p in found],
                }
                for kind, found in group_by_kind(self.problems).items()
            },
            "summary": self.summary(),
        }


def _class_summary(counts: dict[int, int]) -> dict[str, Any]:
    """Clips per class, compactly: how many classes, the smallest, median and largest class."""
    if not counts:
        return {"classes": 0}
    smallest = min(counts, key=lambda c: (counts[c], c))
    largest = max(counts, key=lambda c: (counts[c], -c))
    return {
        "classes": sum(1 for n in counts.values() if n),
        "min": {"id": smallest, "clips": counts[smallest]},
        "median": statistics.median(counts.values()),
        "max": {"id": largest, "clips": counts[largest]},
        "clips_per_class": {str(c): n for c, n in sorted(counts.items())},
    }


def validate_directory(
    directory: Path,
    labels_csv: Optional[Path] = None,
    *,
    specs: list[ArraySpec],
    num_gloss: Optional[int] = None,
    num_cat: Optional[int] = None,
    max_zero_frames: float = 0.5,
    keep_clips: bool = False,
    limits: Optional[ClipLimits] = None,
    check_split_groups: bool = False,
    group_by: Optional[str] = None,
) -> ValidationReport:
    """Check every clip in `directory` against `specs` (the first is the main array) and the labels.

    Raises `DataError` only for a directory that cannot be checked at all; everything else is a
    `Problem` in the report. With `keep_clips` the report holds each clip's main array (float32,
    by file stem) so a dataset can start with them cached. `limits`: the largest clip array read
    (default: the settings' defaults); a larger one is a `too_large` problem, never read. With
    `check_split_groups` a train split that shares a group (signer, session, or `group_by`) with
    another split is warned about (`slr.data.split.split_group_problems`).
    """
    directory = Path(directory)
    if not directory.exists():
        raise DataError("directory not found", directory)
    if not directory.is_dir():
        raise DataError("not a directory", directory)
    labels_csv = Path(labels_csv) if labels_csv is not None else directory / "labels.csv"

    listing = scan_clip_dir(directory)
    files = listing.files
    facts = _inspect_all(files, specs, max_zero_frames, keep_clips, limits or clip_limits())
    problems: list[Problem] = []
    if not listing.stems:
        problems.append(Problem("no_clips", directory.name or str(directory), f"no .npz files in {directory}"))
    problems += _listing_problems(listing, labels_csv.name)
    for clip in facts:
        problems += clip.problems
    widths, width_problems = _check_widths(facts, specs)
    problems += width_problems
    unusable = {p.file for p in problems if p.is_error}

    labels = load_labels(labels_csv, num_gloss=num_gloss, num_cat=num_cat)
    problems += labels.problems
    present = listing.stems  # a labelled clip that is not a file is reported above, not as missing
    # In one directory shared by split files, a clip another split file labels is not unlabelled.
    problems += _match_labels_to_clips(labels, present, directory, elsewhere=clips_in_other_splits(labels_csv))
    class_counts = _count_classes(labels, present)
    problems += _empty_classes(class_counts, {"gloss": num_gloss, "cat": num_cat}, labels)
    if check_split_groups:
        problems += split_group_problems(labels, group_by)

    main_key = specs[0].key
    return ValidationReport(
        directory=directory,
        labels_csv=labels_csv,
        problems=problems,
        widths=widths,
        frames=[c.shapes[main_key][0] for c in facts if main_key in c.shapes],
        clip_files=len(files) + len(listing.not_files),
        readable_clips=sum(1 for c in facts if c.path.name not in unusable),
        labels=labels,
        class_counts=class_counts,
        clips={file_stem(c.path): c.array for c in facts if c.array is not None},
    )


def _inspect_all(
    files: list[Path], specs: list[ArraySpec], max_zero_frames: float, keep: bool, limits: ClipLimits
) -> list[_ClipFacts]:
    main_key = specs[0].key

    def inspect(path: Path) -> _ClipFacts:
        found = inspect_clip(path, specs, max_zero_frames, limits)
        shapes = {key: (a.shape[0], a.shape[1]) for key, a in found.arrays.items()}
        array = found.arrays.get(main_key) if keep else None  # float32 already
        return _ClipFacts(path, found.problems, shapes, array)

    return map_files(inspect, files)


def _listing_problems(listing: ClipListing, labels_name: str) -> list[Problem]:
    """Entries named like clips that are not files, and clip names more than one file answers to."""
    problems = [
        Problem("not_a_file", path.name, f"is {what}, not a clip file")
        for path, what in listing.not_files.items()
    ]
    for stem, paths in listing.clashes.items():
        names = " and ".join(p.name for p in paths)
        problems.append(
            Problem(
                "name_clash",
                paths[0].name,
                f"{names} are the same clip {stem!r} to {labels_name}, which cannot tell them apart: keep one",
            )
        )
    return problems


def _check_widths(facts: list[_ClipFacts], specs: list[ArraySpec]) -> tuple[dict[str, Optional[int]], list[Problem]]:
    """The expected width per key (as set, or the most common one) and a problem per misfit.

    The widths returned are for the summary: a key no readable clip carries has None there,
    even when its width was set (a set width is a requirement, not something found).
    """
    widths: dict[str, Optional[int]] = {}
    problems = []
    for spec in specs:
        found = [c.shapes[spec.key][1] for c in facts if spec.key in c.shapes]
        expected = spec.width or most_common_width(found)
        if found or spec.required:  # an optional array no clip carries is not part of the summary
            widths[spec.key] = expected if found else None
        why = "required" if spec.width else "the most common width in this directory"
        for clip in facts:
            shape = clip.shapes.get(spec.key)
            if shape is not None and shape[1] != expected:
                problems.append(
                    Problem("bad_width", clip.path.name, f"{spec.key!r} is {shape[1]} wide, expected {expected} ({why})")
                )
                clip.array = None  # a misfit is never handed to a dataset
    return widths, problems


def _match_labels_to_clips(
    labels: LabelTable, present: set[str], directory: Path, elsewhere: frozenset[str] | set[str] = frozenset()
) -> list[Problem]:
    problems = []
    where = labels.path.name
    listed = set(labels.rows["file"])
    for name, line in zip(labels.rows["file"], labels.rows.index):
        if name not in present:
            problems.append(
                Problem("missing_clip", f"{name}.npz", f"{where} line {line} names it, but it is not in {directory}")
            )
    if labels.rows.empty:
        return problems  # no usable labels: that is already reported once, not once per clip
    for name in sorted(present - listed - elsewhere):
        problems.append(Problem("unlabelled_clip", f"{name}.npz", f"no row in {where}"))
    return problems


def _count_classes(labels: LabelTable, present: set[str]) -> dict[str, dict[int, int]]:
    """Clips per gloss and per category, counting rows whose clip file exists."""
    rows = labels.usable
    rows = rows[rows["file"].isin(present)]
    return {column: {int(k): int(n) for k, n in rows[column].value_counts().items()} for column in ("gloss", "cat")}


def _empty_classes(
    counts: dict[str, dict[int, int]], limits: dict[str, Optional[int]], labels: LabelTable
) -> list[Problem]:
    """Classes from 0 to the limit (or to the largest id seen) that have no clip.

    Counted without listing every id: one row with gloss 999999999, or `num_gloss` 2e9, must not
    make a list (or a loop) of a billion ids.
    """
    problems = []
    if labels.usable.empty:
        return problems
    for column, per_class in counts.items():
        top = limits[column] if limits[column] is not None else int(labels.usable[column].max()) + 1
        with_clips = sum(1 for c in per_class if 0 <= c < top)
        missing = top - with_clips
        if missing:
            name = "gloss" if column == "gloss" else "category"
            problems.append(
                Problem(
                    "empty_class",
                    labels.path.name,
                    f"{missing} {name} id(s) of 0..{top - 1} have no clips: {_id_list(_first_missing(per_class, top), missing)}",
                )
            )
    return problems


def _first_missing(present: dict[int, int], top: int, limit: int = 20) -> list[int]:
    """The first `limit` ids of 0..top-1 not in `present`: at most len(present) + limit steps."""
    found: list[int] = []
    candidate = 0
    while candidate < top and len(found) < limit:
        if candidate not in present:
            found.append(candidate)
        candidate += 1
    return found


def _id_list(ids: list[int], total: int) -> str:
    shown = ", ".join(str(i) for i in ids)
    return shown + (f", ... ({total - len(ids)} more)" if total > len(ids) else "")


def check_training_data(
    directory: Path,
    labels_csv: Optional[Path],
    *,
    key: str,
    fallback_key: Optional[str] = None,
    require_dim: Optional[int] = None,
    num_gloss: Optional[int],
    num_cat: Optional[int],
    max_zero_frames: float = 0.5,
    keep_clips: bool = True,
    validate_hint: Optional[str] = None,
    limits: Optional[ClipLimits] = None,
    role: str = "the training data",
) -> ValidationReport:
    """Run the `slr validate` checks for training; raise `DataError` with a short summary on errors.

    ``role`` names the directory in that summary ("the validation data (--keypoints-val)").

    Warnings stay in the returned report for the caller to show. With `keep_clips` the report's
    `clips` feed `ClipDataset(..., preloaded=report.clips)`, so every file is read once.
    ``validate_hint`` is the `slr validate ...` command the summary suggests (with the run's flags
    that change the checks); by default one built from the directory and labels file alone.
    """
    spec = ArraySpec(key, fallback_key, require_dim)
    report = validate_directory(
        directory,
        labels_csv,
        specs=[spec],
        num_gloss=num_gloss,
        num_cat=num_cat,
        max_zero_frames=max_zero_frames,
        keep_clips=keep_clips,
        limits=limits,
    )
    if report.errors:
        raise DataError(_error_summary(report, validate_hint, role), directory)
    return report


def _error_summary(report: ValidationReport, hint: Optional[str] = None, role: str = "the training data") -> str:
    lines = [f"{len(report.errors)} problem(s) in {role}:"]
    for kind, found in group_by_kind(report.errors).items():
        files = ", ".join(p.file for p in found[:_FILES_NAMED_PER_KIND])
        more = f", ... ({len(found) - _FILES_NAMED_PER_KIND} more)" if len(found) > _FILES_NAMED_PER_KIND else ""
        lines.append(f"  {KINDS[kind].title}: {len(found)} ({files}{more}); e.g. {found[0].message}")
    if hint is None:
        args = [shlex.quote(str(report.directory))]
        if report.labels_csv != report.directory / "labels.csv":
            args.append(setting("labels_csv", shlex.quote(str(report.labels_csv))))
        hint = command("validate", *args)
    lines.append(f"run {hint} for the full report")
    return "\n".join(lines)


def validation_specs(
    kp_key: str,
    feature_key: str,
    *,
    kp_dim: Optional[int] = None,
    feature_dim: Optional[int] = None,
    require_features: bool = False,
) -> list[ArraySpec]:
    """What `slr validate` checks: the keypoints, or with --require-x2048 the features first.

    With --require-x2048 every clip must carry the feature key (no fallback); the keypoint key is
    then checked only where a clip has it, since feature-only directories are normal for iv3_gru.
    """
    keypoints = ArraySpec(kp_key, width=kp_dim, required=not require_features)
    if not require_features:
        return [keypoints]
    features = ArraySpec(feature_key, width=feature_dim or DEFAULT_FEATURE_DIM)
    # the features of mirrored frames (slr extract), checked where a clip has them
    mirrored = ArraySpec(feature_key + MIRROR_SUFFIX, width=feature_dim or DEFAULT_FEATURE_DIM, required=False)
    return [features, mirrored] if feature_key == kp_key else [features, mirrored, keypoints]


def run_validate(settings: ValidateSettings) -> ValidationReport:
    """`slr validate`: every problem of every clip; the caller shows the report (errors mean exit 1)."""
    if settings.labels_csv is not None and not Path(settings.labels_csv).is_file():
        # A path typed on the command line that is not a file is a usage error, not a data one.
        what = describe_non_file(Path(settings.labels_csv))
        message = "labels file not found" if what == "not found" else f"is {what}, not a CSV file"
        raise DataError(f"{message} ({setting('labels_csv')})", settings.labels_csv)
    report = validate_directory(
        settings.directory,
        settings.labels_csv,
        specs=validation_specs(
            settings.kp_key,
            settings.feature_key,
            kp_dim=settings.kp_dim,
            feature_dim=settings.feature_dim,
            require_features=settings.require_x2048,
        ),
        num_gloss=settings.num_gloss,
        num_cat=settings.num_cat,
        max_zero_frames=settings.max_zero_frames,
        limits=clip_limits(settings),
        check_split_groups=True,
        group_by=settings.group_by,
    )
    width = report.widths.get(settings.kp_key)
    if width:  # keypoints: the layout training will read them with (slr/data/layout_choice.py)
        from slr.data.layout_choice import check_fits, choose_layout, describe, loss_notice

        choice = choose_layout(settings.directory, settings.keypoint_layout)
        check_fits(choice, width)
        report.layout, report.layout_notice = describe(choice, width), loss_notice(choice, width)
    return report
