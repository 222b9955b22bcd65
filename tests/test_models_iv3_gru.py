"""InceptionV3GRU on feature clips: padding never matters, any length works, and it can learn."""

from __future__ import annotations

import pytest
import torch

import model_checks

from slr.models.iv3_gru import GRU_POOLING_MODES, InceptionV3GRU

DIM, GLOSS, CAT = 16, 5, 3
DIRECTIONS = pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
POOLINGS = pytest.mark.parametrize("pooling", GRU_POOLING_MODES)


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(pooling: str = "mean_last", bidirectional: bool = True, **kwargs) -> InceptionV3GRU:
    torch.manual_seed(0)
    sizes = dict(gru_hidden=8, gru_layers=2, gru_bidirectional=bidirectional, pooling=pooling)
    return InceptionV3GRU(DIM, GLOSS, CAT, **{**sizes, **kwargs}).eval()


def padded_batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return model_checks.padded_batch(lengths, DIM)


@POOLINGS
@DIRECTIONS
def test_a_clip_gives_the_same_logits_alone_and_inside_a_padded_batch(pooling, bidirectional):
    model = small_model(pooling, bidirectional)
    torch.manual_seed(1)
    x, mask = padded_batch([7, 19, 3, 11])
    model_checks.assert_alone_equals_in_batch(model, x, mask)


@POOLINGS
@DIRECTIONS
def test_values_in_padded_frames_change_nothing(pooling, bidirectional):
    model = small_model(pooling, bidirectional)
    x, mask = padded_batch([9, 4, 6])
    model_checks.assert_padding_changes_nothing(model, x, mask, junks=(1e4, float("nan")))


@POOLINGS
def test_the_mask_is_used(pooling):
    model = small_model(pooling)
    x, mask = padded_batch([10, 10])
    model_checks.assert_mask_is_used(model, x, mask)


@DIRECTIONS
def test_a_mask_with_holes_reads_the_real_frames_in_order(bidirectional):
    # Masked frames in the middle (dropped frames) are skipped, as if the clip never had them.
    model = small_model(bidirectional=bidirectional)
    x = torch.randn(1, 8, DIM)
    mask = torch.tensor([[True, False, True, True, False, False, True, True]])
    with torch.no_grad():
        holes = model(x, mask)[0]
        compact = model(x[:, mask[0]], None)[0]
    torch.testing.assert_close(holes, compact, atol=1e-5, rtol=0)


@POOLINGS
def test_a_fully_padded_clip_gives_finite_logits_and_leaves_others_alone(pooling):
    model = small_model(pooling)
    x, mask = padded_batch([6, 2])
    mask[1] = False
    with torch.no_grad():
        gloss, cat = model(x, mask)
        alone, _ = model(x[:1, :6], None)
    assert torch.isfinite(gloss).all() and torch.isfinite(cat).all()
    torch.testing.assert_close(gloss[0], alone[0], atol=1e-5, rtol=0)
    # An empty clip carries no evidence: its pooled vector is zero, so only the heads' biases speak.
    torch.testing.assert_close(gloss[1], model.gloss_head.bias)
    torch.testing.assert_close(cat[1], model.cat_head.bias)


def test_a_400_frame_clip_goes_through_the_default_sized_model():
    torch.manual_seed(0)
    model = InceptionV3GRU(2048, 105, 10).eval()
    x = torch.randn(1, 400, 2048)
    with torch.no_grad():
        gloss, cat = model(x, None)
    assert gloss.shape == (1, 105) and cat.shape == (1, 10) and torch.isfinite(gloss).all()


def test_feature_models_carry_no_backbone():
    # Checkpoints of feature models stay small: InceptionV3 is built only for frames input.
    model = InceptionV3GRU(2048, 105, 10)
    assert model.backbone is None
    assert not any(name.startswith("backbone") for name in model.state_dict())


def test_bad_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        InceptionV3GRU(DIM, GLOSS, CAT, pooling="attention")


@DIRECTIONS
def test_it_overfits_a_tiny_batch(bidirectional):
    torch.manual_seed(0)
    model = InceptionV3GRU(DIM, GLOSS, CAT, gru_hidden=32, gru_bidirectional=bidirectional, dropout=0.0)
    first, last = model_checks.overfit_tiny_batch(model, DIM, GLOSS, CAT, lr=1e-2)
    assert first > 1.5  # near chance (ln 5 + ln 3 = 2.7) at the start...
    assert last < 0.05  # ...and 8 clips memorised
