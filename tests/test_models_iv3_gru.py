"""InceptionV3GRU on feature clips: padding never matters, any length works, and it can learn."""

from __future__ import annotations

import pytest
import torch

import model_checks

from slr.models.iv3_gru import GRU_POOLING_MODES, InceptionV3GRU
from slr.models.masking import standardise_clips

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


@pytest.mark.parametrize("feature_norm", ["clip", "none"])
def test_clip_norm_takes_out_each_clips_own_offset_and_scale(feature_norm):
    # Each clip of a padded batch brightened and stretched by its own amount: with "clip" the
    # model sees the same standardised features; with "none" it does not (so the check can fail).
    model = small_model(feature_norm=feature_norm)
    x, mask = padded_batch([9, 4, 6])
    scale = torch.tensor([3.0, 0.2, 7.0]).view(-1, 1, 1)
    offset = torch.tensor([5.0, -1.0, 0.5]).view(-1, 1, 1)
    with torch.no_grad():
        plain, _ = model(x, mask)
        moved, _ = model(x * scale + offset, mask)
    if feature_norm == "clip":
        torch.testing.assert_close(moved, plain, atol=1e-4, rtol=0)
    else:
        assert (moved - plain).abs().max() > 1e-2


def test_clip_statistics_are_summed_in_float32_so_half_precision_cannot_overflow():
    # 64 frames x 2048 values near 100 sum to about 1.3e7, far past float16's 65,504: CUDA autocast
    # hands the GRU half-precision backbone outputs like these.
    torch.manual_seed(0)
    h = (100 + torch.randn(2, 64, 2048)).half()
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 40:] = False
    out = standardise_clips(h, mask)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    expected = standardise_clips(h.float(), mask)
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=0)
    assert (out[1, 40:] == 0).all()  # padding stays zero
    real = expected[1, :40]
    assert abs(float(real.mean())) < 1e-4 and abs(float(real.std(unbiased=False)) - 1) < 1e-3


def test_a_constant_clip_is_shifted_not_divided_by_zero():
    h = torch.full((1, 5, DIM), 2.5)
    out = standardise_clips(h, torch.ones(1, 5, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))


def test_bad_feature_norm_is_refused():
    with pytest.raises(ValueError, match="feature_norm"):
        InceptionV3GRU(DIM, GLOSS, CAT, feature_norm="frame")


@pytest.mark.parametrize("stored", [{"feature_norm": "clip", "gru_pooling": "mean"},
                                    {"feature_norm": "none", "gru_pooling": "mean_last"},
                                    {"feature_norm": "clip", "gru_pooling": "last"}, None],
                         ids=["clip-mean", "none-mean_last", "clip-last", "before-the-settings"])
def test_a_checkpoint_rebuilds_the_norm_and_pooling_it_was_trained_with(tmp_path, stored):
    # A checkpoint written before --feature-norm and --gru-pooling existed (no such keys in its
    # settings) fed the GRU raw features and pooled mean and last states: it must be rebuilt that
    # way, not with today's defaults, or its weights do not fit and its answers change.
    from slr.engine.checkpoint import load_trained_model, make_checkpoint, save_checkpoint
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    settings = TrainSettings(model="iv3_gru", num_gloss=GLOSS, num_cat=CAT, gru_hidden=8, gru_layers=1,
                             **(stored or {}))
    torch.manual_seed(0)
    values = settings.model_dump(mode="json")
    if stored is None:  # what an slr of before the settings built, and the settings it stored
        net = InceptionV3GRU(DIM, GLOSS, CAT, gru_hidden=8, gru_layers=1, feature_norm="none", pooling="mean_last")
        for name in ("feature_norm", "gru_pooling"):
            values.pop(name)
    else:
        net = build_model("iv3_gru", settings, DIM, GLOSS, CAT)
        assert (net.feature_norm, net.pooling) == (stored["feature_norm"], stored["gru_pooling"])
    path = tmp_path / "InceptionV3GRU_best.pt"
    save_checkpoint(make_checkpoint("model", model="iv3_gru", model_class="InceptionV3GRU", input_dim=DIM,
                                    num_gloss=GLOSS, num_cat=CAT, settings=values, model_state=net.state_dict(),
                                    class_names={"gloss": {}, "cat": {}}, epoch=1, best_metric=0.0, history=[]),
                    path)
    loaded, _ = load_trained_model(path)
    assert (loaded.feature_norm, loaded.pooling) == (net.feature_norm, net.pooling)
    x, mask = padded_batch([7, 3])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x * 4 + 2, mask)[0], net.eval()(x * 4 + 2, mask)[0])


def test_the_defaults_are_clip_norm_and_mean_last_pooling():
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    net = build_model("iv3_gru", TrainSettings(model="iv3_gru", num_gloss=GLOSS, num_cat=CAT), DIM, GLOSS, CAT)
    assert (net.feature_norm, net.pooling) == ("clip", "mean_last")
    assert net.gloss_head.in_features == 2 * 2 * 256  # mean and final states, both directions each
