"""What evaluation, prediction and export share: a checkpoint's model and its input pipeline.

The clips go through exactly what training's validation split went through: the same npz key
(and fallback), the same width, the same `--max-frames` / `--long-clips` policy (centred, never
random) and the same per-clip normalisation, left-hand mirror and hand centring
(`slr.data.prepare`, the description an export's metadata carries too), then padding
with a mask, so a clip gives the same answer alone or inside a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from slr.data.augment import declared_layout
from slr.data.prepare import preprocessing, transform_for
from slr.data.layout_file import check_declaration
from slr.data.dataset import ClipBatch, ClipDataset
from slr.engine import checkpoint as ckpt
from slr.errors import CheckpointError
from slr.models.registry import model_spec
from slr.settings import TrainSettings, stored_train_settings


@dataclass
class LoadedModel:
    """A checkpoint's model in eval mode, with everything needed to feed it clips."""

    path: Path
    model: torch.nn.Module
    state: dict[str, Any]
    settings: TrainSettings
    device: torch.device
    input_kind: str  # "keypoints" or "features"
    key: str
    fallback_key: Optional[str]
    input_dim: int
    num_gloss: int
    num_cat: int

    @property
    def name(self) -> str:
        return self.state["model"]

    @property
    def model_class(self) -> str:
        return self.state.get("model_class", self.name)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """What a clip goes through before this model sees it, resolved for it (slr.data.prepare): the
        one description evaluation, prediction and an export's metadata all follow."""
        # a layout file's declaration travels in the checkpoint: the file itself is not needed
        return preprocessing(self.settings, self.input_kind, self.input_dim, self.state.get("keypoint_layout"))

    def dataset_options(self) -> dict[str, Any]:
        """ClipDataset options for evaluation-time reading of this model's clips."""
        prep = self.preprocessing
        return dict(
            key=self.key,
            fallback_key=self.fallback_key,
            dim=self.input_dim,
            # shortening, then the transform: the order slr.data.prepare.prepare_clip applies them in
            max_frames=prep["max_frames"],
            long_clips=prep["long_clips"],
            train=False,
            seed=self.settings.seed,
            transform=transform_for(prep),
        )

    @torch.no_grad()
    def logits(self, batch: ClipBatch) -> tuple[torch.Tensor, torch.Tensor]:
        gloss, cat = self.model(batch.x.to(self.device), batch.mask.to(self.device))
        return gloss.float().cpu(), cat.float().cpu()


def is_frames_checkpoint(state: dict[str, Any]) -> bool:
    """A model with the InceptionV3 backbone inside (frames input) rather than stored features."""
    if state.get("frames"):
        return True
    return any(str(k).split(".", 1)[0] == "backbone" for k in (state.get("model_state") or {}))


def load_model(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint for inference; frames-input checkpoints are refused with a message."""
    path = Path(path)
    # need="model": every entry building the model uses is present and of the right type, and the
    # weights are finite, so nothing below fails with a KeyError or TypeError.
    state = ckpt.load_checkpoint(path, need="model")
    if is_frames_checkpoint(state):
        raise CheckpointError(
            "this model reads video frames through its InceptionV3 backbone; evaluate, predict and "
            "export take models trained on keypoints or stored features (X2048) only",
            path,
        )
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if state.get("keypoint_layout") is not None:  # an edited declaration is refused here, naming the file
        source = f"{path} (its stored keypoint layout)"
        state["keypoint_layout"] = check_declaration(state["keypoint_layout"], source)
        declared_layout(state["keypoint_layout"], int(state["input_dim"]), source)
    model = ckpt.build_trained_model(state, path, device)
    settings = TrainSettings.model_validate(stored_train_settings(state["settings"]))
    spec = model_spec(state["model"])
    key, fallback_key = spec.clip_keys(settings)  # as in training
    return LoadedModel(
        path=path,
        model=model,
        state=state,
        settings=settings,
        device=device,
        input_kind=spec.input_kind,
        key=key,
        fallback_key=fallback_key,
        input_dim=int(state["input_dim"]),
        num_gloss=int(state["num_gloss"]),
        num_cat=int(state["num_cat"]),
    )


def pick_device(preference: str) -> torch.device:
    from slr.engine.hardware import select_device

    return select_device(preference).device


def dataset_from_arrays(loaded: LoadedModel, arrays: Sequence[np.ndarray], names: Sequence[str]) -> ClipDataset:
    """Clips already read (prediction) wrapped as an unlabelled dataset with the evaluation pipeline."""
    zeros = np.zeros(len(arrays), dtype=np.int64)
    return ClipDataset.from_arrays(list(arrays), zeros, zeros, names=list(names), **loaded.dataset_options())
