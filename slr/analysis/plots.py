"""Training curves from a log CSV: loss and accuracies per epoch, as a PNG beside the log (or --output)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from slr.output_paths import check_output_file, same_file
from slr.engine.atomic import write_atomically
from slr.errors import ConfigError, DataError, setting

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Image formats `--output` may name by its suffix. Not pgf (needs LaTeX) nor raw/rgba (pixel dumps).
FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def output_path(log_csv: Path, output: Optional[Path]) -> tuple[Path, str]:
    """Where the curves go and in which format, checked. The suffix decides the format; none means
    PNG, added to the name (matplotlib adds it anyway: this way the path reported is the file written)."""
    path = Path(output) if output is not None else Path(log_csv).with_suffix(".png")
    check_output_file(path, setting("output"))  # a directory is refused, not turned into DIR.png
    fmt = path.suffix.lower().lstrip(".")
    if not fmt:
        path, fmt = path.with_name(path.name + ".png"), "png"
        check_output_file(path, setting("output"))
    if fmt not in FORMATS:
        listed = ", ".join("." + f for f in FORMATS)
        raise ConfigError(f"{setting('output')}: cannot draw a .{fmt} file; use one of: {listed}", path)
    if same_file(path, log_csv):
        raise ConfigError(f"{setting('output')} is the log itself; give another name", path)
    return path, fmt


def plot_training_curves(log_csv: Path, output: Optional[Path] = None) -> Path:
    """Draw the curves of ``log_csv``; returns the file written."""
    log_csv = Path(log_csv)
    output, fmt = output_path(log_csv, output)  # before reading: a bad --output fails at once
    fig = draw_training_curves(read_log(log_csv))
    try:
        # Atomic: a redraw while a run is going, or a failed one, never leaves half an image.
        write_atomically(output, lambda f: fig.savefig(f, format=fmt, dpi=100))
    finally:
        _pyplot().close(fig)
    return output


def read_log(log_csv: Path) -> "pd.DataFrame":
    """The log's rows, with the plotted columns as numbers (an unreadable cell becomes a gap)."""
    import pandas as pd

    if log_csv.is_dir():  # pandas would say only "Is a directory"
        raise DataError("is a directory, not a log CSV (give the log.csv inside it)", log_csv)
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
    return log


def draw_training_curves(log: "pd.DataFrame") -> "Figure":
    """Two panels, loss and accuracy per epoch; the caller saves and closes the figure."""
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = _pyplot().subplots(1, 2, figsize=(11, 4))
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 2.5 ticks
    fig.tight_layout()
    return fig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none is touched
    import matplotlib.pyplot as plt

    return plt
