"""`slr evaluate`: a checkpoint on a labelled clip directory, with reports written to disk.

Output directory (default: `evaluation/` beside the checkpoint):

- `metrics.json`: everything printed, plus per-class results of both heads;
- `predictions.csv`: one row per clip (true and predicted ids and names, probabilities, and the
  labels' extra columns);
- `confusion_gloss.csv`, `confusion_cat.csv`: counts, rows = true class, columns = predicted;
- `confusion_gloss.png`, `confusion_cat.png`: the same, coloured by share of each true class
  (only the most confused classes when asked: `slr.analysis.confusion_plot`);
- `per_group.csv`: accuracy per value of a labels column, when grouping is asked for.

`score_clips` (a checkpoint's probabilities on labelled clips) is shared with `slr compare`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Optional

import numpy as np

from slr.analysis.classes import ClassNames, resolve_class_names
from slr.analysis.metrics import TaskMetrics, task_metrics
from slr.output_paths import check_output_dir, clashing_input
from slr.atomic import removed_on_failure, write_atomically
from slr.engine.run_folder import EVALUATION_DIR, EVALUATION_FILES, EVALUATION_GROUP_FILE
from slr.errors import ConfigError, DataError, setting
from slr.settings import EvaluateSettings

if TYPE_CHECKING:
    import pandas as pd

    from slr.analysis.groups import GroupResult
    from slr.analysis.sanity import SanitySummary
    from slr.analysis.inference import LoadedModel

#: What `write_outputs` writes into the output directory (named with the run's other files: a new
#: run into the checkpoint's folder moves them to earlier/).
OUTPUT_FILES = EVALUATION_FILES
#: Written as well when results are split by a labels column.
GROUP_FILE = EVALUATION_GROUP_FILE


@dataclass
class EvaluationReport:
    checkpoint: Path
    model: str
    model_class: str
    directory: Path
    labels_csv: Path
    clips: int
    gloss: TaskMetrics
    cat: TaskMetrics
    names: ClassNames
    files: dict[str, Path] = field(default_factory=dict)
    group_by: Optional[str] = None  # the labels column the clips were split by, if any
    groups: list["GroupResult"] = field(default_factory=list)
    sanity: Optional["SanitySummary"] = None  # no hand found, uncertain answers, disagreeing heads
    ensemble: list[Path] = field(default_factory=list)  # every member, when probabilities were averaged

    def to_dict(self) -> dict[str, Any]:
        groups = {"group_by": self.group_by, "groups": [g.to_dict() for g in self.groups]} if self.group_by else {}
        ensemble = {"ensemble": [str(p) for p in self.ensemble]} if self.ensemble else {}
        return _finite(
            {
                "checkpoint": str(self.checkpoint),
                **ensemble,
                "model": self.model,
                "model_class": self.model_class,
                "directory": str(self.directory),
                "labels_csv": str(self.labels_csv),
                "clips": self.clips,
                "gloss": self.gloss.to_dict(),
                "cat": self.cat.to_dict(),
                **groups,
                **({"sanity": self.sanity.to_dict()} if self.sanity is not None else {}),
                "files": {k: str(v) for k, v in self.files.items()},
            }
        )


def _finite(value: Any) -> Any:
    """NaN (a metric with nothing to measure) as JSON null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def evaluate(settings: EvaluateSettings) -> EvaluationReport:
    """Run the checkpoint over the directory, compute the metrics and write the report files."""
    from slr.analysis.ensemble import load_models
    from slr.analysis.groups import check_group_column, group_results
    from slr.analysis.inference import pick_device
    from slr.analysis.sanity import summarise_scored
    from slr.data.clip_limits import clip_limits

    directory = Path(settings.directory)
    labels_csv = Path(settings.labels_csv) if settings.labels_csv else directory / "labels.csv"
    checkpoints = [Path(settings.checkpoint), *settings.ensemble]
    output_dir = Path(settings.output_dir) if settings.output_dir else default_output_dir(checkpoints)
    check_output_dir(output_dir, setting("output_dir"))
    inputs = [*checkpoints, labels_csv, settings.classes]
    outputs = OUTPUT_FILES + ((GROUP_FILE,) if settings.group_by else ())
    clash = clashing_input([output_dir / name for name in outputs], inputs)
    if clash:
        raise ConfigError(f"{setting('output_dir')} {output_dir}: its {clash[0].name} would replace the input {clash[1]}")
    if settings.group_by:  # before the model is loaded: a typo costs nothing
        from slr.data.labels import read_labels

        check_group_column(read_labels(labels_csv), settings.group_by, labels_csv)
    loaded = load_models(settings.checkpoint, settings.ensemble, pick_device(settings.device))
    if settings.input_kind != loaded.input_kind:
        raise ConfigError(
            f"{settings.checkpoint} holds {_a(loaded.model_class)} ({loaded.name}) model, which reads "
            f"{loaded.input_kind}: give the clips with {setting(loaded.input_kind)} DIR"
        )
    scored = score_clips(loaded, directory, labels_csv, classes=settings.classes, batch_size=settings.batch_size,
                         limits=clip_limits(settings))
    gloss, cat = scored.task_metrics(settings.top_confusions)
    report = EvaluationReport(
        checkpoint=Path(settings.checkpoint),
        model=loaded.name,
        model_class=loaded.model_class,
        directory=directory,
        labels_csv=labels_csv,
        clips=scored.count,
        gloss=gloss,
        cat=cat,
        names=scored.names,
        group_by=settings.group_by,
        groups=group_results(scored, settings.group_by) if settings.group_by else [],
        sanity=summarise_scored(scored, settings.uncertain_below, clip_limits(settings)),
        ensemble=checkpoints if settings.ensemble else [],
    )
    with removed_on_failure(output_dir):  # a full disk leaves no half report, nor an empty folder
        write_outputs(report, output_dir, scored, settings.confusion_top)
    return report


