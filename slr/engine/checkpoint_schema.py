"""The one definition of an slr checkpoint: its entries, their types, which use needs which.

The trainer writes checkpoints through ``make_checkpoint``, the reader checks them with
``check_structure`` (and, before a resume, ``check_resume_values``), and the tests build theirs
with ``make_checkpoint`` too, so that the four cannot drift apart. What the history determines
(the best metric and its epoch, the epochs without improvement) is derived from it
(``derive_progress``), never trusted on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, TypedDict

import torch

from slr.errors import CheckpointError

FORMAT = "slr-checkpoint"
VERSION = 1
#: The validation metric the best checkpoint is chosen by (higher is better).
BEST_METRIC = "val_gloss_acc"

#: What a caller will use the checkpoint for, which decides the entries it must hold:
#: "weights" (a model's state only, e.g. the smoke test's round trip), "model" (build and run the
#: model: predict, evaluate, export), "resume" (continue training exactly).
Need = Literal["weights", "model", "resume"]
_ORDER = {"weights": 0, "model": 1, "resume": 2}


class Checkpoint(TypedDict, total=False):
    """The entries, for readers of the code; ``ENTRIES`` below is what is checked."""

    format: str
    version: int
    slr_version: str
    model_state: dict[str, torch.Tensor]  # unwrapped: no `module.` / `_orig_mod.` prefixes
    model: str  # registry name
    model_class: str
    input_dim: int
    num_gloss: int
    num_cat: int
    settings: dict[str, Any]  # the resolved TrainSettings, JSON-able
    class_names: dict[str, dict[int, str]]
    frames: bool
    runtime: dict[str, Any]  # what the auto options picked, world size
    extraction: dict[str, Any]  # how the training clips were made from videos, when known
    clip_frames: dict[str, Any]  # the training clips' frame counts: min, median, max (predict's length check)
    keypoint_layout: Optional[dict[str, Any]]  # a layout file's declaration (slr/data/layout_file.py), when given
    ema_state: Optional[dict[str, Any]]  # --ema-decay: training weights and update count (model_state is the average)
    optimizer_state: dict[str, Any]
    scheduler_state: Optional[dict[str, Any]]
    scaler_state: dict[str, Any]
    epoch: int  # epochs fully done
    step_in_epoch: int  # micro-batches done inside the next epoch
    epoch_totals: list[float]
    epoch_seconds: float
    history: list[dict[str, Any]]  # one row per epoch done: the log's columns
    best_metric: float  # derived from history; stored for people and other tools
    best_epoch: int
    test: dict[str, Any]  # the test split's accuracy, in _best.pt only (slr/engine/test_split.py)
    early_stop: dict[str, Any]  # {"stale_epochs", "patience"}; stale_epochs derived from history
    rng: dict[str, Any]
    rng_ranks: list[dict[str, Any]]  # under torchrun: every rank's own streams


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_weights(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


_TORCH_RNG_BYTES = torch.get_rng_state().numel()


def _is_rng(v: Any) -> bool:
    """The random streams as capture_rng() in engine/trainer.py stores them, of the sizes this
    torch, numpy and Python restore (a wrong size would fail only when the epoch starts)."""
    if not isinstance(v, dict):
        return False
    py, n, t = v.get("python"), v.get("numpy"), v.get("torch")
    return (
        isinstance(py, list) and len(py) == 3 and isinstance(py[1], list) and len(py[1]) == 625
        and all(is_int(x) for x in py[1])
        and isinstance(n, dict) and isinstance(n.get("keys"), torch.Tensor) and n["keys"].numel() == 624
        and all(is_int(n.get(k)) for k in ("pos", "has_gauss")) and _is_number(n.get("cached"))
        and isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.numel() == _TORCH_RNG_BYTES
    )


def _is_history(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(row, dict) for row in v)


@dataclass(frozen=True)
class Entry:
    check: Callable[[Any], bool]
    wanted: str  # what the entry should be, for messages
    need: Optional[Need]  # the least use that requires it; None: optional, checked when present


_COUNT = (lambda v: is_int(v) and v >= 1, "a positive integer")
_WHOLE = (lambda v: is_int(v) and v >= 0, "a whole number")
_OPTIONAL_DICT = (lambda v: v is None or isinstance(v, dict), "a dict or None")

ENTRIES: dict[str, Entry] = {
    "format": Entry(lambda v: v == FORMAT, f"'{FORMAT}'", "weights"),
    "version": Entry(is_int, "an integer", "weights"),
    "model_state": Entry(_is_weights, "a dict of named tensors", "weights"),
    "model": Entry(lambda v: isinstance(v, str), "a model name", "model"),
    "input_dim": Entry(*_COUNT, "model"),
    "num_gloss": Entry(*_COUNT, "model"),
    "num_cat": Entry(*_COUNT, "model"),
    "settings": Entry(lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict of settings",
                      "model"),
    "optimizer_state": Entry(lambda v: isinstance(v, dict), "a dict", "resume"),
    "scheduler_state": Entry(*_OPTIONAL_DICT, "resume"),
    "scaler_state": Entry(*_OPTIONAL_DICT, "resume"),
    "runtime": Entry(*_OPTIONAL_DICT, "resume"),
    "epoch": Entry(lambda v: is_int(v) and v >= 0, "a whole number of epochs", "resume"),
    "step_in_epoch": Entry(*_WHOLE, "resume"),
    "epoch_totals": Entry(lambda v: isinstance(v, list) and len(v) == 4 and all(_is_number(x) for x in v),
                          "a list of 4 numbers", "resume"),
    "epoch_seconds": Entry(lambda v: _is_number(v) and math.isfinite(v) and v >= 0, "a number of seconds", "resume"),
    "history": Entry(_is_history, "a list of dicts", "resume"),
    "early_stop": Entry(lambda v: isinstance(v, dict), "a dict", "resume"),
    "rng": Entry(_is_rng, "the random-number state slr saves (of this torch's size)", "resume"),
    # Under torchrun: every rank's own streams, so that a same-size resume continues each (resume_world.py)
    "rng_ranks": Entry(lambda v: isinstance(v, list) and all(_is_rng(x) for x in v), "a list of random-number states",
                       None),
    "slr_version": Entry(lambda v: isinstance(v, str), "a version string", None),
    "model_class": Entry(lambda v: isinstance(v, str), "a class name", None),
    "class_names": Entry(lambda v: isinstance(v, dict), "a dict", None),
    "frames": Entry(lambda v: isinstance(v, bool), "true or false", None),
    "extraction": Entry(*_OPTIONAL_DICT, None),
    "clip_frames": Entry(*_OPTIONAL_DICT, None),
    "keypoint_layout": Entry(*_OPTIONAL_DICT, None),
    "ema_state": Entry(*_OPTIONAL_DICT, None),
    "best_metric": Entry(_is_number, "a number", None),
    "best_epoch": Entry(*_WHOLE, None),
    # the chosen checkpoint's accuracy on the run's test split, scored once after training (slr/engine/test_split.py)
    "test": Entry(*_OPTIONAL_DICT, None),
}
_PURPOSE = {"weights": "", "model": " to build its model", "resume": " to resume training"}


def _needed(need: Need) -> list[str]:
    return [name for name, e in ENTRIES.items() if e.need is not None and _ORDER[e.need] <= _ORDER[need]]


def make_checkpoint(need: Need = "resume", **entries: Any) -> dict[str, Any]:
    """A checkpoint dict: ``format`` and ``version`` filled in; an unknown name, or a missing entry
    that ``need`` requires, is a bug in the caller (ValueError), not a file to write."""
    state = {"format": FORMAT, "version": VERSION, **entries}
    unknown = [k for k in state if k not in ENTRIES]
    missing = [k for k in _needed(need) if k not in state]
    if unknown or missing:
        raise ValueError(f"checkpoint entries: unknown {unknown}, missing {missing}")
    return state


def check_structure(state: Mapping[str, Any], path: Path, need: Need = "weights") -> None:
    """Refuse a checkpoint that lacks an entry ``need`` requires, or holds one of the wrong type,
    with a message naming the entry (instead of a KeyError or TypeError later on)."""
    if need not in _ORDER:
        raise ValueError(f"need must be one of {sorted(_ORDER)}, not {need!r}")
    missing = [key for key in _needed(need) if key not in state]
    if missing:
        raise CheckpointError(
            f"incomplete checkpoint: no {', '.join(repr(k) for k in missing)} entry{_PURPOSE[need]}"
            + (" (a checkpoint that cannot continue exactly is not resumed from a guess)" if need == "resume" else ""),
            path,
        )
    for key, entry in ENTRIES.items():
        checked = entry.need is None or _ORDER[entry.need] <= _ORDER[need]
        if checked and key in state and not entry.check(state[key]):
            raise CheckpointError(f"damaged checkpoint: {key!r} should be {entry.wanted}, not {describe(state[key])}",
                                  path)
    if need in ("model", "resume"):
        from slr.models.registry import MODELS

        if state["model"] not in MODELS:
            raise CheckpointError(
                f"checkpoint is of an unknown model {state['model']!r} (this slr has: {', '.join(MODELS)})", path
            )


@dataclass(frozen=True)
class Progress:
    best_metric: float  # -inf before the first epoch
    best_epoch: int  # 0 before the first epoch
    stale_epochs: int  # epochs since the best one


def derive_progress(history: list[Mapping[str, Any]]) -> Progress:
    """The best epoch (the first with the highest metric, as training picks it) and the epochs since."""
    best, best_epoch = -math.inf, 0
    for row in history:
        if row[BEST_METRIC] > best:
            best, best_epoch = row[BEST_METRIC], row["epoch"]
    stale = (history[-1]["epoch"] - best_epoch) if history else 0
    return Progress(best, best_epoch, stale)


def check_resume_values(state: Mapping[str, Any], path: Path) -> Progress:
    """The values a resume trusts, each checked; returns what the history says of the best epoch.

    The history must hold one row per epoch done, numbered 1..epoch, with finite metrics in [0, 1];
    a stored best metric or best epoch that disagrees with it means the file was edited or damaged.
    """
    history, epoch = state["history"], state["epoch"]
    if [row.get("epoch") for row in history] != list(range(1, epoch + 1)):
        raise CheckpointError(
            f"damaged checkpoint: 'history' holds epochs {_epochs(history)} but 'epoch' says {epoch} were done", path)
    for row in history:
        value = row.get(BEST_METRIC)
        if not (_is_number(value) and math.isfinite(value) and 0 <= value <= 1):
            raise CheckpointError(
                f"damaged checkpoint: 'history' epoch {row['epoch']} has {BEST_METRIC} {describe(value)} "
                "(a fraction between 0 and 1)", path)
    progress = derive_progress(history)
    if "best_metric" in state and history and state["best_metric"] != progress.best_metric:
        raise CheckpointError(
            f"damaged checkpoint: 'best_metric' is {describe(state['best_metric'])} but the history's best "
            f"{BEST_METRIC} is {progress.best_metric} (epoch {progress.best_epoch})", path)
    if "best_epoch" in state and history and state["best_epoch"] != progress.best_epoch:
        raise CheckpointError(
            f"damaged checkpoint: 'best_epoch' is {state['best_epoch']} but the history's best is epoch "
            f"{progress.best_epoch}", path)
    return progress


def _epochs(history: list[Mapping[str, Any]]) -> str:
    numbers = [row.get("epoch") for row in history]
    return repr(numbers) if len(numbers) <= 6 else f"{numbers[:3]}...{numbers[-2:]} ({len(numbers)} rows)"


def describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
