"""`slr compare`: two or more checkpoints on the same labelled recordings, side by side.

Each checkpoint reads the clips of its kind (a transformer the keypoint clips, an iv3_gru the
feature clips); keypoint and feature clips of one recording share a file name, and the labels
CSV names them, so the clips are matched by that name. Only clips every checkpoint can read are
compared (paired numbers on different clips would compare the clips, not the models); the
others are named in the result.

Everything measured is evaluation's own code (`score_clips`, `TaskMetrics`), so a checkpoint's
column equals what `slr evaluate` reports for it on the same clips. On top of that:

- McNemar's exact test on the paired top-1 answers (`slr.analysis.stats`), per pair of runs;
- the classes whose accuracy differs most between the runs;
- the runs' training curves overlaid in one PNG, from each run's log.

Output directory (default: `comparison/` beside the first checkpoint): `comparison.json`
(the result, as printed with JSON output), `per_class.csv` (gloss accuracy per class and run),
`curves.png` (when at least one run's log is found).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from slr.analysis.metrics import TaskMetrics
from slr.atomic import write_atomically
from slr.errors import CheckpointError, ConfigError, DataError, setting
from slr.engine.run_folder import COMPARISON_DIR, COMPARISON_FILES
from slr.output_paths import check_output_dir, clashing_input
from slr.settings import CompareSettings

if TYPE_CHECKING:
    import pandas as pd

    from slr.analysis.inference import LoadedModel

OUTPUT_FILES = COMPARISON_FILES  # named with the run's other files: a new run moves them to earlier/
#: Significance level named in the plain-language reading of a p-value.
ALPHA = 0.05
#: Clip names shown per directory in a notice (all of them are in comparison.json).
NAMES_SHOWN = 10
_TASK_LABEL = {"gloss": "gloss", "cat": "category"}


@dataclass
class RunResult:
    """One checkpoint's numbers on the compared clips."""

    label: str  # "A", "B", ...: how the run is named in tables, tests and the curves
    checkpoint: Path
    model: str
    model_class: str
    directory: Path
    gloss: TaskMetrics
    cat: TaskMetrics
    log_csv: Optional[Path] = None  # None: no usable log found (see Comparison.notices)

    @property
    def title(self) -> str:
        return f"{self.label}: {self.model_class} ({self.checkpoint.parent})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "checkpoint": str(self.checkpoint),
            "model": self.model,
            "model_class": self.model_class,
            "directory": str(self.directory),
            "log_csv": str(self.log_csv) if self.log_csv else None,
            "gloss": {k: getattr(self.gloss, k) for k in ("top1", "top5", "top5_k", "macro_f1", "classes_in_f1")},
            "cat": {"top1": self.cat.top1, "macro_f1": self.cat.macro_f1},
        }


@dataclass
class PairedTest:
    """McNemar's exact test of two runs on one head: only the clips where exactly one is right count."""

    first: str
    second: str
    task: str  # "gloss" or "cat"
    both_right: int
    only_first: int  # b
    only_second: int  # c
    both_wrong: int
    p_value: float

    @property
    def meaning(self) -> str:
        """One line on what the p-value says, in words."""
        b, c = self.only_first, self.only_second
        if b + c == 0:
            return (f"{self.first} and {self.second} are right on exactly the same clips: nothing here tells "
                    "them apart (p = 1)")
        verdict = (f"so the difference is unlikely to be chance (p < {ALPHA})" if self.p_value < ALPHA
                   else f"so it may well be chance (p >= {ALPHA})")
        return (f"of the {b + c} clips only one of them gets right, {self.first} gets {b} and {self.second} {c}; "
                f"if both were equally accurate, a split at least this uneven would happen with probability "
                f"{self.p_value:.3g}, {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first, "second": self.second, "task": self.task,
            "both_right": self.both_right, "only_first": self.only_first, "only_second": self.only_second,
            "both_wrong": self.both_wrong, "p_value": self.p_value, "meaning": self.meaning,
        }


@dataclass
class ClassDifference:
    """A gloss class's accuracy in each run, and the spread between the best and the worst run."""

    id: int
    name: str
    clips: int
    accuracy: list[float]  # per run, in run order
    spread: float  # max - min; with two runs, |B - A|

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "clips": self.clips, "accuracy": self.accuracy,
                "spread": self.spread}


@dataclass
class Comparison:
    runs: list[RunResult]
    labels_csv: Path
    clips: int  # the clips every run was measured on
    labelled: int  # the rows of the labels CSV
    missing: dict[str, list[str]]  # directory -> labelled clips not in it (left out of the comparison)
    tests: list[PairedTest]
    differing: list[ClassDifference]
    notices: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from slr.analysis.evaluate import _finite

        return _finite({
            "labels_csv": str(self.labels_csv),
            "clips": self.clips,
            "labelled_clips": self.labelled,
            "missing": self.missing,
            "runs": [r.to_dict() for r in self.runs],
            "mcnemar": [t.to_dict() for t in self.tests],
            "differing_classes": [d.to_dict() for d in self.differing],
            "notices": self.notices,
            "files": {k: str(v) for k, v in self.files.items()},
        })


