"""A model too large for the machine is refused by one message before any of it is allocated; every
size setting has a bound, on the command line and in a checkpoint's stored settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slr.engine.checkpoint import save_checkpoint
from slr.engine.checkpoint import make_checkpoint
from slr.errors import ConfigError
from slr.models.memory_estimate import INCEPTION_V3_PARAMETERS, check_fits_memory, machine_memory
from slr.models.registry import build_model, count_parameters, model_spec
from slr.settings import TrainSettings


def slr(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("model, sizes, input_dim", [
    ("transformer", dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32), 156),
    ("transformer", dict(d_model=24, num_heads=3, num_layers=3, ff_dim=40, pooling="cls", motion_features=True), 20),
    ("transformer", dict(d_model=16, num_heads=4, num_layers=2, ff_dim=16, conv_kernel=5, conv_blocks=3), 33),
    ("iv3_gru", dict(gru_hidden=8, gru_layers=1), 64),
    ("iv3_gru", dict(gru_hidden=12, gru_layers=3, gru_bidirectional=False), 50),
    ("iv3_gru", dict(gru_hidden=8, gru_layers=2, gru_pooling="mean_last"), 40),
    ("iv3_gru", dict(gru_hidden=8, gru_layers=1, gru_pooling="last", gru_bidirectional=False), 40),
])
def test_the_parameter_count_is_known_before_building(model, sizes, input_dim):
    settings = TrainSettings(model=model, num_gloss=7, num_cat=3, **sizes)
    spec = model_spec(model)
    built, _ = count_parameters(build_model(model, settings, input_dim, 7, 3))
    assert spec.parameter_count(settings, input_dim, 7, 3, False) == built


def test_the_backbone_is_counted_as_it_is_built():
    from slr.models.backbone import build_inception_backbone

    settings = TrainSettings(model="iv3_gru", gru_hidden=8, gru_layers=1, num_gloss=5, num_cat=2)
    head = model_spec("iv3_gru").parameter_count(settings, 2048, 5, 2, False)
    backbone = sum(p.numel() for p in build_inception_backbone(pretrained=False).parameters())
    assert backbone == INCEPTION_V3_PARAMETERS
    assert model_spec("iv3_gru").parameter_count(settings, 2048, 5, 2, True) == head + backbone


def test_what_does_not_fit_is_refused_naming_its_sizes():
    settings = TrainSettings(model="transformer", d_model=4096, num_heads=8, num_layers=64, ff_dim=16384)
    spec = model_spec("transformer")
    parameters = spec.parameter_count(settings, 156, 105, 10, False)
    # 4 bytes a parameter to run it, 16 to train it: between the two, only training is refused
    available = parameters * 8
    assert check_fits_memory(spec, settings, 156, 105, 10, False, training=False, available=available) == parameters * 4
    with pytest.raises(ConfigError) as caught:
        check_fits_memory(spec, settings, 156, 105, 10, False, training=True, available=available)
    message = str(caught.value)
    assert f"has {parameters:,} parameters" in message and "\n" not in message
    assert "{{num_layers=64}}" in message and "{{d_model=4096}}" in message and "{{num_gloss=105}}" in message


def test_the_machines_memory_is_read():
    assert machine_memory() > 2**28


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from slr.data.synthetic import write_synthetic_dataset

    directory = tmp_path_factory.mktemp("memory") / "clips"
    write_synthetic_dataset(directory, 8, num_gloss=5, num_cat=2, feature_dim=12, min_frames=4, max_frames=6)
    return directory


@pytest.mark.slow  # starts slr in a child process
def test_train_refuses_a_model_larger_than_the_machine_before_building_it(clip_dir, tmp_path):
    out = tmp_path / "run"
    result = slr("train", "transformer", "--keypoints-train", clip_dir, "--keypoints-val", clip_dir, "--num-gloss", 5,
                 "--num-cat", 2, "--d-model", 16384, "--num-heads", 8, "--num-layers", 1024, "--epochs", 1,
                 "--output-dir", out)
    assert result.returncode == 2, result.stderr
    assert "more than this machine's" in result.stderr and "--num-layers 1024" in result.stderr
    assert "Traceback" not in result.stderr and not list(out.glob("*.pt"))


@pytest.mark.slow  # starts slr in a child process
@pytest.mark.parametrize("flag, value", [("--num-layers", 100000), ("--d-model", 100000000), ("--ff-dim", 10**10),
                                         ("--gru-hidden", 10**9), ("--num-gloss", 10**9)])
def test_each_size_flag_has_a_bound(clip_dir, tmp_path, flag, value):
    result = slr("train", "transformer", "--keypoints-train", clip_dir, "--keypoints-val", clip_dir, flag, value,
                 "--output-dir", tmp_path / "run")
    assert result.returncode == 2 and f"{flag}: Input should be less than or equal to" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def _checkpoint(path: Path, **stored) -> Path:
    settings = TrainSettings(model="transformer", num_gloss=5, num_cat=2, d_model=16, num_heads=2, num_layers=1,
                             ff_dim=32)
    net = build_model("transformer", settings, 12, 5, 2)
    save_checkpoint(make_checkpoint(
        "model", model="transformer", model_class="SignTransformer", input_dim=12, num_gloss=5, num_cat=2,
        settings={**settings.model_dump(mode="json"), **stored}, model_state=net.state_dict(),
        class_names={"gloss": {}, "cat": {}}, epoch=1, best_metric=0.0, history=[]), path)
    return path


@pytest.mark.slow  # starts slr in a child process
@pytest.mark.parametrize("stored, said", [
    (dict(num_layers=1_000_000), "--num-layers: Input should be less than or equal to 1024"),
    (dict(d_model=16384, num_heads=8, num_layers=1024, ff_dim=262144), "more than this machine's"),
])
def test_a_checkpoint_whose_stored_sizes_cannot_fit_is_refused(clip_dir, tmp_path, stored, said):
    torch.manual_seed(0)
    checkpoint = _checkpoint(tmp_path / "SignTransformer_best.pt", **stored)
    result = slr("evaluate", checkpoint, "--keypoints", clip_dir)
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") <= 2
