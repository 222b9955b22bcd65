"""`slr import`: find the sequences, check the output folder's tables, import in worker processes.

Every sequence is read and written in a worker process (slr/extract/pool.py: a file that crashes
its reader is a failed file, not the end of the import); a clip already complete from the same
source and settings is skipped, so an interrupted import of 94,000 GISLR files goes on where it
stopped. Memory stays flat: a worker holds one sequence at a time and the parent only small
outcomes. The library never prints: it tells an `ImportObserver` and returns an `ImportResult`.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from slr.errors import ConfigError, DataError, SlrError, setting
from slr.importers import gislr, mediapipe_npy, openpose_json, pose_file
from slr.importers.naming import named_sequence, shortest_names
from slr.importers.output import (CLASSES, LABELS, LAYOUT, Table, check_categories, check_layout, class_ids,
                                  clip_arrays, clip_meta, gloss_categories, is_complete, merged_classes,
                                  merged_labels, read_existing, write_clip, write_layout, write_table)
from slr.importers.points import KeptPoints, kept_points, parse_parts
from slr.importers.sequence import BadSource, SourceSequence
from slr.settings import ImportSettings

FORMATS = ("gislr", "pose", "openpose", "mediapipe-npy")
_SUFFIXES = {".parquet": "gislr", ".pose": "pose", ".json": "openpose", ".npy": "mediapipe-npy"}


class ImportObserver(Protocol):
    def start(self, sequences: int, skipped: int) -> None: ...
    def done(self, outcome: "ImportOutcome") -> None: ...
    def finish(self) -> None: ...


class NoObserver:
    def start(self, sequences: int, skipped: int) -> None:
        pass

    def done(self, outcome: "ImportOutcome") -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class ImportOutcome:
    source: Path
    clip: Path
    status: str  # written, skipped (complete already), failed
    frames: int = 0
    found: dict[str, float] = field(default_factory=dict)  # part -> share of frames it was found in
    error: Optional[str] = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    output_dir: Path
    format: str
    layout: dict[str, Any]
    # Only the outcomes worth showing (failed, or with warnings), and counts of the rest: the parent's
    # memory stays flat over 94,000 files (benchmarks/import_speed.py --memory).
    outcomes: list[ImportOutcome] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"written": 0, "skipped": 0, "failed": 0})
    imported: set[str] = field(default_factory=set)  # clip names written or complete already
    problems: list[tuple[Path, str]] = field(default_factory=list)  # found, but not a sequence to import
    notices: list[str] = field(default_factory=list)
    labels_csv: Optional[Path] = None
    classes_csv: Optional[Path] = None
    layout_json: Optional[Path] = None
    classes: int = 0
    new_classes: list[str] = field(default_factory=list)
    labelled: int = 0
    unlabelled: list[str] = field(default_factory=list)  # clips whose sign the source does not give
    group_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1

    def add(self, outcome: ImportOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.status == "failed" or outcome.warnings:
            self.outcomes.append(outcome)
        if outcome.status != "failed":
            self.imported.add(outcome.clip.stem)

    @property
    def failed(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def written(self) -> int:
        return self.counts["written"]

    @property
    def skipped(self) -> int:
        return self.counts["skipped"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems


@dataclass(frozen=True)
class ReadOptions:
    """What a worker needs to read one sequence and write its clip."""

    format: str
    kept: KeptPoints
    wanted: dict[str, Any]  # the import settings a complete clip's meta must carry
    frame_size: Optional[tuple[int, int]] = None


# -- the formats -----------------------------------------------------------------------------------


def detect_format(sources: list[Path]) -> str:
    """The one format whose files the sources hold; a ConfigError when none or several."""
    seen: set[str] = set()
    for source in sources:
        if source.is_file():
            kind = _SUFFIXES.get(source.suffix.lower())
            if source.suffix.lower() == ".csv":
                kind = "gislr"
            if kind:
                seen.add(kind)
            continue
        for _, _, files in os.walk(source):
            for name in files:
                kind = _SUFFIXES.get(Path(name).suffix.lower())
                if kind == "openpose" and not name.endswith("_keypoints.json"):
                    kind = None
                if kind:
                    seen.add(kind)
            if seen:
                break
    if len(seen) == 1:
        return seen.pop()
    if not seen:
        raise ConfigError("no landmark files found in the sources (.parquet, .pose, *_keypoints.json, .npy); name "
                          f"the format: {', '.join(FORMATS)}")
    raise ConfigError(f"the sources hold files of several formats ({', '.join(sorted(seen))}); import one format at "
                      f"a time, naming it")


def _family(fmt: str, sequences: list[SourceSequence]) -> str:
    if fmt == "openpose":
        return "openpose"
    if fmt == "pose":  # the first readable file decides; files of the other family are refused by name
        for sequence in sequences:
            try:
                header, _ = pose_file.read_header(sequence.path)
                return pose_file.family_of(header, sequence.path)
            except BadSource:
                continue
    return "holistic"


def find_sequences(fmt: str, settings: ImportSettings) -> tuple[list[SourceSequence], list[tuple[Path, str]],
                                                                  list[str]]:
    """The sequences in the sources, the things found that are not importable, and notices."""
    sources = [Path(s) for s in settings.sources]
    pattern = None
    if settings.name_pattern is not None:
        from slr.extract.labels import compile_pattern

        pattern = compile_pattern(settings.name_pattern)
    notices: list[str] = []
    if fmt == "gislr":
        train_csv = gislr.find_train_csv(sources, settings.gislr_csv)
        notices.append(f"signs and signers from {train_csv}" if train_csv else
                       "no GISLR train.csv found beside or above the sources: clips are imported without signs "
                       f"({setting('gislr_csv')} names one)")
        return gislr.find_sequences(sources, train_csv), [], notices
    if fmt == "mediapipe-npy":
        found, problems = mediapipe_npy.find_sequences(sources)
        return found, problems, notices
    found = []
    for source in sources:
        root = source if source.is_dir() else source.parent
        if fmt == "pose":
            items = sorted(source.rglob("*.pose")) if source.is_dir() else [source]
            found += [named_sequence(item, root, pattern) for item in items]
        else:
            found += [named_sequence(folder, root, pattern, video)
                      for folder, video in openpose_json.sequence_folders([source])]
    return shortest_names(found), [], notices


# -- one sequence (in a worker) ---------------------------------------------------------------------


def import_one(sequence: SourceSequence, target: Path, options: ReadOptions, on_frames=None) -> ImportOutcome:
    source = str(sequence.path.resolve()) + (f"#{sequence.video}" if sequence.video else "")
    try:
        if options.format == "gislr":
            read = gislr.read_parquet(sequence.path)
        elif options.format == "mediapipe-npy":
            read = mediapipe_npy.read_sequence(sequence.path)
        elif options.format == "pose":
            read = pose_file.read_pose(sequence.path, options.kept.family)
        else:
            read = openpose_json.read_folder(sequence.path, tuple(options.kept.parts), options.frame_size,
                                             sequence.video)
        meta = clip_meta(source, options.format, read, options.kept, options.wanted)
        write_clip(target, clip_arrays(read, options.kept, meta))
    except SlrError as exc:
        return ImportOutcome(sequence.path, target, "failed", error=str(exc))
    except OSError as exc:
        return ImportOutcome(sequence.path, target, "failed",
                             error=f"{exc.filename or sequence.path}: {exc.strerror or exc}")
    except Exception as exc:  # a reader's surprise: this sequence fails, the others go on
        return ImportOutcome(sequence.path, target, "failed", error=f"{sequence.path}: {type(exc).__name__}: {exc}")
    found = {k: v for k, v in read.found_share().items() if k in options.kept.parts}
    return ImportOutcome(sequence.path, target, "written", read.frames, found, warnings=read.warnings)


class Chunk(list):
    """Sequences handed to a worker at once: one at a time, each worker waited for the parent between
    two sequences, and on a busy machine that wait cost more than reading a GISLR file (0.26x the bare
    read with one per job, benchmarks/import_speed.py). `name` is for slr.extract.pool's messages."""

    @property
    def name(self) -> str:
        return f"{self[0][0].path.name} (+{len(self) - 1} more)" if len(self) > 1 else self[0][0].path.name


