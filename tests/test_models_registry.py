"""The model registry: names, class names, builders driven by settings, parameter counts."""

from __future__ import annotations

import pytest
import torch

from slr.errors import ConfigError
from slr.models import MODELS, InceptionV3GRU, SignTransformer, build_model, count_parameters
import typing
from pathlib import Path

from slr.settings import ModelName, SmokeSettings, TrainSettings


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_model_name_has_a_spec_with_its_checkpoint_class_name():
    assert set(MODELS) == set(typing.get_args(ModelName)) == {"transformer", "iv3_gru"}
    for name, spec in MODELS.items():
        assert spec.name == name
    assert MODELS["transformer"].class_name == "SignTransformer"
    assert MODELS["iv3_gru"].class_name == "InceptionV3GRU"
    assert MODELS["transformer"].input_kind == "keypoints"
    assert MODELS["iv3_gru"].input_kind == "features"


def test_nothing_outside_the_registry_branches_on_a_model_name():
    """What differs per model lives in its registry entry; a name compared anywhere else is a
    second home for it (settings.py only lists the names the command line accepts)."""
    package = Path(__file__).resolve().parents[1] / "slr"
    allowed = {package / "models" / "registry.py", package / "settings.py"}
    found = []
    for path in package.rglob("*.py"):
        if path in allowed:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if '"transformer"' in code or '"iv3_gru"' in code or "'transformer'" in code or "'iv3_gru'" in code:
                found.append(f"{path.relative_to(package)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_checkpoint_filenames():
    from slr.engine.run_folder import checkpoint_name  # the one place a checkpoint's name is built

    assert checkpoint_name("transformer", "last") == "SignTransformer_last.pt"
    assert checkpoint_name("iv3_gru", "best") == "InceptionV3GRU_best.pt"
    with pytest.raises(ConfigError, match="unknown model"):
        checkpoint_name("lstm", "last")


@pytest.mark.parametrize(
    "name, input_dim, cls", [("transformer", 156, SignTransformer), ("iv3_gru", 2048, InceptionV3GRU)]
)
def test_both_models_build_from_default_train_settings(name, input_dim, cls):
    # Another model name in the settings does not matter: the registry reads the group's fields.
    settings = TrainSettings(model="transformer")
    model = build_model(name, settings, input_dim, num_gloss=105, num_cat=10).eval()
    assert type(model) is cls
    x = torch.randn(2, 5, input_dim)
    with torch.no_grad():
        gloss, cat = model(x, torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    assert gloss.shape == (2, 105) and cat.shape == (2, 10)


def test_settings_size_the_models():
    settings = SmokeSettings(
        model="transformer", d_model=32, num_heads=2, num_layers=1, ff_dim=48, dropout=0.3, pooling="cls",
        gru_hidden=12, gru_layers=3, gru_bidirectional=False,
    )
    transformer = build_model("transformer", settings, 20, 7, 4)
    assert transformer.pooling == "cls" and transformer.gloss_head.in_features == 32
    assert len(transformer.encoder.layers) == 1
    assert transformer.encoder.layers[0].linear1.out_features == 48
    assert transformer.head_dropout.p == 0.3

    gru = build_model("iv3_gru", settings, 20, 7, 4)
    assert (gru.gru.hidden_size, gru.gru.num_layers, gru.gru.bidirectional) == (12, 3, False)
    assert gru.gru.dropout == 0.3 and gru.head_dropout.p == 0.3  # dropout is shared by both models
    assert gru.gloss_head.out_features == 7 and gru.cat_head.out_features == 4


def test_frames_input_builds_the_backbone_for_iv3_gru_only():
    settings = SmokeSettings(model="iv3_gru", pretrained_backbone=False, gru_hidden=8)
    model = build_model("iv3_gru", settings, 2048, 5, 3, frames=True)
    assert model.backbone is not None
    total, trainable = count_parameters(model)
    assert trainable == total - sum(p.numel() for p in model.backbone.parameters())
    with pytest.raises(ConfigError, match="frames"):
        build_model("transformer", settings, 156, 5, 3, frames=True)


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="transformer, iv3_gru"):
        build_model("lstm", TrainSettings(model="transformer"), 10, 5, 3)


@pytest.mark.parametrize("name, input_dim", [("transformer", 156), ("iv3_gru", 2048)])
def test_count_parameters_matches_a_manual_sum(name, input_dim):
    model = build_model(name, TrainSettings(model="transformer"), input_dim, 105, 10)
    manual = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (manual, manual)
    model.gloss_head.requires_grad_(False)
    head = sum(p.numel() for p in model.gloss_head.parameters())
    assert count_parameters(model) == (manual, manual - head)


def test_default_parameter_counts_are_the_documented_ones():
    # docs/models.md quotes these; a changed default must update the docs too.
    settings = TrainSettings(model="transformer")  # with its convolution blocks (kernel 7)
    assert count_parameters(build_model("transformer", settings, 156, 105, 10))[0] == 436_605
    plain = TrainSettings(model="transformer", conv_kernel=0)
    assert count_parameters(build_model("transformer", plain, 156, 105, 10))[0] == 300_147
    guide = TrainSettings(model="transformer", d_model=256, num_heads=8, num_layers=4, ff_dim=1024)
    assert count_parameters(build_model("transformer", guide, 156, 105, 10))[0] == 3_229_299
    assert count_parameters(build_model("iv3_gru", settings, 2048, 105, 10))[0] == 4_842_611
    mean = TrainSettings(model="iv3_gru", gru_pooling="mean")
    assert count_parameters(build_model("iv3_gru", mean, 2048, 105, 10))[0] == 4_783_731


def test_the_registry_names_the_clip_keys_training_and_inference_read():
    from slr.settings import TrainSettings

    settings = TrainSettings(model="iv3_gru", kp_key="points", feature_key="feats")
    assert MODELS["iv3_gru"].clip_keys(settings) == ("feats", "points")  # the guide: X2048, else X
    assert MODELS["transformer"].clip_keys(settings) == ("points", None)