def compare(settings: CompareSettings) -> Comparison:
    """Measure every checkpoint on the clips they all can read; write the comparison files."""
    from slr.analysis.evaluate import score_clips
    from slr.analysis.inference import load_model, pick_device
    from slr.data.labels import read_labels

    checkpoints = [Path(c) for c in settings.checkpoints]
    labels_csv = Path(settings.labels_csv) if settings.labels_csv else _first_dir(settings) / "labels.csv"
    output_dir = Path(settings.output_dir) if settings.output_dir else checkpoints[0].parent / COMPARISON_DIR
    check_output_dir(output_dir, setting("output_dir"))
    clash = clashing_input([output_dir / name for name in OUTPUT_FILES], [*checkpoints, labels_csv, settings.classes])
    if clash:
        raise ConfigError(f"{setting('output_dir')} {output_dir}: its {clash[0].name} would replace the input {clash[1]}")

    device = pick_device(settings.device)
    loaded = [load_model(path, device) for path in checkpoints]
    directories = [_directory_for(model, settings) for model in loaded]
    check_same_classes(loaded)

    rows = read_labels(labels_csv)
    names = list(rows["file"])
    common, missing = match_clips(names, sorted(set(directories), key=directories.index), labels_csv)
    notices = [_missing_notice(directory, absent, len(names), len(common)) for directory, absent in missing.items()
               if absent]

    runs: list[RunResult] = []
    scored = []
    for i, (model, directory) in enumerate(zip(loaded, directories)):
        result = score_clips(model, directory, labels_csv, classes=settings.classes, batch_size=settings.batch_size,
                             only=common)
        gloss, cat = result.task_metrics(0)
        scored.append(result)
        runs.append(RunResult(_label(i), model.path, model.name, model.model_class, directory, gloss, cat))
    # score_clips keeps labels order, so the rows line up clip for clip; the paired test needs that.
    if any(s.clips != scored[0].clips for s in scored):
        raise RuntimeError("the runs were scored on different clips")

    comparison = Comparison(
        runs=runs,
        labels_csv=labels_csv,
        clips=scored[0].count,
        labelled=len(names),
        missing={str(d): absent for d, absent in missing.items()},
        tests=paired_tests(runs, scored),
        # Classes every run gets equally right say nothing about the difference: left out.
        differing=[d for d in differing_classes(runs) if d.spread > 0][: settings.differing_classes],
        notices=notices,
    )
    for run, model in zip(runs, loaded):
        run.log_csv, why = find_log(model)
        if run.log_csv is None:
            comparison.notices.append(f"{run.label} ({run.checkpoint}): {why}; left out of the training curves")
    write_outputs(comparison, output_dir, differing_classes(runs))
    return comparison


def _first_dir(settings: CompareSettings) -> Path:
    return Path(settings.keypoints if settings.keypoints is not None else settings.features)  # type: ignore[arg-type]


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


def _directory_for(model: "LoadedModel", settings: CompareSettings) -> Path:
    directory = settings.keypoints if model.input_kind == "keypoints" else settings.features
    if directory is None:
        noun = model.model_class
        article = "an" if noun[:1].lower() in "aeiou" else "a"
        raise ConfigError(
            f"{model.path} holds {article} {noun} ({model.name}) model, which reads {model.input_kind}: "
            f"give its clips with {setting(model.input_kind)} DIR"
        )
    return Path(directory)


def check_same_classes(loaded: Sequence["LoadedModel"]) -> None:
    """`CheckpointError` unless every checkpoint has the first one's class counts and class names.

    Names are compared where both checkpoints store one for an id; an id only one of them names
    is no contradiction (names may have come from clip file names)."""
    from slr.analysis.classes import from_checkpoint

    first = loaded[0]
    first_names = from_checkpoint(first.state)
    for other in loaded[1:]:
        for task, a, b in (("gloss", first.num_gloss, other.num_gloss), ("cat", first.num_cat, other.num_cat)):
            if a != b:
                raise CheckpointError(
                    f"cannot be compared with {first.path}: it has {b} {_TASK_LABEL[task]} classes, "
                    f"{first.path.name} has {a}", other.path
                )
        names = from_checkpoint(other.state)
        for task in ("gloss", "cat"):
            ours, theirs = getattr(first_names, task), getattr(names, task)
            clashes = [i for i in sorted(set(ours) & set(theirs)) if ours[i] != theirs[i]]
            if clashes:
                i = clashes[0]
                more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
                raise CheckpointError(
                    f"cannot be compared with {first.path}: their {_TASK_LABEL[task]} classes differ: "
                    f"{task} {i} is {theirs[i]!r} here but {ours[i]!r} in {first.path.name}{more}", other.path
                )


