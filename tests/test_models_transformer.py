"""SignTransformer: padding never matters, any length works, and it can learn."""

from __future__ import annotations

import pytest
import torch

import model_checks

from slr.models.positional import SinusoidalPositions, sinusoidal_encoding
from slr.models.transformer import POOLING_MODES, SignTransformer

DIM, GLOSS, CAT = 12, 5, 3
SMALL = dict(d_model=32, num_heads=4, num_layers=2, ff_dim=64)
#: The plain transformer, and the same with convolution blocks before each layer (conv_block.py).
VARIANTS = {"plain": {}, "conv": dict(conv_kernel=5, conv_blocks=2)}
variants = pytest.mark.parametrize("variant", list(VARIANTS))


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(pooling: str, variant: str = "plain", **kwargs) -> SignTransformer:
    torch.manual_seed(0)
    return SignTransformer(DIM, GLOSS, CAT, pooling=pooling, **{**SMALL, **VARIANTS[variant], **kwargs}).eval()


def padded_batch(lengths: list[int], junk: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clips padded to the longest; padding holds ``junk`` (0 as collate_clips writes)."""
    return model_checks.padded_batch(lengths, DIM, junk)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_a_clip_gives_the_same_logits_alone_and_inside_a_padded_batch(pooling, variant, grad):
    # no_grad in eval mode is where PyTorch's encoder fast path would kick in.
    model = small_model(pooling, variant)
    x, mask = padded_batch([7, 19, 3, 11])
    model_checks.assert_alone_equals_in_batch(model, x, mask, grad=grad)


@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_values_in_padded_frames_change_nothing(pooling, variant):
    model = small_model(pooling, variant)
    torch.manual_seed(1)
    x, mask = padded_batch([9, 4, 6])
    model_checks.assert_padding_changes_nothing(model, x, mask, junks=(1e4, float("nan"), float("inf")))


@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_the_mask_is_used(pooling, variant):
    model = small_model(pooling, variant)
    x, mask = padded_batch([10, 10])
    model_checks.assert_mask_is_used(model, x, mask)


@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_a_fully_padded_clip_gives_no_nan_anywhere_and_leaves_others_alone(pooling, variant):
    model = small_model(pooling, variant)
    encoded = []
    # the encoder's last step, on both paths (with convolution blocks the layers are run one by one)
    model.encoder.norm.register_forward_hook(lambda module, args, out: encoded.append(out))
    x, mask = padded_batch([6, 1])
    mask[1] = False
    with torch.no_grad():
        gloss, cat = model(x, mask)
        alone, _ = model(x[:1, :6], None)
    assert torch.isfinite(gloss).all() and torch.isfinite(cat).all()
    # Attention over no key at all is NaN inside the encoder even where pooling hides it later.
    assert torch.isfinite(encoded[0]).all()
    torch.testing.assert_close(gloss[0], alone[0], atol=1e-5, rtol=0)
    if pooling != "cls":  # an empty clip pools to zeros: only the heads' biases speak
        torch.testing.assert_close(gloss[1], model.gloss_head.bias)

    model.train()
    gloss, cat = model(x, mask)
    (gloss.sum() + cat.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_frame_order_matters(pooling, variant):
    # Positions are encoded: a clip played backwards is a different input (signs differ by order).
    model = small_model(pooling, variant)
    x = torch.randn(1, 8, DIM)
    with torch.no_grad():
        assert not torch.allclose(model(x, None)[0], model(x.flip(1), None)[0], atol=1e-4)


def test_a_400_frame_clip_goes_through_the_default_sized_model():
    # The original model refused clips over 300 frames; positions here have no maximum.
    torch.manual_seed(0)
    model = SignTransformer(156, 105, 10).eval()
    x = torch.randn(2, 400, 156)
    mask = torch.ones(2, 400, dtype=torch.bool)
    mask[1, 350:] = False
    with torch.no_grad():
        gloss, cat = model(x, mask)
    assert gloss.shape == (2, 105) and cat.shape == (2, 10)
    assert torch.isfinite(gloss).all() and torch.isfinite(cat).all()


def test_positional_encoding_has_no_length_limit_and_no_parameters():
    positions = SinusoidalPositions(16)
    assert list(positions.parameters()) == [] and list(positions.buffers()) == []
    long = sinusoidal_encoding(5000, 16)
    assert long.shape == (5000, 16) and torch.isfinite(long).all()
    # Encodings are a prefix of each other, and distinct positions get distinct codes.
    torch.testing.assert_close(sinusoidal_encoding(10, 16), long[:10])
    assert torch.cdist(long[:300], long[:300]).add(torch.eye(300)).min() > 1e-3
    assert sinusoidal_encoding(4, 7).shape == (4, 7)  # odd widths too


def test_settings_are_checked():
    with pytest.raises(ValueError, match="pooling"):
        SignTransformer(DIM, GLOSS, CAT, pooling="attention")
    with pytest.raises(ValueError, match="divisible"):
        SignTransformer(DIM, GLOSS, CAT, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="mask shape"):
        small_model("mean")(torch.randn(2, 5, DIM), torch.ones(2, 6, dtype=torch.bool))


@variants
@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_it_overfits_a_tiny_batch(pooling, variant):
    torch.manual_seed(0)
    model = SignTransformer(DIM, GLOSS, CAT, pooling=pooling, dropout=0.0, **SMALL, **VARIANTS[variant])
    first, last = model_checks.overfit_tiny_batch(model, DIM, GLOSS, CAT, lr=3e-3)
    assert first > 1.5  # it starts near chance (ln 5 + ln 3 = 2.7)...
    assert last < 0.05  # ...and memorises 8 clips


def frames_by_frames_kept(model: SignTransformer, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[int, ...]]:
    """Shapes of the tensors autograd keeps for the backward that are [..., T, T] over the clip's frames."""
    kept: list[tuple[int, ...]] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        kept.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model(x, mask)
    frames = x.shape[1]
    return [shape for shape in kept if len(shape) >= 2 and shape[-2:] == (frames, frames)]


@variants
@pytest.mark.parametrize("attention_dropout, keeps_maps", [(0.0, False), (0.1, True)])
def test_training_keeps_no_attention_maps_without_attention_dropout(variant, attention_dropout, keeps_maps):
    """With the attention weights' dropout at 0 (slr's default) training runs the fused attention
    kernel, which keeps no [B, heads, T, T] maps: most of a long batch's step memory on a CPU.
    With it on, PyTorch's CPU has only the plain path, and the maps are kept."""
    model = small_model("mean", variant, dropout=0.1, attention_dropout=attention_dropout).train()
    x, mask = padded_batch([29, 17, 23])
    assert bool(frames_by_frames_kept(model, x, mask)) == keeps_maps


def test_attention_dropout_is_its_own_setting_and_defaults_to_the_dropout():
    # Train mode, every other dropout off: only the attention weights' dropout can make two passes differ.
    x, mask = padded_batch([9, 6])
    for attention_dropout, random in ((0.5, True), (0.0, False), (None, False)):
        model = small_model("mean", dropout=0.0, attention_dropout=attention_dropout).train()
        assert (not torch.equal(model(x, mask)[0], model(x, mask)[0])) == random, attention_dropout
    # Not given: as nn.TransformerEncoderLayer has it, the model's one dropout.
    assert {layer.self_attn.dropout for layer in small_model("mean", dropout=0.3).encoder.layers} == {0.3}
