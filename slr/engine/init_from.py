"""`slr train MODEL --init-from CKPT`: a new run that starts from a trained model's weights.

Only the weights come over: the optimizer, the schedule, the epoch, the random state and the
settings are the new run's own (from its flags, as any new run's). The model and the clips must be
laid out as the checkpoint's were (the same model, the same values per frame, the same layout
declaration, the same sizes); the gloss and category heads are the exception: a head whose class
count differs keeps the fresh weights the new model was built with, and the run says so.

`--freeze-encoder-epochs N` trains only the heads for the first N epochs (the encoder's gradients
are dropped before each optimizer step, so its weights, and AdamW's state for them, stay as they
were); from epoch N + 1 everything trains. It depends on the epoch's number alone, so a resumed
run freezes exactly as a run straight through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from slr.engine import checkpoint as ckpt
from slr.errors import CheckpointError, setting

#: The output layers, by the name both models give them, and the count that sizes each.
HEADS = {"gloss_head": "num_gloss", "cat_head": "num_cat"}
_HEAD_WORDS = {"gloss_head": "glosses", "cat_head": "categories"}


def init_from_checkpoint(model: torch.nn.Module, path: Path, *, model_name: str, input_dim: int,
                         keypoint_layout: Optional[dict[str, Any]], settings: Any) -> list[str]:
    """Put `path`'s weights into the freshly built `model`; returns the lines to show (the heads
    that start afresh). Refuses, naming the file, a checkpoint of another model or layout."""
    path = Path(path)
    state = ckpt.load_checkpoint(path, need="model")
    if state["model"] != model_name:
        raise CheckpointError(
            f"{setting('init_from')}: the checkpoint is of model '{state['model']}', this run trains '{model_name}'",
            path,
        )
    if state["input_dim"] != input_dim:
        raise CheckpointError(
            f"{setting('init_from')}: the checkpoint's model reads {state['input_dim']} values per frame, this run's "
            f"clips have {input_dim}: the clip layout must be the same",
            path,
        )
    if state.get("keypoint_layout") != keypoint_layout:
        ours = "none" if keypoint_layout is None else "another one"
        raise CheckpointError(
            f"{setting('init_from')}: trained with {'no' if state.get('keypoint_layout') is None else 'a'} "
            f"{setting('keypoint_layout')} declaration, this run has {ours}: the clip layout must be the same",
            path,
        )
    target = ckpt.unwrap_model(model)
    fresh = target.state_dict()
    weights = ckpt.clean_state_dict(state["model_state"])
    notes = []
    for head, count in HEADS.items():
        keys = [k for k in fresh if k.startswith(head + ".")]
        if keys and any(k in weights and weights[k].shape != fresh[k].shape for k in keys):
            for key in keys:  # the new model's own initial weights, so that only other sizes are refused
                weights[key] = fresh[key]
            notes.append(f"{setting('init_from')}: {head} re-initialised ({_count(state, count)} {_HEAD_WORDS[head]} "
                         f"in {path}, {_count_here(fresh, keys)} here); every other weight comes from the checkpoint")
    ckpt.load_model_state(model, {**state, "model_state": weights}, path, settings=settings, input_dim=input_dim)
    if not notes:
        notes.append(f"{setting('init_from')}: every weight from {path} (the optimizer, schedule and epoch start afresh)")
    return notes


def _count(state: Mapping[str, Any], name: str) -> Any:
    return state.get(name, "?")


def _count_here(fresh: Mapping[str, torch.Tensor], keys: list[str]) -> int:
    weight = next((fresh[k] for k in keys if k.endswith(".weight")), fresh[keys[0]])
    return int(weight.shape[0])


def frozen_parameters(model: torch.nn.Module, epoch: int, freeze_epochs: int) -> list[torch.nn.Parameter]:
    """The encoder's parameters (all but the heads') while `epoch` is among the first `freeze_epochs`, else none."""
    if epoch > freeze_epochs:
        return []
    target = ckpt.unwrap_model(model)
    return [p for name, p in target.named_parameters() if name.split(".", 1)[0] not in HEADS]


def hold_frozen_statistics(model: torch.nn.Module, epoch: int, freeze_epochs: int) -> None:
    """While the encoder is frozen, its normalisation layers with running statistics (the convolution
    blocks' batch norm) run in eval mode: frozen means the checkpoint's statistics too, and in
    training mode each batch would move them. Call after `model.train()`."""
    if epoch > freeze_epochs:
        return
    for name, module in ckpt.unwrap_model(model).named_modules():
        if name and name.split(".", 1)[0] not in HEADS and isinstance(getattr(module, "running_mean", None), torch.Tensor):
            module.eval()


def drop_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Before an optimizer step: AdamW skips a parameter without a gradient (no update, no weight decay)."""
    for parameter in parameters:
        parameter.grad = None
