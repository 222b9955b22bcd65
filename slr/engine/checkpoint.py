"""Checkpoint files: written atomically, read with ``weights_only=True``, checked before use.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (see
docs/architecture.md), so loading it never runs code from the file.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from slr.atomic import write_atomically
from slr.engine.checkpoint_schema import FORMAT, VERSION, Need, check_structure, describe, is_int
from slr.errors import CheckpointError, setting
from slr.models.state_keys import unwrapped_keys



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
