"""Classification metrics in numpy: confusion matrix, top-k accuracy, macro F1, per-class results.

Conventions (the same as scikit-learn's defaults, written out here so nothing else is needed):

- the confusion matrix has the true class on rows and the predicted class on columns;
- a class's precision is 0 when nothing was predicted as it, its recall 0 when it has no clip,
  and its F1 is 0 when precision + recall is 0;
- macro F1 is the unweighted mean F1 over the classes that occur as a true label or as a
  prediction (a class absent from both says nothing about the model and is left out);
- per-class accuracy is the recall of each class with at least one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """`[num_classes, num_classes]` int64 counts: row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} true labels but {y_pred.shape[0]} predictions")
    for name, ids in (("true", y_true), ("predicted", y_pred)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} class ids must be in 0..{num_classes - 1}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def topk_accuracy(scores: np.ndarray, y_true: Sequence[int], k: int) -> float:
    """Share of rows whose true class is among the `k` highest scores (k capped at the class count).

    Ties at the k-th score count against the clip: the classes ranked first are those `argsort`
    (stable, on the negated scores) puts first, i.e. the lower id wins a tie.
    """
    scores = np.asarray(scores)
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0:
        return float("nan")
    k = max(1, min(int(k), scores.shape[1]))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == y_true[:, None]).any(axis=1).mean())


@dataclass
class ClassResult:
    id: int
    name: str
    support: int  # clips of this class
    correct: int
    predicted: int  # clips predicted as this class
    precision: float
    recall: float  # = per-class accuracy
    f1: float

    @property
    def accuracy(self) -> Optional[float]:
        return self.recall if self.support else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "clips": self.support,
            "correct": self.correct,
            "predicted": self.predicted,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "f1": self.f1,
        }


def per_class(cm: np.ndarray, names: Sequence[str]) -> list[ClassResult]:
    cm = np.asarray(cm)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    results = []
    for i in range(cm.shape[0]):
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        recall = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results.append(
            ClassResult(i, names[i], int(support[i]), int(tp[i]), int(predicted[i]), float(precision), float(recall), float(f1))
        )
    return results


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over classes that are a true label or a prediction at least once."""
    cm = np.asarray(cm)
    active = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    if not active.any():
        return float("nan")
    f1 = np.array([r.f1 for r in per_class(cm, [""] * cm.shape[0])])
    return float(f1[active].mean())


def most_confused(cm: np.ndarray, names: Sequence[str], limit: int = 10) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most clips: true class, predicted class, count, share of the true class."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    true_ids, pred_ids = np.nonzero(off)
    counts = off[true_ids, pred_ids]
    order = np.lexsort((pred_ids, true_ids, -counts))[: max(0, limit)]
    support = cm.sum(axis=1)
    return [
        {
            "true": int(true_ids[i]),
            "true_name": names[true_ids[i]],
            "predicted": int(pred_ids[i]),
            "predicted_name": names[pred_ids[i]],
            "count": int(counts[i]),
            "share": float(counts[i] / support[true_ids[i]]),
        }
        for i in order
    ]


@dataclass
class TaskMetrics:
    """Everything reported for one head (gloss or category)."""

    task: str
    top1: float
    top5: float
    top5_k: int  # the k actually used: 5, or the class count when there are fewer classes
    macro_f1: float
    confusion: np.ndarray
    classes: list[ClassResult]
    confused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return int(self.confusion.sum())

    @property
    def single_class(self) -> bool:
        """One class only (labels without a cat column): nothing to report, every answer is right."""
        return self.confusion.shape[0] <= 1

    @property
    def classes_in_f1(self) -> int:
        """The classes macro F1 averages over: those that are a true label or a prediction."""
        return int(((self.confusion.sum(0) + self.confusion.sum(1)) > 0).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips": self.clips,
            "top1": self.top1,
            "top5": self.top5,
            "top5_k": self.top5_k,
            "macro_f1": self.macro_f1,
            "classes_in_f1": self.classes_in_f1,
            "per_class": [c.to_dict() for c in self.classes],
            "most_confused": self.confused,
        }


def task_metrics(
    task: str, scores: np.ndarray, y_true: Sequence[int], names: Sequence[str], top_confusions: int = 10
) -> TaskMetrics:
    """Metrics of one head from its scores `[N, C]` (logits or probabilities) and the true ids."""
    scores = np.asarray(scores)
    y_true = np.asarray(y_true, dtype=np.int64)
    num_classes = scores.shape[1]
    cm = confusion_matrix(y_true, scores.argmax(axis=1), num_classes)
    return TaskMetrics(
        task=task,
        top1=topk_accuracy(scores, y_true, 1),
        top5=topk_accuracy(scores, y_true, 5),
        top5_k=min(5, num_classes),
        macro_f1=macro_f1(cm),
        confusion=cm,
        classes=per_class(cm, names),
        confused=most_confused(cm, names, top_confusions),
    )
