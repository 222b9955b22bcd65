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
from slr.models.memory_estimate import check_fits_memory, gru_parameters, transformer_parameters
from slr.models.transformer import SignTransformer
from slr.settings import IV3GRUSettings, Settings, TransformerSettings, model_settings

#: build(settings, input_dim, num_gloss, num_cat, frames) -> model
Builder = Callable[[BaseModel, int, int, int, bool], nn.Module]


#: bytes_per_sample(settings, input_dim, frames) -> a rough upper bound of one clip's training memory
MemoryEstimate = Callable[[BaseModel, int, int], int]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that differs from one model to another; nothing else in slr branches on a name."""

    name: str  # registry name, as on the command line (`slr train transformer`)
    class_name: str  # used in checkpoint file names (`SignTransformer_last.pt`)
    settings_group: type[Settings]  # the settings fields that size the model
    input_kind: Literal["keypoints", "features"]  # what the clips must hold (and the data flags' prefix)
    clip_key_setting: str  # the setting naming the clips' array (`kp_key`, `feature_key`)
    fallback_key_setting: str | None  # the setting of the key read when clips lack the first one
    preview_width: int  # values per frame `slr hwinfo` assumes (FSL-105 keypoints, InceptionV3 features)
    bytes_per_sample: MemoryEstimate  # the memory rule of --auto-batch-size on CPU and MPS
    parameter_count: Callable[..., int]  # (settings, input_dim, num_gloss, num_cat, frames): known before building
    onnx_exporters: tuple[str, ...]  # torch.onnx exporters, the one that works best first
    build: Builder

    def clip_keys(self, settings: BaseModel) -> tuple[str, str | None]:
        """The array this model reads from a clip, and the one read when a clip lacks it (training
        and inference alike)."""
        fallback = getattr(settings, self.fallback_key_setting) if self.fallback_key_setting else None
        return getattr(settings, self.clip_key_setting), fallback


def _transformer_bytes(settings: BaseModel, input_dim: int, frames: int) -> int:
    d, ff, heads, layers = settings.d_model, settings.ff_dim, settings.num_heads, settings.num_layers
    per_layer = frames * (10 * d + 2 * ff) + 3 * heads * frames * frames
    if getattr(settings, "conv_kernel", 0):  # each block keeps ~5 activations 2d wide per frame
        per_layer += settings.conv_blocks * frames * 10 * d
    floats = frames * input_dim + layers * per_layer
    return int(floats * 4 * 2)  # float32, and gradients of the same size


def _iv3_gru_bytes(settings: BaseModel, input_dim: int, frames: int) -> int:
    h = settings.gru_hidden * (2 if settings.gru_bidirectional else 1)
    floats = frames * input_dim * 2 + settings.gru_layers * frames * h * 8
    return int(floats * 4 * 2)


def _late_dropout(settings: BaseModel) -> float:
    """A training setting (LateDropoutSettings); settings without it (smoke) build the model without."""
    return float(getattr(settings, "late_dropout", 0.0))


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
        attention_dropout=sizes.attention_dropout,
        pooling=sizes.pooling,
        motion_features=sizes.motion_features,
        conv_kernel=sizes.conv_kernel,
        conv_blocks=sizes.conv_blocks,
        late_dropout=_late_dropout(settings),
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
        late_dropout=_late_dropout(settings),
        feature_norm=sizes.feature_norm,
        pooling=sizes.gru_pooling,
    )


MODELS: dict[str, ModelSpec] = {
    "transformer": ModelSpec(
        name="transformer",
        class_name="SignTransformer",
        settings_group=TransformerSettings,
        input_kind="keypoints",
        clip_key_setting="kp_key",
        fallback_key_setting=None,
        preview_width=156,
        bytes_per_sample=_transformer_bytes,
        parameter_count=transformer_parameters,
        # dynamo handles the attention mask's shapes; the older exporter is the fallback
        onnx_exporters=("dynamo", "torchscript-based"),
        build=_build_transformer,
    ),
    "iv3_gru": ModelSpec(
        name="iv3_gru",
        class_name="InceptionV3GRU",
        settings_group=IV3GRUSettings,
        input_kind="features",
        clip_key_setting="feature_key",
        fallback_key_setting="kp_key",  # the guide: features in X2048, or X
        preview_width=2048,
        bytes_per_sample=_iv3_gru_bytes,
        parameter_count=gru_parameters,
        onnx_exporters=("torchscript-based", "dynamo"),
        build=_build_iv3_gru,
    ),
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_model(
    name: str, settings: BaseModel, input_dim: int, num_gloss: int, num_cat: int, frames: bool = False,
    training: bool = False,
) -> nn.Module:
    """Build model ``name`` sized by ``settings`` (any settings holding that model's group fields).

    A model that cannot fit in the machine's memory (to run it, or with ``training`` to train it) is
    refused before any of it is allocated (slr/models/memory_estimate.py)."""
    spec = model_spec(name)
    check_fits_memory(spec, settings, input_dim, num_gloss, num_cat, frames, training)
    return spec.build(settings, input_dim, num_gloss, num_cat, frames)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; a frozen backbone counts as not trainable."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
