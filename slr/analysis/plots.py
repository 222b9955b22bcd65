"""Training curves from a log CSV: loss, accuracies and learning rate per epoch, as a PNG beside the log
(or where asked), titled with the run and with its best epoch marked; and several runs overlaid
(`slr compare`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from slr.output_paths import check_output_file, same_file
from slr.atomic import write_atomically
from slr.errors import ConfigError, DataError, SlrError, setting

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Image formats `--output` may name by its suffix. Not pgf (needs LaTeX) nor raw/rgba (pixel dumps).
FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def output_path(log_csv: Path, output: Optional[Path]) -> tuple[Path, str]:
    """Where the curves go and in which format, checked. The suffix decides the format; none means
    PNG, added to the name (matplotlib adds it anyway: this way the path reported is the file written)."""
    path = Path(output) if output is not None else Path(log_csv).with_suffix(".png")
    flag = setting("output")
    check_output_file(path, flag)  # a directory is refused, not turned into DIR.png
    fmt = path.suffix.lower().lstrip(".")
    if not fmt:
        path, fmt = path.with_name(path.name + ".png"), "png"
        check_output_file(path, flag)
    if fmt not in FORMATS:
        listed = ", ".join("." + f for f in FORMATS)
        raise ConfigError(f"{flag}: cannot draw a .{fmt} file; use one of: {listed}", path)
    if same_file(path, log_csv):
        raise ConfigError(f"{flag} is the log itself; give another name", path)
    return path, fmt


def plot_training_curves(log_csv: Path, output: Optional[Path] = None, title: Optional[str] = None) -> Path:
    """Draw the curves of ``log_csv``; returns the file written. `title`: default, `run_title(log_csv)`."""
    log_csv = Path(log_csv)
    output, fmt = output_path(log_csv, output)  # before reading: a bad --output fails at once
    fig = draw_training_curves(read_log(log_csv), title if title is not None else run_title(log_csv))
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
    for column in sorted(needed) + [c for c in ("train_gloss_acc", "lr") if c in log.columns]:
        values = pd.to_numeric(log[column], errors="coerce")
        if values.isna().all() and column in ("epoch", "train_loss"):
            raise DataError(f"column {column!r} holds no numbers", log_csv)
        log[column] = values  # a blank or unreadable cell is a gap in the curve, not a crash
    return log


def run_title(log_csv: Path) -> str:
    """"transformer, runs/tf": the model from the settings.json `slr train` writes
    beside the log, and the log's folder; the folder alone when there is no readable settings.json."""
    folder = Path(log_csv).parent
    where = str(folder) if str(folder) != "." else Path.cwd().name
    try:
        model = json.loads((folder / "settings.json").read_text(encoding="utf-8"))["settings"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return where
    # The registry name (not the class name, which would need the model registry and so torch:
    # `slr plot` stays a matplotlib-only command).
    return f"{model}, {where}" if isinstance(model, str) else where


def best_epoch(log: "pd.DataFrame") -> Optional[tuple[int, float]]:
    """(epoch, val gloss accuracy) of the best epoch as training counts it: the first with the highest
    validation gloss accuracy (a later tie is no improvement). None when no epoch has one."""
    acc = log["val_gloss_acc"]
    if acc.isna().all():
        return None
    row = acc.idxmax()  # the first of equal maxima; NaN skipped
    epoch = log.at[row, "epoch"]
    return (int(epoch) if not math.isnan(epoch) else int(row) + 1), float(acc[row])


def _lr_axis(ax, values: "Sequence[pd.Series]") -> None:
    """Log scale when the learning rates span a factor of 10 or more (a schedule's decay reads as a
    line, not a cliff into zero); linear otherwise."""
    positive = [v[v > 0] for v in values]
    low = min((float(v.min()) for v in positive if len(v)), default=None)
    high = max((float(v.max()) for v in positive if len(v)), default=None)
    if low is not None and high / low >= 10:
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))


def _has_lr(log: "pd.DataFrame") -> bool:
    return "lr" in log.columns and bool(log["lr"].notna().any())


