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
    """Read an slr checkpoint; anything that is not one is refused with a message, never executed.

    Refused too: a file damaged after it was written (zip CRCs) and weights holding NaN or inf.
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
        detail = str(exc).split("\n")[0][:200]
        raise CheckpointError(
            "refused: the file holds pickled Python objects that are not plain tensors and containers "
            f"({detail}). slr loads checkpoints with weights_only=True and never runs code from them",
            path,
        ) from None
    except Exception as exc:  # noqa: BLE001 - a malformed file can make torch's reader fail in any way
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
    if not _is_int(version):
        raise CheckpointError(f"damaged checkpoint: 'version' should be an integer, not {_describe(version)}", path)
    if version > VERSION:
        raise CheckpointError(f"written by a newer slr (format version {version})", path)
    if isinstance(state.get("model_state"), dict):
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


def _check_finite_weights(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    bad = [
        name for name, t in weights.items()
        if isinstance(t, torch.Tensor)
        and (t.is_floating_point() or t.is_complex())
        and not bool(torch.isfinite(t).all())
    ]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(
            f"the model weights hold NaN or infinite values ({bad[0]}{more}): the file is damaged or comes "
            "from a diverged run; use an earlier checkpoint",
            path,
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


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
