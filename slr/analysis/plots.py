"""Training curves from a log CSV: loss and accuracies per epoch, as a PNG beside the log."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from slr.errors import DataError


def plot_training_curves(log_csv: Path, output: Optional[Path] = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none is touched
    import matplotlib.pyplot as plt
    import pandas as pd

    log_csv = Path(log_csv)
    try:
        log = pd.read_csv(log_csv)
    except FileNotFoundError:
        raise DataError("log file not found", log_csv) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable log CSV: {exc}", log_csv) from None
    needed = {"epoch", "train_loss", "val_loss", "val_gloss_acc", "val_cat_acc"}
    missing = needed - set(log.columns)
    if missing:
        raise DataError(f"not an slr training log: missing columns {', '.join(sorted(missing))}", log_csv)
    if log.empty:
        raise DataError("the log has no epochs yet", log_csv)
    for column in sorted(needed) + [c for c in ("train_gloss_acc",) if c in log.columns]:
        values = pd.to_numeric(log[column], errors="coerce")
        if values.isna().all() and column in ("epoch", "train_loss"):
            raise DataError(f"column {column!r} holds no numbers", log_csv)
        log[column] = values  # a blank or unreadable cell is a gap in the curve, not a crash
    output = Path(output) if output else log_csv.with_suffix(".png")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(log["epoch"], log["train_loss"], marker="o", label="train")
    loss_ax.plot(log["epoch"], log["val_loss"], marker="o", label="validation")
    loss_ax.set(title="loss", xlabel="epoch")
    loss_ax.legend()
    acc_ax.plot(log["epoch"], log["val_gloss_acc"], marker="o", label="val gloss")
    acc_ax.plot(log["epoch"], log["val_cat_acc"], marker="o", label="val category")
    if "train_gloss_acc" in log.columns:
        acc_ax.plot(log["epoch"], log["train_gloss_acc"], linestyle="--", label="train gloss")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1.01))
    acc_ax.legend(loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