def import_chunk(chunk: Chunk, _: None, options: ReadOptions, task=None, on_frames=None) -> list[ImportOutcome]:
    return [(task or import_one)(sequence, target, options, on_frames) for sequence, target in chunk]


def _chunk_size(sequences: int, workers: int) -> int:
    """Up to 32 sequences per job, and at least four jobs per worker, so that the work stays spread."""
    return max(1, min(32, sequences // (4 * workers)))


def _in_workers(todo: list, options: ReadOptions, workers: int, observer, result: "ImportResult",
                size: Optional[int] = None, task: Optional[Callable[..., ImportOutcome]] = None) -> None:
    """Every sequence of `todo` through the worker processes; the sequences of a chunk whose process
    died are tried again one per process, so that a death names its file."""
    from slr.extract.pool import Died, run_jobs

    size = size or _chunk_size(len(todo), workers)
    chunks = [(Chunk(todo[i:i + size]), None) for i in range(0, len(todo), size)]
    again = []
    for (chunk, _), outcomes in run_jobs(chunks, functools.partial(import_chunk, options=options, task=task), _init_worker,
                                       workers, lambda n: None):
        if isinstance(outcomes, Died):
            if len(chunk) > 1:
                again += list(chunk)
                continue
            sequence, target = chunk[0]
            outcomes = [ImportOutcome(sequence.path, target, "failed", error=(
                f"{sequence.path}: the import process died while reading it ({outcomes.describe()}); the other "
                f"sequences went on"))]
        for outcome in outcomes:
            result.add(outcome)
            observer.done(outcome)
    if again:  # one sequence per job now: a second death names its file
        _in_workers(again, options, workers, observer, result, size=1, task=task)


def _init_worker(threads: int) -> None:
    """Nothing to prepare: readers are imported on first use, and each reads on one thread (one
    process per CPU already)."""


def default_workers(sequences: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, sequences))


# -- the whole import -------------------------------------------------------------------------------


def run_import(settings: ImportSettings, observer: Optional[ImportObserver] = None,
               task: Optional[Callable[..., ImportOutcome]] = None) -> ImportResult:
    """`task` replaces `import_one` in the workers (tests make it kill its process)."""
    observer = observer or NoObserver()
    started = time.perf_counter()
    sources = [Path(s) for s in settings.sources]
    if not sources:
        raise ConfigError("give at least one SRC (a file or folder of landmark files)")
    for source in sources:
        if not source.exists():
            raise DataError("source not found", source)
    output_dir = Path(settings.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError("the output folder is a file", output_dir)
    fmt = detect_format(sources) if settings.format == "auto" else settings.format
    if fmt == "gislr":  # a missing library is one error now, not one per file
        gislr.require_pyarrow()
    elif fmt == "pose":
        pose_file.require_pose_format()
    sequences, problems, notices = find_sequences(fmt, settings)
    if not sequences:
        found = "; ".join(f"{p}: {why}" for p, why in problems)
        raise DataError(f"no {fmt} sequences found in {', '.join(map(str, sources))}" + (f" ({found})" if found else ""))
    kept = kept_points(_family(fmt, sequences), parse_parts(settings.parts), settings.dims)
    declared = kept.declaration()
    frame_size = tuple(int(v) for v in settings.frame_size.split("x")) if settings.frame_size else None
    wanted = {"format": fmt, "parts": kept.parts, "dims": kept.dims, "frame_size": settings.frame_size}
    result = ImportResult(output_dir, fmt, declared, problems=list(problems), notices=notices)

    # The tables first: a folder whose labels or layout cannot take this import is refused before any work.
    sequences = _distinct_clips(sequences, result)
    labels = read_existing(output_dir / LABELS, ("file",))
    classes = read_existing(output_dir / CLASSES, ("gloss", "name"))
    has_layout = check_layout(output_dir / LAYOUT, declared)
    signs = {s.sign for s in sequences if s.sign}
    check_categories(labels, classes, signs)
    if frame_size is None and fmt == "openpose":
        result.notices.append(f"OpenPose files do not give the frame size: x and y stay in pixels "
                              f"({setting('frame_size')} WxH divides them by it)")

    todo = []
    for sequence in sequences:
        target = output_dir / f"{sequence.clip}.npz"
        source = str(sequence.path.resolve()) + (f"#{sequence.video}" if sequence.video else "")
        if not settings.overwrite and is_complete(target, source, wanted):
            result.add(ImportOutcome(sequence.path, target, "skipped"))
        else:
            todo.append((sequence, target))
    output_dir.mkdir(parents=True, exist_ok=True)
    from slr.extract.writer import remove_stale_temporaries

    remove_stale_temporaries(output_dir)
    observer.start(len(todo), result.skipped)
    result.workers = min(settings.workers or default_workers(len(todo)), max(1, len(todo)))
    options = ReadOptions(fmt, kept, wanted, frame_size)
    if todo:
        _in_workers(todo, options, result.workers, observer, result, task=task)

    _write_tables(result, sequences, labels, classes, signs, declared, has_layout)
    result.seconds = time.perf_counter() - started
    return result


def _distinct_clips(sequences: list[SourceSequence], result: ImportResult) -> list[SourceSequence]:
    """One source per clip name; a second source that would overwrite a first is a problem."""
    seen: dict[str, Path] = {}
    kept = []
    for sequence in sequences:
        key = sequence.clip.casefold()  # one file on case-insensitive file systems
        if key in seen:
            result.problems.append((sequence.path, f"would be written to the same clip {sequence.clip}.npz as "
                                                   f"{seen[key]}; import it into another folder"))
            continue
        seen[key] = sequence.path
        kept.append(sequence)
    return kept


def _write_tables(result: ImportResult, sequences: list[SourceSequence], labels: Table, classes: Table,
                  signs: set[str], declared: dict[str, Any], has_layout: bool) -> None:
    output_dir = result.output_dir
    imported = result.imported
    if not imported:
        return
    if not has_layout:
        write_layout(output_dir / LAYOUT, declared)
    result.layout_json = output_dir / LAYOUT
    used = {s.sign for s in sequences if s.sign and s.clip in imported}
    ids, new = class_ids(classes, used)
    rows: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    for sequence in sequences:
        if sequence.clip not in imported:
            continue
        if not sequence.sign:
            result.unlabelled.append(sequence.clip)
            continue
        rows[sequence.clip] = {"file": sequence.clip, "gloss": str(ids[sequence.sign]), **dict(sequence.groups)}
        names[sequence.clip] = sequence.sign
    result.group_columns = sorted({c for row in rows.values() for c in row} - {"file", "gloss"})
    if new or not classes.exists:
        if ids:
            write_table(merged_classes(classes, ids, new))
    if ids:
        result.classes_csv = output_dir / CLASSES
    result.classes, result.new_classes = len(ids), new
    if rows:
        write_table(merged_labels(labels, rows, gloss_categories(classes), names))
        result.labels_csv = output_dir / LABELS
    result.labelled = len(rows)