#: The default output folder of an ensemble, in the folder that holds its members (the fold runs' parent).
ENSEMBLE_EVALUATION_DIR = "ensemble_evaluation"


def default_output_dir(checkpoints: list[Path]) -> Path:
    """evaluation/ beside one checkpoint; ensemble_evaluation/ in the folder holding an ensemble's members."""
    if len(checkpoints) == 1:
        return checkpoints[0].parent / EVALUATION_DIR
    from slr.analysis.ensemble import common_folder

    return common_folder(checkpoints) / ENSEMBLE_EVALUATION_DIR


@dataclass
class ScoredClips:
    """A checkpoint's probabilities on labelled clips: what evaluation and comparison measure."""

    loaded: "LoadedModel"
    directory: Path
    labels_csv: Path
    rows: "pd.DataFrame"  # the labels rows, in order (index 0..N-1), extra columns included
    gloss_probs: np.ndarray  # [N, num_gloss]
    cat_probs: np.ndarray  # [N, num_cat]
    names: ClassNames

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def clips(self) -> list[str]:
        return list(self.rows["file"])

    @property
    def gloss(self) -> np.ndarray:
        return self.rows["gloss"].to_numpy(dtype=np.int64)

    @property
    def cat(self) -> np.ndarray:
        return self.rows["cat"].to_numpy(dtype=np.int64)

    def task_metrics(self, top_confusions: int = 10, subset: Optional[np.ndarray] = None) -> tuple[TaskMetrics, TaskMetrics]:
        """Metrics of both heads, on every clip or on `subset` (a boolean mask or row positions)."""
        pick = slice(None) if subset is None else subset
        num_gloss, num_cat = self.gloss_probs.shape[1], self.cat_probs.shape[1]
        gloss = task_metrics("gloss", self.gloss_probs[pick], self.gloss[pick], self.names.names("gloss", num_gloss),
                             top_confusions)
        cat = task_metrics("cat", self.cat_probs[pick], self.cat[pick], self.names.names("cat", num_cat), top_confusions)
        return gloss, cat


def score_clips(
    loaded: "LoadedModel",
    directory: Path,
    labels_csv: Path,
    *,
    classes: Optional[Path] = None,
    batch_size: int = 64,
    only: Optional[Collection[str]] = None,
    limits: Optional["ClipLimits"] = None,
) -> ScoredClips:
    """Run a loaded checkpoint over the labelled clips of `directory` (those named in `only`, if given)."""
    from slr.analysis.scoring import class_probabilities
    from slr.data.dataset import ClipDataset

    if not directory.is_dir():
        raise DataError("clip directory not found", directory)
    dataset = ClipDataset(directory, labels_csv, cache=False, only=only, limits=limits, **loaded.dataset_options())
    if len(dataset) == 0:
        raise DataError("no labelled clips to evaluate", labels_csv)
    for column, ids, limit in (("gloss", dataset.gloss, loaded.num_gloss), ("cat", dataset.cat, loaded.num_cat)):
        bad = np.nonzero((ids < 0) | (ids >= limit))[0]
        if len(bad):
            i = bad[0]
            raise DataError(
                f"clip {dataset.names[i]!r} has {column} {ids[i]}, but the checkpoint knows "
                f"{column} ids 0..{limit - 1} only ({len(bad)} such clip(s))",
                labels_csv,
            )

    labels = _clip_labels(directory, dataset.names)
    gloss_scores, cat_scores = class_probabilities(loaded, dataset, batch_size, labels, directory)
    names = resolve_class_names(loaded.state, classes, dataset.names, dataset.gloss)
    return ScoredClips(
        loaded=loaded,
        directory=directory,
        labels_csv=labels_csv,
        rows=dataset.rows.reset_index(drop=True),
        gloss_probs=gloss_scores.numpy(),
        cat_probs=cat_scores.numpy(),
        names=names,
    )


