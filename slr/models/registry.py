"""Model name → how to build it, which settings it reads, what input it takes, how its files are named.

The engine builds every model through ``build_model`` so that a settings object (TrainSettings,
SmokeSettings, or the settings stored in a checkpoint) is the only description of a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel
from torch import nn

from slr.errors import ConfigError
from slr.models.iv3_gru import InceptionV3GRU
from slr.models.transformer import SignTransformer
from slr.settings import MODEL_CLASS_NAMES, IV3GRUSettings, Settings, TransformerSettings, model_settings

#: build(settings, input_dim, num_gloss, num_cat, frames) -> model
Builder = Callable[[BaseModel, int, int, int, bool], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, as on the command line (`slr train transformer`)
    class_name: str  # used in checkpoint file names (`SignTransformer_last.pt`)
    settings_group: type[Settings]  # the settings fields that size the model
    input_kind: Literal["keypoints", "features"]  # what the clips must hold
    build: Builder


def _build_transformer(settings: BaseModel, input_dim: int, num_gloss: int, num_cat: int, frames: bool) -> nn.Module:
    if frames:
        raise ConfigError("frames input is only for iv3_gru; the transformer reads keypoints")
    sizes = model_settings(settings, TransformerSettings)
    return SignTransformer(
        input_dim,
        num_gloss,
        num_cat,
        d_model=sizes.d_model,
        num_heads=sizes.num_heads,
        num_layers=sizes.num_layers,
        ff_dim=sizes.ff_dim,
        dropout=sizes.dropout,
        pooling=sizes.pooling,
        motion_features=sizes.motion_features,
    )


def _build_iv3_gru(settings: BaseModel, input_dim: int, num_gloss: int, num_cat: int, frames: bool) -> nn.Module:
    sizes = model_settings(settings, IV3GRUSettings)
    # `dropout` is one setting shared by both models; it lives in the transformer's group.
    dropout = getattr(settings, "dropout", TransformerSettings.model_fields["dropout"].default)
    return InceptionV3GRU(
        input_dim,
        num_gloss,
        num_cat,
        gru_hidden=sizes.gru_hidden,
        gru_layers=sizes.gru_layers,
        gru_bidirectional=sizes.gru_bidirectional,
        dropout=dropout,
        frames=frames,
        pretrained_backbone=sizes.pretrained_backbone,
        backbone_weights=sizes.backbone_weights,
        finetune_backbone=sizes.finetune_backbone,
    )


MODELS: dict[str, ModelSpec] = {
    "transformer": ModelSpec(
        name="transformer",
        class_name=MODEL_CLASS_NAMES["transformer"],
        settings_group=TransformerSettings,
        input_kind="keypoints",
        build=_build_transformer,
    ),
    "iv3_gru": ModelSpec(
        name="iv3_gru",
        class_name=MODEL_CLASS_NAMES["iv3_gru"],
        settings_group=IV3GRUSettings,
        input_kind="features",
        build=_build_iv3_gru,
    ),
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_model(
    name: str, settings: BaseModel, input_dim: int, num_gloss: int, num_cat: int, frames: bool = False
) -> nn.Module:
    """Build model ``name`` sized by ``settings`` (any settings holding that model's group fields)."""
    return model_spec(name).build(settings, input_dim, num_gloss, num_cat, frames)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; a frozen backbone counts as not trainable."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def checkpoint_filename(name: str, which: str) -> str:
    """``checkpoint_filename("transformer", "last")`` → ``"SignTransformer_last.pt"``."""
    return f"{model_spec(name).class_name}_{which}.pt"
