"""InceptionV3 frames path of iv3_gru: random or local weights, frozen by default, no downloads in tests."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
import torchvision.models._api
from torchvision.models import inception_v3

from slr.errors import ConfigError
from slr.models.backbone import FEATURE_DIM, build_inception_backbone
from slr.models.iv3_gru import InceptionV3GRU
from slr.models.registry import count_parameters
from shown import raises_shown, shown

GLOSS, CAT = 5, 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails at once, as it would on a machine without network."""

    def refuse(url, *args, **kwargs):
        raise URLError(f"test: no network for {url}")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


def frames_model(**kwargs) -> InceptionV3GRU:
    torch.manual_seed(0)
    options = dict(gru_hidden=8, frames=True, pretrained_backbone=False, **kwargs)
    return InceptionV3GRU(123, GLOSS, CAT, **options)


@pytest.fixture(scope="module")
def frozen_model() -> InceptionV3GRU:
    return frames_model()


#: The smallest frame the backbone takes (H, W >= 75): what these tests assert does not depend on the
#: size, and a 299x299 frame costs ten times the CPU.
SIDE = 75


@pytest.fixture(scope="module")
def imagenet_like_state() -> dict[str, torch.Tensor]:
    """A full torchvision InceptionV3 state dict (aux classifier and fc included), random values.

    Built once for the module: tests read it (copy the dict to change an entry)."""
    torch.manual_seed(3)
    return inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()


# ---------------------------------------------------------------------------------------------
# Frames through the backbone
# ---------------------------------------------------------------------------------------------


def test_frames_go_through_the_backbone_and_padded_frames_never_do(frozen_model):
    model = frozen_model.eval()
    assert model.input_dim == FEATURE_DIM  # whatever width the data reported
    seen = []
    hook = model.backbone.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    torch.manual_seed(1)
    clip = torch.randn(1, 2, 3, SIDE, SIDE)
    try:
        with torch.no_grad():
            gloss, cat = model(clip, torch.tensor([[True, False]]))
            alone, _ = model(clip[:, :1], None)
    finally:
        hook.remove()
    assert gloss.shape == (1, GLOSS) and cat.shape == (1, CAT) and torch.isfinite(gloss).all()
    assert seen == [(1, FEATURE_DIM), (1, FEATURE_DIM)]  # the padded frame was never encoded
    torch.testing.assert_close(gloss, alone, atol=1e-5, rtol=0)


def test_a_training_step_leaves_a_frozen_backbone_untouched(frozen_model):
    model = frozen_model
    model.train()
    assert not model.backbone.training  # BatchNorm statistics must not move
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    gru_before = [p.detach().clone() for p in model.gru.parameters()]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    gloss, cat = model(torch.randn(1, 2, 3, SIDE, SIDE), None)
    loss = F.cross_entropy(gloss, torch.tensor([1])) + F.cross_entropy(cat, torch.tensor([2]))
    loss.backward()
    optimizer.step()

    assert all(p.grad is None for p in model.backbone.parameters())
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert any(not torch.equal(p, q) for p, q in zip(model.gru.parameters(), gru_before))


def test_frozen_backbone_counts_as_not_trainable(frozen_model):
    total, trainable = count_parameters(frozen_model)
    backbone = sum(p.numel() for p in frozen_model.backbone.parameters())
    assert backbone > 20_000_000  # InceptionV3 without aux classifier and fc: about 21.8M
    assert total == sum(p.numel() for p in frozen_model.parameters())
    assert trainable == total - backbone


def test_finetune_backbone_trains_it_and_lets_it_leave_eval_mode():
    model = frames_model(finetune_backbone=True)
    total, trainable = count_parameters(model)
    assert trainable == total
    model.train()
    assert model.backbone.training
    model.eval()
    assert not model.backbone.training


# ---------------------------------------------------------------------------------------------
# Where the weights come from
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.module.", "backbone."])
def test_local_weights_are_loaded_whatever_their_prefix(tmp_path, prefix, imagenet_like_state):
    source = imagenet_like_state
    saved = {prefix + key: value for key, value in source.items()}
    if prefix == "backbone.":  # a whole InceptionV3GRU state: the GRU's tensors come along
        saved["gru.weight_ih_l0"] = torch.zeros(3, 3)
    path = tmp_path / "inception.pt"
    torch.save(saved, path)

    net = build_inception_backbone(weights_path=path)

    loaded = net.state_dict()
    assert loaded  # and every tensor equals the file's, aux classifier and fc left out
    for key, value in loaded.items():
        assert torch.equal(value, source[key]), key
    assert not any(key.startswith(("AuxLogits.", "fc.")) for key in loaded)


def test_the_model_loads_local_weights_from_its_settings(tmp_path, imagenet_like_state):
    source = imagenet_like_state
    path = tmp_path / "weights.pt"
    torch.save(source, path)
    model = InceptionV3GRU(2048, GLOSS, CAT, gru_hidden=8, frames=True, backbone_weights=path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source[key]), key


def test_a_corrupt_weights_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(ConfigError, match="broken.pt") as caught:
        build_inception_backbone(weights_path=path)
    assert caught.value.path == path


def test_a_missing_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_inception_backbone(weights_path=tmp_path / "nowhere.pt")


def test_weights_of_another_network_are_a_config_error(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ConfigError, match="missing") as caught:
        build_inception_backbone(weights_path=path)
    assert "resnet.pt" in str(caught.value)


def test_a_misshapen_tensor_is_a_config_error(tmp_path, imagenet_like_state):
    state = dict(imagenet_like_state)
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="wrong shape.*Conv2d_1a_3x3"):
        build_inception_backbone(weights_path=path)


def test_a_file_that_is_not_a_state_dict_is_a_config_error(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ConfigError, match="not a state dict"):
        build_inception_backbone(weights_path=path)


def test_a_failed_download_says_how_to_go_on():
    with pytest.raises(ConfigError) as caught:
        build_inception_backbone(pretrained=True)
    message = str(caught.value)
    message = shown(message)
    assert "--backbone-weights" in message and "--no-pretrained-backbone" in message


def test_weights_file_and_no_pretrained_backbone_contradict(tmp_path):
    with raises_shown(ConfigError, "--no-pretrained-backbone"):
        build_inception_backbone(pretrained=False, weights_path=tmp_path / "w.pt")


@pytest.mark.slow  # a child process that imports torch
def test_torchvision_is_imported_only_to_build_the_backbone():
    """torchvision brings torch._dynamo (about 2 s of CPU): evaluating or exporting a keypoints or
    features model must start without it."""
    import subprocess
    import sys

    code = ("import sys\nimport slr.cli, slr.engine.run, slr.models.registry, slr.analysis.evaluate, slr.analysis.export\n"
            "print(sorted(set(sys.modules) & {'torchvision', 'torch._dynamo'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"], done.stdout
