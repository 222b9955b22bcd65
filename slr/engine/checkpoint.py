"""Checkpoint files: written atomically, read with ``weights_only=True``, checked before use.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (see
docs/architecture.md), so loading it never runs code from the file.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from slr.engine.atomic import write_atomically
from slr.errors import CheckpointError
from slr.models.state_keys import unwrapped_keys

FORMAT = "slr-checkpoint"
VERSION = 1


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read an slr checkpoint; anything that is not one is refused with a message, never executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found" if not path.exists() else "not a file", path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if not head.startswith(b"\x80"):  # neither torch's zip format nor a pickle stream
            raise CheckpointError("not a readable checkpoint (not a PyTorch file; empty, text or truncated?)", path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).split("\n")[0][:200]
        raise CheckpointError(
            "refused: the file holds pickled Python objects that are not plain tensors and containers "
            f"({detail}). slr loads checkpoints with weights_only=True and never runs code from them",
            path,
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        detail = str(exc).split("\n")[0][:200]
        raise CheckpointError(f"not a readable checkpoint (truncated or corrupt?): {detail}", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("not an slr checkpoint (no 'format: slr-checkpoint' entry)", path)
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"written by a newer slr (format version {state['version']})", path)
    return state


def check_compatible(state: Mapping[str, Any], path: Path, *, model: str, num_gloss: int, num_cat: int) -> None:
    """Refuse a checkpoint of another model or other class counts before any weights are touched."""
    if state["model"] != model:
        raise CheckpointError(
            f"checkpoint is of model '{state['model']}' ({state['model_class']}), not '{model}'", path
        )
    for key, wanted in (("num_gloss", num_gloss), ("num_cat", num_cat)):
        if state[key] != wanted:
            raise CheckpointError(f"checkpoint has {key} = {state[key]}, this run has {wanted}", path)


def load_model_state(model: torch.nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        unwrap_model(model).load_state_dict(clean_state_dict(state["model_state"]))
    except RuntimeError as exc:
        first = str(exc).split("\n")[0]
        raise CheckpointError(f"weights do not fit this model's settings: {first}", path) from None


def load_trained_model(path: Path, device: torch.device | str = "cpu"):
    """A checkpoint's model, built from its stored settings and put in eval mode: (model, state)."""
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    state = load_checkpoint(path)
    try:
        settings = TrainSettings.model_validate(state["settings"])
    except Exception as exc:  # pydantic ValidationError: settings of another slr version
        raise CheckpointError(f"its stored settings are not valid for this slr: {exc}", path) from None
    model = build_model(state["model"], settings, state["input_dim"], state["num_gloss"], state["num_cat"])
    load_model_state(model, state, path)
    return model.to(device).eval(), state