def draw_training_curves(log: "pd.DataFrame", title: Optional[str] = None) -> "Figure":
    """Three panels, loss, accuracy and learning rate per epoch, the best epoch marked in each;
    the caller saves and closes the figure."""
    fig, (loss_ax, acc_ax, lr_ax) = _pyplot().subplots(1, 3, figsize=(15, 4.4))
    loss_ax.plot(log["epoch"], log["train_loss"], marker="o", label="train")
    loss_ax.plot(log["epoch"], log["val_loss"], marker="o", label="validation")
    loss_ax.set(title="loss", xlabel="epoch")
    loss_ax.legend()
    acc_ax.plot(log["epoch"], log["val_gloss_acc"], marker="o", label="val gloss")
    acc_ax.plot(log["epoch"], log["val_cat_acc"], marker="o", label="val category")
    if "train_gloss_acc" in log.columns:
        acc_ax.plot(log["epoch"], log["train_gloss_acc"], linestyle="--", label="train gloss")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1.01))
    _lr_panel(lr_ax, [("", log)])
    best = best_epoch(log)
    if best is not None:
        epoch, acc = best
        for ax in (loss_ax, acc_ax, lr_ax):
            ax.axvline(epoch, color="grey", linestyle=":", linewidth=1.2)
        acc_ax.plot([epoch], [acc], marker="*", markersize=14, color="crimson", linestyle="none",
                    label=f"best: epoch {epoch} ({acc:.3f})")
    acc_ax.legend(loc="lower right")
    _finish(fig, (loss_ax, acc_ax, lr_ax), title)
    return fig


def _lr_panel(ax, runs: "Sequence[tuple[str, pd.DataFrame]]", colors: Sequence[str] = ()) -> None:
    """The learning rate of each run that logged one (colour `colors[i]` for run i, if given)."""
    drawn = []
    for i, (label, log) in enumerate(runs):
        if _has_lr(log):
            style = {"color": colors[i]} if colors else {}
            ax.plot(log["epoch"], log["lr"], marker=".", label=label or None, **style)
            drawn.append(log["lr"])
    ax.set(title="learning rate", xlabel="epoch")
    if drawn:
        _lr_axis(ax, drawn)
    else:
        ax.text(0.5, 0.5, "no learning rate in the log", ha="center", va="center", transform=ax.transAxes)


def _finish(fig, axes, title: Optional[str]) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 2.5 ticks
    if title:
        fig.suptitle(title)
    fig.tight_layout()


def draw_runs(runs: "Sequence[tuple[str, pd.DataFrame]]", title: Optional[str] = None) -> "Figure":
    """Several runs' logs overlaid, one colour per run: validation gloss accuracy (best epoch
    starred), training (dashed) and validation (solid) loss, learning rate."""
    fig, (acc_ax, loss_ax, lr_ax) = _pyplot().subplots(1, 3, figsize=(16, 4.8))
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for (label, log), color in zip(runs, colors):
        acc_ax.plot(log["epoch"], log["val_gloss_acc"], marker="o", markersize=3, color=color, label=label)
        best = best_epoch(log)
        if best is not None:
            acc_ax.plot([best[0]], [best[1]], marker="*", markersize=13, color=color, linestyle="none")
        loss_ax.plot(log["epoch"], log["val_loss"], color=color, label=f"{label}: validation")
        loss_ax.plot(log["epoch"], log["train_loss"], color=color, linestyle="--", label=f"{label}: train")
    acc_ax.set(title="validation gloss accuracy (* best epoch)", xlabel="epoch", ylim=(0, 1.01))
    loss_ax.set(title="loss (dashed: train)", xlabel="epoch")
    _lr_panel(lr_ax, list(runs), colors)
    acc_ax.legend(loc="lower right", fontsize=8)
    loss_ax.legend(fontsize=7)
    _finish(fig, (acc_ax, loss_ax, lr_ax), title)
    return fig


def plot_runs(runs: "Sequence[tuple[str, pd.DataFrame]]", output: Path, title: Optional[str] = None) -> Path:
    """`draw_runs` saved as a PNG, atomically."""
    fig = draw_runs(runs, title)
    try:
        write_atomically(Path(output), lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        _pyplot().close(fig)
    return Path(output)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none is touched
    import matplotlib.pyplot as plt

    return plt