def _a(noun: str) -> str:
    """"a SignTransformer", "an InceptionV3GRU"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _clip_labels(directory: Path, names: list[str]) -> list[str]:
    """The file of each labels.csv entry, to name it in messages (labels.csv may leave out `.npz`)."""
    from slr.data.clips import file_stem, list_clip_files

    files = {file_stem(p): p for p in list_clip_files(directory)}
    return [str(files.get(name, directory / f"{name}.npz")) for name in names]


def write_outputs(report: EvaluationReport, output_dir: Path, scored: ScoredClips, confusion_top: Optional[int] = None) -> None:
    import pandas as pd

    from slr.analysis.confusion_plot import plot_confusion

    files = report.files
    names = report.names
    for metrics in (report.gloss, report.cat):
        labels = [c.name for c in metrics.classes]
        table = pd.DataFrame(metrics.confusion, index=labels, columns=labels)
        table.index.name = "true \\ predicted"
        files[f"confusion_{metrics.task}_csv"] = path = output_dir / f"confusion_{metrics.task}.csv"
        _write_text(path, table.to_csv())
        files[f"confusion_{metrics.task}_png"] = path = output_dir / f"confusion_{metrics.task}.png"
        plot_confusion(metrics.confusion, labels, path, f"{'gloss' if metrics.task == 'gloss' else 'category'} "
                       f"confusion ({metrics.clips} clips, top-1 {metrics.top1:.3f})", top=confusion_top)

    gloss_true, cat_true = scored.gloss, scored.cat
    gloss_probs, cat_probs = scored.gloss_probs, scored.cat_probs
    gloss_pred = gloss_probs.argmax(axis=1)
    cat_pred = cat_probs.argmax(axis=1)
    rows = pd.DataFrame(
        {
            "file": scored.clips,
            "gloss": gloss_true,
            "gloss_name": [names.gloss_name(g) for g in gloss_true],
            "pred_gloss": gloss_pred,
            "pred_gloss_name": [names.gloss_name(g) for g in gloss_pred],
            "pred_gloss_prob": gloss_probs.max(axis=1).round(6),
            "true_gloss_prob": gloss_probs[np.arange(len(gloss_true)), gloss_true].round(6),
            "gloss_correct": gloss_pred == gloss_true,
            "cat": cat_true,
            "cat_name": [names.cat_name(c) for c in cat_true],
            "pred_cat": cat_pred,
            "pred_cat_name": [names.cat_name(c) for c in cat_pred],
            "pred_cat_prob": cat_probs.max(axis=1).round(6),
            "cat_correct": cat_pred == cat_true,
        }
    )
    # The labels' own extra columns (signer, session, ...) follow, so predictions can be split by them.
    for column in scored.rows.columns:
        if column not in ("file", "gloss", "cat"):
            rows[column if column not in rows.columns else f"{column} (labels)"] = scored.rows[column].to_numpy()
    files["predictions_csv"] = path = output_dir / "predictions.csv"
    _write_text(path, rows.to_csv(index=False))
    if report.group_by:
        from slr.analysis.groups import groups_table

        files["per_group_csv"] = path = output_dir / GROUP_FILE
        _write_text(path, groups_table(report.group_by, report.groups).to_csv(index=False))
    files["metrics_json"] = path = output_dir / "metrics.json"
    # allow_nan=False: to_dict() turns NaN into null; never write a file that is not JSON.
    _write_text(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Each report file is replaced whole or not at all: a failure leaves the earlier evaluation's."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def run_evaluate(settings: EvaluateSettings) -> EvaluationReport:
    """`slr evaluate`: the report, its files written; the caller shows it."""
    from slr.engine.threads import apply_threads

    apply_threads(settings.threads)
    return evaluate(settings)
