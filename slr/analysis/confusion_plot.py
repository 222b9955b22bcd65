"""The confusion matrix as an image that reads at any class count.

At 105 classes the whole matrix is 105 x 105 cells; drawn small enough to fit a screen it needs
full zoom and has no room for counts. So the cell size is fixed (big enough for a count), the
figure grows with the classes, and `top` draws only the classes that carry the most errors,
which is what one looks for in a confusion matrix. The CSV written beside it stays complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from slr.atomic import write_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Cell side in inches; at 100 dpi, 0.3 in = 30 px: room for a 3-digit count in 7 pt type.
CELL_INCHES = 0.3
#: Cell side for matrices with more classes than this: 22 px still holds 2 digits in 5 pt type.
SMALL_CELLS_FROM = 60
SMALL_CELL_INCHES = 0.22
#: Smallest type drawn in a cell; counts that would need smaller type are left out.
MIN_COUNT_POINTS = 5.0


def confusion_mass(cm: np.ndarray) -> np.ndarray:
    """Per class, the clips involved in an error: its clips predicted as another class plus other
    classes' clips predicted as it (off-diagonal row sum + column sum)."""
    cm = np.asarray(cm)
    off = cm - np.diag(np.diag(cm))
    return off.sum(axis=1) + off.sum(axis=0)


def most_confused_classes(cm: np.ndarray, top: int) -> list[int]:
    """The ids of the `top` classes with the most confusion mass, most first (ties: lower id).

    Classes with no error at all are left out; when no class has one, the first `top` are kept
    so that there is still something to draw."""
    mass = confusion_mass(cm)
    order = sorted(range(len(mass)), key=lambda i: (-int(mass[i]), i))
    confused = [i for i in order if mass[i] > 0][: max(0, top)]
    return confused if confused else order[: max(0, top)]


def plot_confusion(
    cm: np.ndarray, labels: Sequence[str], output: Path, title: str, top: Optional[int] = None
) -> Path:
    """Write `draw_confusion`'s figure as a PNG, atomically."""
    fig = draw_confusion(cm, labels, title, top)
    try:
        write_atomically(output, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    finally:
        _pyplot().close(fig)
    return output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_confusion(cm: np.ndarray, labels: Sequence[str], title: str, top: Optional[int] = None) -> "Figure":
    """The matrix: colour = share of the true class's clips, counts in every cell where they fit.
    `top`: only the `top` most confused classes, most confused first (None: all, by id)."""
    plt = _pyplot()
    cm = np.asarray(cm)
    total_classes = cm.shape[0]
    support = cm.sum(axis=1)
    if top is not None and top < total_classes:
        ids = most_confused_classes(cm, top)
        title = f"{title}\nthe {len(ids)} most confused of {total_classes} classes, most errors first"
    else:
        ids = list(range(total_classes))
    shown = cm[np.ix_(ids, ids)]
    # Shares of all the true class's clips, not only those predicted as a shown class.
    share = np.divide(shown, support[ids, None], out=np.zeros(shown.shape, dtype=float),
                      where=support[ids, None] > 0)
    names = [str(labels[i]) for i in ids]
    n = len(ids)

    cell = CELL_INCHES if n <= SMALL_CELLS_FROM else SMALL_CELL_INCHES
    cell_points = cell * 72
    digits = len(str(int(shown.max(initial=0))))
    # A digit is about 0.6 em wide: the widest count spans 85% of the cell, its height 60%.
    count_points = min(9.0, cell_points * 0.6, cell_points * 0.85 / (0.6 * digits))
    label_points = min(10.0, cell * 72 * 0.55)
    label_inches = min(3.0, max(len(s) for s in names) * label_points * 0.6 / 72) if names else 0.5
    side = max(2.0, n * cell)
    fig, ax = plt.subplots(figsize=(side + label_inches + 1.8, side + label_inches + 1.2))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046 if n > 10 else 0.08, pad=0.02, label="share of the true class")
    ax.set_xticks(range(n), names, rotation=90, fontsize=label_points)
    ax.set_yticks(range(n), names, fontsize=label_points)
    if count_points >= MIN_COUNT_POINTS:
        for i, j in zip(*np.nonzero(shown)):
            ax.text(j, i, str(shown[i, j]), ha="center", va="center", fontsize=count_points,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=11)
    return fig
