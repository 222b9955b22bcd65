"""The entries a checkpoint must hold for each use, by name and type.

Each entry: (check, what it should be). Only the entries a use needs are checked, so that, say,
predict still works on a checkpoint whose training history is odd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import torch

from slr.errors import CheckpointError

#: What a caller will use the checkpoint for, which decides the entries it must hold:
#: "weights" (a model's state only, e.g. the smoke test's round trip), "model" (build and run the
#: model: predict, evaluate, export), "resume" (continue training).
Need = Literal["weights", "model", "resume"]


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_weights(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


def _is_rng(v: Any) -> bool:
    """The random streams as capture_rng() in engine/trainer.py stores them (checked here because
    they are restored only after the data is loaded, where a bad one would end in a TypeError)."""
    if not isinstance(v, dict):
        return False
    py, n, t = v.get("python"), v.get("numpy"), v.get("torch")
    return (
        isinstance(py, list) and len(py) == 3 and isinstance(py[1], list) and all(is_int(x) for x in py[1])
        and isinstance(n, dict) and isinstance(n.get("keys"), torch.Tensor) and n["keys"].numel() == 624
        and all(is_int(n.get(k)) for k in ("pos", "has_gauss")) and _is_number(n.get("cached"))
        and isinstance(t, torch.Tensor) and t.dtype == torch.uint8
    )


_Check = tuple[Callable[[Any], bool], str]  # (test, what the entry should be)
_COUNT: _Check = (lambda v: is_int(v) and v >= 1, "a positive integer")
_OPTIONAL_DICT: _Check = (lambda v: v is None or isinstance(v, dict), "a dict or None")

_WEIGHTS: dict[str, _Check] = {"model_state": (_is_weights, "a dict of named tensors")}
_MODEL: dict[str, _Check] = {
    **_WEIGHTS,
    "model": (lambda v: isinstance(v, str), "a model name"),
    "input_dim": _COUNT,
    "num_gloss": _COUNT,
    "num_cat": _COUNT,
    "settings": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict of settings"),
}
_RESUME: dict[str, _Check] = {
    **_MODEL,
    "optimizer_state": (lambda v: isinstance(v, dict), "a dict"),
    "epoch": (lambda v: is_int(v) and v >= 0, "a whole number of epochs"),
    "best_metric": (_is_number, "a number"),
    "early_stop": (lambda v: isinstance(v, dict) and is_int(v.get("stale_epochs")), "a dict with 'stale_epochs'"),
    "history": (lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v), "a list of dicts"),
    "rng": (_is_rng, "the random-number state slr saves"),
}
#: Entries a use reads when present: checked then, absent is fine.
_OPTIONAL: dict[str, dict[str, _Check]] = {
    "weights": {},
    "model": {
        "model_class": (lambda v: isinstance(v, str), "a class name"),
        "frames": (lambda v: isinstance(v, bool), "true or false"),
    },
    "resume": {
        "model_class": (lambda v: isinstance(v, str), "a class name"),
        "scheduler_state": _OPTIONAL_DICT,
        "scaler_state": _OPTIONAL_DICT,
        "runtime": _OPTIONAL_DICT,
        "step_in_epoch": (lambda v: is_int(v) and v >= 0, "a whole number"),
        "best_epoch": (lambda v: is_int(v) and v >= 0, "a whole number"),
        "epoch_seconds": (_is_number, "a number"),
        "epoch_totals": (lambda v: isinstance(v, list) and all(_is_number(x) for x in v), "a list of numbers"),
        "rng_ranks": (lambda v: isinstance(v, list) and all(_is_rng(x) for x in v), "a list of random-number states"),
    },
}
_REQUIRED: dict[str, dict[str, _Check]] = {"weights": _WEIGHTS, "model": _MODEL, "resume": _RESUME}
_PURPOSE = {"weights": "", "model": " to build its model", "resume": " to resume training"}


def check_structure(state: Mapping[str, Any], path: Path, need: Need = "weights") -> None:
    """Refuse a checkpoint that lacks an entry ``need`` requires, or holds one of the wrong type,
    with a message naming the entry (instead of a KeyError or TypeError later on)."""
    if need not in _REQUIRED:
        raise ValueError(f"need must be one of {sorted(_REQUIRED)}, not {need!r}")
    missing = [key for key in _REQUIRED[need] if key not in state]
    if missing:
        raise CheckpointError(
            f"incomplete checkpoint: no {', '.join(repr(k) for k in missing)} entry{_PURPOSE[need]}", path
        )
    for key, (check, wanted) in {**_REQUIRED[need], **_OPTIONAL[need]}.items():
        if key in state and not check(state[key]):
            raise CheckpointError(
                f"damaged checkpoint: {key!r} should be {wanted}, not {describe(state[key])}", path
            )
    if need in ("model", "resume"):
        from slr.models.registry import MODELS

        if state["model"] not in MODELS:
            raise CheckpointError(
                f"checkpoint is of an unknown model {state['model']!r} (this slr has: {', '.join(MODELS)})", path
            )


def describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
