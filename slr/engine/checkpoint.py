"""Checkpoints, in one place: what one holds (``ENTRIES``), how it is written (atomically), read
(``weights_only=True``, checked before use) and put into a model, the random streams it carries,
and the best checkpoint (a copy of the last one, repaired after a kill between the two writes).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (docs/architecture.md),
so loading it never runs code from the file. The trainer writes through ``make_checkpoint``, the
reader checks with ``check_structure`` (and, before a resume, ``check_resume_values``), and the
tests build theirs with ``make_checkpoint`` too, so that they cannot drift apart. What the history
determines (the best metric and its epoch, the epochs without improvement) is derived from it
(``derive_progress``), never trusted on its own. Where the files are and what they are called is
decided in slr/engine/run_folder.py.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import random
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, TypedDict

import numpy as np
import torch

from slr.atomic import write_atomically
from slr.engine.run_folder import best_beside
from slr.errors import CheckpointError, SlrError, setting
from slr.models.state_keys import unwrapped_keys



# -- what a checkpoint holds ------------------------------------------------------------------------


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
    """The random streams as capture_rng() below stores them, of the sizes this
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
    # Under torchrun: every rank's own streams, so that a same-size resume continues each (slr/engine/resume.py)
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



# -- writing and reading ----------------------------------------------------------------------------


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.` and `_orig_mod.` prefixes, in any order or number, from every key."""
    return unwrapped_keys(state)


def save_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Atomically: a crash at any moment leaves either the previous file or the new one."""
    write_atomically(Path(path), lambda f: torch.save(dict(state), f))


def load_checkpoint(path: Path, need: Need = "weights") -> dict[str, Any]:
    """Read an slr checkpoint; anything that is not one is refused with a message, never executed.

    Refused too: a file damaged after it was written (zip CRCs), weights holding NaN or inf, and a
    checkpoint that lacks an entry ``need`` requires or holds one of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found" if not path.exists() else "not a file", path)
    zipped = zipfile.is_zipfile(path)
    if zipped:
        _check_archive(path)
    else:
        with open(path, "rb") as f:
            head = f.read(2)
        if not head.startswith(b"\x80"):  # neither torch's zip format nor a pickle stream
            raise CheckpointError("not a readable checkpoint (not a PyTorch file; empty, text or truncated?)", path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _refused_object(exc)
        raise CheckpointError(
            "refused: the file holds pickled Python objects that are not plain tensors and containers "
            f"({detail}). slr loads checkpoints with weights_only=True and never runs code from them",
            path,
        ) from None
    except Exception as exc:  # noqa: BLE001 - a malformed file can make torch's reader fail in any way
        if zipped and _is_torchscript(path):
            raise CheckpointError(
                "this is a TorchScript model (as `slr export` writes), not an slr checkpoint: run it with "
                "torch.jit.load; slr's commands take the *_best.pt / *_last.pt it was exported from",
                path,
            ) from None
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if not zipped:
            # torch's legacy (pre-1.6) format cannot store some dtypes, e.g. the uint32 random-number
            # state slr saves: torch writes such a file but cannot read it back.
            raise CheckpointError(
                f"not a readable checkpoint: it is in PyTorch's legacy (non-zip) format, which torch cannot "
                f"read back here ({detail}). Use the checkpoint as slr wrote it; to re-save one, call "
                "torch.save(state, path) without _use_new_zipfile_serialization=False",
                path,
            ) from None
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt?): {detail}", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("not an slr checkpoint (no 'format: slr-checkpoint' entry)", path)
    version = state.get("version", 0)
    if not is_int(version):
        raise CheckpointError(f"damaged checkpoint: 'version' should be an integer, not {describe(version)}", path)
    if version > VERSION:
        raise CheckpointError(f"written by a newer slr (format version {version})", path)
    check_structure(state, path, need)
    _check_finite_weights(state["model_state"], path)
    return state


def _check_archive(path: Path) -> None:
    """Read every member and compare its CRC-32: torch's reader never does, so flipped bytes in the
    weights would load silently and give NaN predictions (about 13 ms for a 40 MB checkpoint)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, ...: a damaged archive either way
        raise CheckpointError(
            f"corrupt checkpoint: damaged zip archive ({type(exc).__name__}: {str(exc)[:200]}); "
            "use another copy", path
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"corrupt checkpoint: CRC mismatch in {bad} (the file was damaged after it was written); "
            "use another copy",
            path,
        )


def _is_finite(t: torch.Tensor) -> bool:
    if t.numel() == 0 or not (t.is_floating_point() or t.is_complex()):
        return True
    if t.is_complex():
        return bool(torch.isfinite(t).all())
    # min and max in one pass, without a tensor-sized temporary: a NaN or inf anywhere shows in them.
    # About 10x faster than isfinite(t).all() (~5 ms for 40 MB on one core).
    low, high = torch.aminmax(t)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def _check_finite_weights(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    bad = [name for name, t in weights.items() if not _is_finite(t)]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(
            f"the model weights hold NaN or infinite values ({bad[0]}{more}): the file is damaged or comes "
            "from a diverged run; use an earlier checkpoint",
            path,
        )


def check_compatible(state: Mapping[str, Any], path: Path, *, model: str, num_gloss: int, num_cat: int) -> None:
    """Refuse a checkpoint of another model or other class counts before any weights are touched."""
    if state["model"] != model:
        raise CheckpointError(
            f"checkpoint is of model '{state['model']}' ({state.get('model_class', '?')}), not '{model}'", path
        )
    for key, wanted in (("num_gloss", num_gloss), ("num_cat", num_cat)):
        if state[key] != wanted:
            raise CheckpointError(f"checkpoint has {key} = {state[key]}, this run has {wanted}", path)


# -- weights into a model ------------------------------------------------------------------------------

_SHOWN = 3  # names listed per kind of mismatch; the rest are counted


def load_model_state(
    model: torch.nn.Module,
    state: Mapping[str, Any],
    path: Path,
    *,
    settings: Any | None = None,
    input_dim: int | None = None,
) -> None:
    """Put the checkpoint's weights into ``model``, or say which weights do not fit and why.

    ``settings`` and ``input_dim``: what this run built ``model`` from; where they differ from the
    checkpoint's, the message names them ("--d-model 32 here, --d-model 64 in the checkpoint").
    """
    target = unwrap_model(model)
    weights = clean_state_dict(state["model_state"])
    problems = _mismatches(target.state_dict(), weights)
    if problems:
        hint = _settings_hint(state, settings, input_dim)
        raise CheckpointError(
            "weights do not fit this model's settings:\n  " + "\n  ".join(problems + [hint]), path
        )
    try:
        target.load_state_dict(weights)
    except RuntimeError as exc:  # mismatches the comparison above does not see (dtype, custom loaders)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()][1 : 1 + _SHOWN]
        raise CheckpointError("weights do not fit this model's settings:\n  " + "\n  ".join(lines), path) from None


def _mismatches(expected: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> list[str]:
    """A line per kind of difference: sizes first (they say the most), then missing and extra names."""

    def listed(items: list[str]) -> str:
        more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
        return "; ".join(items[:_SHOWN]) + more

    sizes = [
        f"{k} {list(weights[k].shape)} vs {list(t.shape)}"
        for k, t in expected.items()
        if k in weights and weights[k].shape != t.shape
    ]
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    lines = []
    if sizes:
        lines.append("sizes (checkpoint vs this model): " + listed(sizes))
    if missing:
        lines.append("missing from the checkpoint: " + listed(missing))
    if extra:
        lines.append("not in this model: " + listed(extra))
    return lines


#: Model settings that change no weight's name or size; left out of the hint.
_NOT_SIZES = {"dropout", "attention_dropout", "pretrained_backbone", "backbone_weights", "finetune_backbone"}


def _refused_object(exc: Exception) -> str:
    """What torch refused to unpickle ("GLOBAL torch.nn.modules.linear.Linear"), from its long message
    whose first line (with terminal colour codes) offers options slr does not take."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: (GLOBAL \S+)", text)
    if found:
        return f"an object of {found.group(1).removeprefix('GLOBAL ')}"
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


def _settings_hint(state: Mapping[str, Any], settings: Any | None, input_dim: int | None) -> str:
    from slr.models.registry import MODELS
    from slr.settings import stored_train_settings

    stored = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    # a setting added since the checkpoint was written is named with the value it had then
    stored = stored_train_settings(stored) if stored else stored
    model = state.get("model") if isinstance(state.get("model"), str) else getattr(settings, "model", None)
    spec = MODELS.get(model) if isinstance(model, str) else None
    names = [n for n in (spec.settings_group.model_fields if spec else ()) if n not in _NOT_SIZES and n in stored]
    if settings is None:  # the caller cannot say what it built the model from: show the checkpoint's
        if not names:
            return "the checkpoint stores no model settings to compare with"
        given = " ".join(_flag(n, stored[n]) for n in names)
        return f"the checkpoint's model settings: {given}; give the same ones"
    current = settings.model_dump(mode="json")
    diffs = [f"{_flag(n, current[n])} here, {_flag(n, stored[n])} in the checkpoint"
             for n in names if n in current and current[n] != stored[n]]
    if input_dim is not None and is_int(state.get("input_dim")) and state["input_dim"] != input_dim:
        diffs.append(f"clips of {input_dim} values per frame here, {state['input_dim']} in the checkpoint")
    if diffs:
        return "settings differ from the checkpoint's: " + "; ".join(diffs)
    return "the weights do not match the settings stored with them: the checkpoint was edited or damaged"


def _flag(name: str, value: Any) -> str:
    return setting(name, value)


# -- a trained model, ready to run ---------------------------------------------------------------------


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry compiled code beside the weights; checkpoints never do."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def build_trained_model(state: Mapping[str, Any], path: Path, device: torch.device | str = "cpu"):
    """The model a checkpoint loaded with ``need="model"`` describes, with its weights, in eval mode."""
    from slr.models.registry import build_model
    from slr.settings import TrainSettings, stored_train_settings

    from pydantic import ValidationError

    from slr.config import format_validation_error

    try:
        settings = TrainSettings.model_validate(stored_train_settings(state["settings"]))
    except ValidationError as exc:  # settings of another slr version, or an edited file
        problems = format_validation_error(exc, TrainSettings)
        raise CheckpointError(f"its stored settings are not valid for this slr: {problems}", path) from None
    model = build_model(state["model"], settings, state["input_dim"], state["num_gloss"], state["num_cat"])
    load_model_state(model, state, path, settings=settings, input_dim=state["input_dim"])
    return model.to(device).eval()


def load_trained_model(path: Path, device: torch.device | str = "cpu"):
    """A checkpoint's model, built from its stored settings and put in eval mode: (model, state)."""
    state = load_checkpoint(path, need="model")
    return build_trained_model(state, path, device), state



# -- the random streams -----------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Every random stream, as plain tensors, numbers and lists (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": _to_plain(random.getstate()),
        "numpy": {"keys": torch.from_numpy(keys.copy()), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])


def _to_plain(value):
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value):
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value



# -- the best checkpoint ----------------------------------------------------------------------------


def copy_checkpoint(source: Path, target: Path) -> None:
    """``target`` becomes a byte copy of ``source``, atomically: the best checkpoint is the last one
    copied (as timm's CheckpointSaver does), not the same state serialised a second time."""
    with open(source, "rb") as f:
        write_atomically(Path(target), lambda out: shutil.copyfileobj(f, out, 1 << 20))


# ``*_best.pt`` and what ``*_last.pt`` says of it agree, also after a kill between their writes.
#
# An improving epoch writes ``_last.pt`` and then copies it to ``_best.pt``. A process killed
# between the two (or during the copy, or on a full disk) leaves a ``_last.pt`` that names its own
# epoch as the best beside a ``_best.pt`` of an older epoch, or none. Nothing is lost: in that case
# the best weights are exactly those in ``_last.pt``. Before a run resumes from it, the best is
# therefore copied from it again, so that the run never reports a best checkpoint it does not
# have. ``_last.pt`` is always the one written first: a kill never leaves a ``_best.pt`` newer than
# the history that ``_last.pt`` carries on from.


def _held_epoch(best: Path) -> Optional[int]:
    try:
        return int(load_checkpoint(best, need="weights")["epoch"])
    except (SlrError, OSError, KeyError, TypeError, ValueError):
        return None  # absent, half-written or damaged: it holds no usable best


def reconcile_best(state: Mapping[str, Any], last: Path) -> list[str]:
    """Rewrite ``_best.pt`` from ``last`` when ``last`` names itself the best and ``_best.pt`` is
    not that epoch; return a note saying so (or saying why it cannot be done)."""
    best = best_beside(last)
    best_epoch, epoch = state.get("best_epoch") or 0, state.get("epoch") or 0
    if best is None or not best_epoch:
        return []
    held = _held_epoch(best)
    if held == best_epoch:
        return []
    what = f"holds epoch {held}" if held is not None else ("is missing" if not best.exists() else "is unreadable")
    if best_epoch == epoch and not state.get("step_in_epoch"):
        # The improving epoch's end: _last.pt holds exactly the best weights.
        copy_checkpoint(last, best)
        return [f"{best.name} {what}, but {Path(last).name} names epoch {best_epoch} as the best (the run was "
                f"stopped between the two writes): rewrote {best} from {Path(last).name}"]
    return [f"{best.name} {what}, but {Path(last).name} names epoch {best_epoch} as the best; its weights are "
            f"not in {Path(last).name} any more, so {best.name} stays as it is until a better epoch replaces it"]
