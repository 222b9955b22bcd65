"""`slr evaluate`: a checkpoint on a labelled clip directory, with reports written to disk.

Output directory (default: `evaluation/` beside the checkpoint):

- `metrics.json`: everything printed, plus per-class results of both heads;
- `predictions.csv`: one row per clip (true and predicted ids and names, probabilities);
- `confusion_gloss.csv`, `confusion_cat.csv`: counts, rows = true class, columns = predicted;
- `confusion_gloss.png`, `confusion_cat.png`: the same, coloured by share of each true class.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slr.analysis.classes import ClassNames, resolve_class_names
from slr.analysis.metrics import TaskMetrics, task_metrics
from slr.output_paths import check_output_dir, clashing_input
from slr.engine.atomic import write_atomically
from slr.errors import ConfigError, DataError, setting
from slr.settings import EvaluateSettings

#: What `write_outputs` writes into the output directory.
OUTPUT_FILES = (
    "confusion_gloss.csv", "confusion_gloss.png", "confusion_cat.csv", "confusion_cat.png",
    "predictions.csv", "metrics.json",
)


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

    def to_dict(self) -> dict[str, Any]:
        return _finite(
            {
                "checkpoint": str(self.checkpoint),
                "model": self.model,
                "model_class": self.model_class,
                "directory": str(self.directory),
                "labels_csv": str(self.labels_csv),
                "clips": self.clips,
                "gloss": self.gloss.to_dict(),
                "cat": self.cat.to_dict(),
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
    from slr.analysis.inference import load_model, pick_device
    from slr.analysis.scoring import class_probabilities
    from slr.data.dataset import ClipDataset

    directory = Path(settings.directory)
    labels_csv = Path(settings.labels_csv) if settings.labels_csv else directory / "labels.csv"
    output_dir = Path(settings.output_dir) if settings.output_dir else Path(settings.checkpoint).parent / "evaluation"
    check_output_dir(output_dir, setting("output_dir"))
    inputs = [settings.checkpoint, labels_csv, settings.classes]
    clash = clashing_input([output_dir / name for name in OUTPUT_FILES], inputs)
    if clash:
        raise ConfigError(f"{setting('output_dir')} {output_dir}: its {clash[0].name} would replace the input {clash[1]}")
    loaded = load_model(settings.checkpoint, pick_device(settings.device))
    if settings.input_kind != loaded.input_kind:
        raise ConfigError(
            f"{settings.checkpoint} holds {_a(loaded.model_class)} ({loaded.name}) model, which reads "
            f"{loaded.input_kind}: give the clips with --{loaded.input_kind} DIR"
        )
    if not directory.is_dir():
        raise DataError("clip directory not found", directory)
    dataset = ClipDataset(directory, labels_csv, cache=False, **loaded.dataset_options())
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
    gloss_scores, cat_scores = class_probabilities(loaded, dataset, settings.batch_size, labels, directory)
    gloss_probs = gloss_scores.numpy()
    cat_probs = cat_scores.numpy()

    names = resolve_class_names(loaded.state, settings.classes, dataset.names, dataset.gloss)
    top = settings.top_confusions
    gloss = task_metrics("gloss", gloss_probs, dataset.gloss, names.names("gloss", loaded.num_gloss), top)
    cat = task_metrics("cat", cat_probs, dataset.cat, names.names("cat", loaded.num_cat), top)
    report = EvaluationReport(
        checkpoint=Path(settings.checkpoint),
        model=loaded.name,
        model_class=loaded.model_class,
        directory=directory,
        labels_csv=labels_csv,
        clips=len(dataset),
        gloss=gloss,
        cat=cat,
        names=names,
    )
    write_outputs(report, output_dir, dataset.names, dataset.gloss, dataset.cat, gloss_probs, cat_probs)
    return report


def _a(noun: str) -> str:
    """"a SignTransformer", "an InceptionV3GRU"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _clip_labels(directory: Path, names: list[str]) -> list[str]:
    """The file of each labels.csv entry, to name it in messages (labels.csv may leave out `.npz`)."""
    from slr.data.clips import clip_stem, list_clip_files

    files = {clip_stem(p.name): p for p in list_clip_files(directory)}
    return [str(files.get(name, directory / f"{name}.npz")) for name in names]


def write_outputs(
    report: EvaluationReport,
    output_dir: Path,
    clip_names: list[str],
    gloss_true: np.ndarray,
    cat_true: np.ndarray,
    gloss_probs: np.ndarray,
    cat_probs: np.ndarray,
) -> None:
    import pandas as pd

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
                       f"confusion ({metrics.clips} clips, top-1 {metrics.top1:.3f})")

    gloss_pred = gloss_probs.argmax(axis=1)
    cat_pred = cat_probs.argmax(axis=1)
    rows = pd.DataFrame(
        {
            "file": clip_names,
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
    files["predictions_csv"] = path = output_dir / "predictions.csv"
    _write_text(path, rows.to_csv(index=False))
    files["metrics_json"] = path = output_dir / "metrics.json"
    # allow_nan=False: to_dict() turns NaN into null; never write a file that is not JSON.
    _write_text(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Each report file is replaced whole or not at all: a failure leaves the earlier evaluation's."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def plot_confusion(cm: np.ndarray, labels: list[str], output: Path, title: str) -> Path:
    """The confusion matrix as a PNG: colour = share of the true class's clips, counts written when few classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    support = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)
    side = min(30.0, max(5.0, 2.5 + 0.2 * n))
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 120:
        size = 10 if n <= 15 else 8 if n <= 40 else 6  # each cell is at least 0.2 inch (14 pt) high
        ax.set_xticks(range(n), labels, rotation=90, fontsize=size)
        ax.set_yticks(range(n), labels, fontsize=size)
    if n <= 30:
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    try:
        write_atomically(output, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return output


def run_evaluate(settings: EvaluateSettings) -> EvaluationReport:
    """`slr evaluate`: the report, its files written; the caller shows it."""
    return evaluate(settings)
