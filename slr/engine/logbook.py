"""The per-epoch log CSV and settings.json, both rewritten atomically from the run's history.

The history travels inside every checkpoint, so a resumed run rewrites the log with exactly the
epochs its checkpoint knows and carries on; rows of epochs that were lost are never duplicated.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from slr.atomic import write_atomically

#: The training guide's columns, in its order; further columns follow them.
GUIDE_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_gloss_acc",
    "val_cat_acc",
    "lr",
    "epoch_time",
    "gpu_memory_allocated",
    "gpu_memory_reserved",
]
EXTRA_COLUMNS = ["train_gloss_acc", "train_cat_acc", "samples_per_s", "val_time", "gpu_memory_peak", "rss"]


def write_atomic(path: Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def write_log_csv(path: Path, history: Iterable[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    # "\n", not the csv module's default "\r\n": the log is read by line-based tools (tail, grep, diff)
    writer = csv.DictWriter(
        buffer, fieldnames=GUIDE_COLUMNS + EXTRA_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
