"""The files other commands write into a run's folder by default, named in one place.

`slr export` writes `<checkpoint stem>.ts.pt` / `.onnx` beside the checkpoint, `slr evaluate` its
report into `evaluation/` beside the checkpoint, `slr compare` into `comparison/` beside the first
one. They describe that run's checkpoints, so a new run into the folder moves them to `earlier/`
with the checkpoints (run_files.keep_earlier_run). The commands take the names from here, so what
is moved is what they write.
"""

from __future__ import annotations

from pathlib import Path

#: `slr export`'s suffix per format, after the checkpoint's stem.
EXPORT_SUFFIXES = {"torchscript": ".ts.pt", "onnx": ".onnx"}

#: `slr evaluate`'s default folder (beside the checkpoint) and what it writes there.
EVALUATION_DIR = "evaluation"
EVALUATION_FILES = (
    "confusion_gloss.csv", "confusion_gloss.png", "confusion_cat.csv", "confusion_cat.png",
    "predictions.csv", "metrics.json",
)
#: Written as well when results are split by a labels column.
EVALUATION_GROUP_FILE = "per_group.csv"

#: `slr compare`'s default folder (beside the first checkpoint) and what it writes there.
COMPARISON_DIR = "comparison"
COMPARISON_FILES = ("comparison.json", "per_class.csv", "curves.png")


def exports_of(checkpoint: Path) -> list[Path]:
    """Where `slr export` writes this checkpoint's exports by default, one per format."""
    return [checkpoint.with_name(checkpoint.stem + suffix) for suffix in EXPORT_SUFFIXES.values()]


def default_reports(folder: Path) -> list[Path]:
    """Every file `slr evaluate` and `slr compare` write by default for checkpoints in ``folder``."""
    return [*(folder / EVALUATION_DIR / name for name in (*EVALUATION_FILES, EVALUATION_GROUP_FILE)),
            *(folder / COMPARISON_DIR / name for name in COMPARISON_FILES)]