def match_clips(names: Sequence[str], directories: Sequence[Path], labels_csv: Path) -> tuple[list[str], dict[Path, list[str]]]:
    """The labelled clip names present in every directory (labels order), and per directory the
    labelled names it lacks. `DataError` when no labelled clip is in all of them."""
    from slr.data.clips import clip_stem, scan_clip_dir

    present = {}
    for directory in directories:
        if not directory.is_dir():
            raise DataError("clip directory not found", directory)
        present[directory] = {clip_stem(p.name) for p in scan_clip_dir(directory).files}
    missing = {d: [n for n in names if n not in present[d]] for d in directories}
    common = [n for n in names if all(n in present[d] for d in directories)]
    if not common:
        where = " and ".join(str(d) for d in directories)
        raise DataError(
            f"none of its {len(names)} clips is in {where}: keypoint and feature clips of one recording must "
            "have the same file name", labels_csv
        )
    return common, missing


def _missing_notice(directory: Path, absent: list[str], labelled: int, compared: int) -> str:
    shown = ", ".join(f"{n}.npz" for n in absent[:NAMES_SHOWN])
    more = f" and {len(absent) - NAMES_SHOWN} more" if len(absent) > NAMES_SHOWN else ""
    return (f"{len(absent)} of {labelled} labelled clips are not in {directory} ({shown}{more}); "
            f"compared on the {compared} clips every checkpoint can read")


def paired_tests(runs: Sequence[RunResult], scored: Sequence[Any]) -> list[PairedTest]:
    """McNemar's exact test for every pair of runs, on the gloss and the category head."""
    from slr.analysis.stats import mcnemar_exact

    tests = []
    correct = [
        {"gloss": s.gloss_probs.argmax(axis=1) == s.gloss, "cat": s.cat_probs.argmax(axis=1) == s.cat} for s in scored
    ]
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            for task in ("gloss", "cat"):
                if task == "cat" and runs[i].cat.single_class:  # one category: both always right
                    continue
                x, y = correct[i][task], correct[j][task]
                b, c = int((x & ~y).sum()), int((~x & y).sum())
                tests.append(PairedTest(runs[i].label, runs[j].label, task, int((x & y).sum()), b, c,
                                        int((~x & ~y).sum()), mcnemar_exact(b, c)))
    return tests


def differing_classes(runs: Sequence[RunResult]) -> list[ClassDifference]:
    """Every gloss class with clips, largest accuracy spread between the runs first (ties: lower id)."""
    first = runs[0].gloss.classes
    differences = []
    for k, cls in enumerate(first):
        if not cls.support:
            continue
        accuracy = [float(r.gloss.classes[k].recall) for r in runs]
        differences.append(ClassDifference(cls.id, cls.name, cls.support, accuracy, max(accuracy) - min(accuracy)))
    return sorted(differences, key=lambda d: (-d.spread, d.id))


def find_log(model: "LoadedModel") -> tuple[Optional[Path], str]:
    """The run's training log: log.csv beside the checkpoint, else the log path stored in its
    settings (relative paths: as the run's output directory moved with the checkpoint, then as
    given). (path, "") when one is found and readable; (None, why not) otherwise."""
    from slr.analysis.plots import read_log

    checkpoint = model.path
    candidates = [checkpoint.parent / "log.csv"]
    stored = model.settings.log_csv
    if stored is not None:
        stored = Path(stored)
        if not stored.is_absolute():
            try:
                candidates.append(checkpoint.parent / stored.relative_to(model.settings.output_dir))
            except ValueError:
                pass
        candidates.append(stored)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return None, f"no training log found (looked for {', '.join(str(c) for c in candidates)})"
    try:
        read_log(found)
    except DataError as exc:
        return None, f"its log cannot be drawn ({exc})"
    return found, ""


def write_outputs(comparison: Comparison, output_dir: Path, all_classes: Sequence[ClassDifference]) -> None:
    import pandas as pd

    from slr.analysis.plots import plot_runs, read_log

    files = comparison.files
    runs = comparison.runs
    table = pd.DataFrame(
        [{"id": d.id, "name": d.name, "clips": d.clips, **{f"accuracy_{r.label}": a for r, a in zip(runs, d.accuracy)},
          "spread": d.spread} for d in sorted(all_classes, key=lambda d: d.id)],
        columns=["id", "name", "clips", *[f"accuracy_{r.label}" for r in runs], "spread"],
    )
    files["per_class_csv"] = path = output_dir / "per_class.csv"
    _write_text(path, table.to_csv(index=False))
    logged = [(r.title, read_log(r.log_csv)) for r in runs if r.log_csv is not None]
    if logged:
        files["curves_png"] = plot_runs(logged, output_dir / "curves.png", "training curves")
    files["comparison_json"] = path = output_dir / "comparison.json"
    _write_text(path, json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))
