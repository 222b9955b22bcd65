"""Convolution blocks in the transformer, and late dropout: padding stays invisible in training
too, old checkpoints load, mismatching ones are refused by name, late dropout is off before its
epoch and on after, and a run with it resumes exactly."""

from __future__ import annotations

import pytest
import torch

import model_checks

from slr.engine import checkpoint as ckpt
from slr.engine.checkpoint import make_checkpoint
from slr.engine.run import resume, train
from slr.engine.checkpoint import capture_rng
from slr.errors import CheckpointError
from slr.models.conv_block import ConvBlock, MaskedBatchNorm
from slr.models.iv3_gru import InceptionV3GRU
from slr.models.late_dropout import LateDropout, switch_late_dropout
from slr.models.registry import build_model, count_parameters
from slr.models.transformer import SignTransformer
from slr.settings import ResumeSettings, TrainSettings
from shown import shown

from test_amp_paths import COMMON, force_amp  # noqa: F401  (force_amp: a fixture)
from test_training import TINY, assert_same_history, settings

DIM = 12
SMALL = dict(d_model=32, num_heads=4, num_layers=2, ff_dim=64)

pytestmark = pytest.mark.usefixtures("one_thread")


def conv_model(**kwargs) -> SignTransformer:
    torch.manual_seed(0)
    return SignTransformer(DIM, 5, 3, **{**SMALL, "conv_kernel": 5, "conv_blocks": 2, "dropout": 0.0, **kwargs})


# -- convolution blocks ----------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_padding_changes_nothing_in_training_mode_either(pooling):
    """Batch statistics over real frames only: more padding in a batch moves neither the outputs
    nor the running statistics (nn.BatchNorm1d would count the padded frames)."""
    model = conv_model(pooling=pooling).train()
    x, mask = model_checks.padded_batch([7, 12, 4], DIM)
    longer = torch.cat([x, torch.zeros(3, 9, DIM)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 9, dtype=torch.bool)], dim=1)
    other = conv_model(pooling=pooling).train()
    a, b = model(x, mask), other(longer, longer_mask)
    for left, right in zip(a, b):
        torch.testing.assert_close(left, right, atol=1e-5, rtol=0)
    for (name, kept), (_, moved) in zip(model.named_buffers(), other.named_buffers()):
        torch.testing.assert_close(kept, moved, atol=1e-6, rtol=0, msg=name)
    assert any(not torch.equal(b, torch.zeros_like(b)) for n, b in model.named_buffers() if "running_mean" in n)


def test_masked_batch_norm_without_a_real_frame_keeps_its_running_statistics():
    norm = MaskedBatchNorm(4).train()
    norm(torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool))
    before = norm.running_mean.clone(), norm.running_var.clone()
    out = norm(torch.randn(2, 5, 4), torch.zeros(2, 5, dtype=torch.bool))
    assert torch.isfinite(out).all()
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])


def test_a_frame_sees_only_the_frames_before_it_through_the_convolution():
    torch.manual_seed(0)
    block = ConvBlock(8, kernel=3).eval()

    def without_attention(h, mask):  # ECA's clip mean sees every frame by design; the rest is causal
        import torch.nn.functional as F

        x = F.silu(block.expand(h)).transpose(1, 2)
        x = block.depthwise(F.pad(x, (block.kernel - 1, 0))).transpose(1, 2)
        return block.project(block.norm(x, mask))

    h = torch.randn(1, 10, 8)
    mask = torch.ones(1, 10, dtype=torch.bool)
    changed = h.clone()
    changed[0, 6] += 1.0
    a, b = without_attention(h, mask), without_attention(changed, mask)
    torch.testing.assert_close(a[0, :6], b[0, :6])  # before the change: untouched
    assert not torch.allclose(a[0, 6:9], b[0, 6:9])  # the change and the kernel - 1 frames after it
    torch.testing.assert_close(a[0, 9:], b[0, 9:])  # beyond the kernel: untouched


def test_the_blocks_cost_parameters_only_when_on():
    plain = SignTransformer(DIM, 5, 3, **SMALL)
    conv = conv_model()
    assert not any("conv" in name for name, _ in plain.named_parameters())
    assert count_parameters(conv)[0] > count_parameters(plain)[0]
    # the plain transformer's weights keep their names: checkpoints from before load
    assert set(plain.state_dict()) < set(conv.state_dict())


def test_the_cls_token_is_left_out_of_the_convolutions():
    model = conv_model(pooling="cls").eval()
    seen = []
    model.conv_stacks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    with torch.no_grad():
        model(torch.randn(2, 9, DIM), None)
    assert seen == [9]  # the frames only, not the 10 positions attention sees


def _checkpoint(**sizes) -> dict:
    s = TrainSettings(model="transformer", num_gloss=5, num_cat=2, **{**TINY, **sizes})
    model = build_model("transformer", s, DIM, 5, 2)
    return make_checkpoint(
        model="transformer", model_class="SignTransformer", input_dim=DIM, num_gloss=5, num_cat=2,
        settings=s.model_dump(mode="json"), model_state=model.state_dict(),
        optimizer_state={}, scheduler_state=None, scaler_state={}, runtime={}, epoch=0, step_in_epoch=0,
        epoch_totals=[0.0] * 4, epoch_seconds=0.0, early_stop={}, history=[], rng=capture_rng(),
    )


def test_conv_weights_loaded_with_another_setting_are_refused_by_name(tmp_path):
    state = _checkpoint(conv_kernel=5, conv_blocks=2)
    path = tmp_path / "SignTransformer_last.pt"
    for here, expected in (
        (dict(conv_kernel=0), "--conv-kernel 0 here, --conv-kernel 5 in the checkpoint"),
        (dict(conv_kernel=5, conv_blocks=1), "--conv-blocks 1 here, --conv-blocks 2 in the checkpoint"),
        (dict(conv_kernel=3, conv_blocks=2), "--conv-kernel 3 here, --conv-kernel 5 in the checkpoint"),
    ):
        s = TrainSettings.model_validate({**state["settings"], **here})
        with pytest.raises(CheckpointError) as info:
            ckpt.load_model_state(build_model("transformer", s, DIM, 5, 2), state, path, settings=s, input_dim=DIM)
        assert expected in shown(info.value)


def test_a_checkpoint_from_before_the_blocks_is_named_with_its_old_value(tmp_path):
    """Stored settings without conv_kernel (an older slr): a run asking for blocks is told the
    checkpoint had none, not that it was edited or damaged."""
    state = _checkpoint(conv_kernel=0)  # an older slr built the plain transformer
    for name in ("conv_kernel", "conv_blocks", "late_dropout", "late_dropout_epoch"):
        state["settings"].pop(name)
    path = tmp_path / "old.pt"
    torch.save(state, path)
    model, _ = ckpt.load_trained_model(path)  # loads unchanged
    assert model.conv_stacks is None
    s = TrainSettings.model_validate({**state["settings"], "conv_kernel": 5})
    with pytest.raises(CheckpointError) as info:
        ckpt.load_model_state(build_model("transformer", s, DIM, 5, 2), state, path, settings=s, input_dim=DIM)
    assert "--conv-kernel 5 here, --conv-kernel 0 in the checkpoint" in shown(info.value)


# -- late dropout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("build, batch_norm", [
    (lambda p: SignTransformer(DIM, 5, 3, **SMALL, dropout=0.0, late_dropout=p), False),
    (lambda p: SignTransformer(DIM, 5, 3, **SMALL, dropout=0.0, conv_kernel=3, late_dropout=p), True),
    (lambda p: InceptionV3GRU(DIM, 5, 3, gru_hidden=8, gru_layers=1, dropout=0.0, late_dropout=p), False),
], ids=["transformer", "transformer-conv", "iv3_gru"])
def test_late_dropout_is_off_until_switched_on_and_never_in_eval(build, batch_norm):
    torch.manual_seed(0)
    model = build(0.5)
    x, mask = model_checks.padded_batch([6, 9, 4], DIM)
    # a model with no late dropout has the same weights: the module holds none
    assert set(model.state_dict()) == set(build(0.0).state_dict())
    late = model.late_dropout

    def outputs(training: bool, without_late: bool = False):
        model.train(training)
        p, late.p = late.p, (0.0 if without_late else late.p)
        torch.manual_seed(1)
        try:
            return model(x, mask)[0].detach()
        finally:
            late.p = p

    trained = outputs(True, without_late=True)
    torch.testing.assert_close(outputs(True), trained)  # off: as if there were none
    if not batch_norm:  # (batch statistics make training mode differ from eval by themselves)
        torch.testing.assert_close(outputs(True), outputs(False))  # training mode gives eval's logits
    switch_late_dropout(model, True)
    assert not torch.allclose(outputs(True), trained)  # on: it drops
    torch.testing.assert_close(outputs(False), outputs(False, without_late=True))  # and evaluation never does
    switch_late_dropout(model, False)
    torch.testing.assert_close(outputs(True), trained)


@pytest.mark.parametrize("model", ["transformer", "iv3_gru"])
def test_the_trainer_switches_late_dropout_on_from_its_epoch(clips, tmp_path, model, monkeypatch):
    import slr.engine.training as trainer_module

    per_epoch: dict[int, set] = {}
    original = trainer_module.Trainer.train_epoch

    def recording(self, epoch):
        seen: list = []
        handle = _late_states_handle(self.model, seen)
        try:
            return original(self, epoch)
        finally:
            handle.remove()
            per_epoch[epoch] = set(seen)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", recording)
    train(settings(clips, tmp_path, model=model, epochs=3, late_dropout=0.5, late_dropout_epoch=2))
    assert per_epoch == {1: {False}, 2: {True}, 3: {True}}


def _late_states_handle(model: torch.nn.Module, seen: list):
    """Records, for every training forward pass, whether late dropout was on."""
    late = next(m for m in model.modules() if isinstance(m, LateDropout))
    return model.register_forward_pre_hook(lambda module, args: seen.append(late.active) if module.training else None)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [1, 3], ids=["resumed-before-its-epoch", "resumed-after-it"])
def test_late_dropout_resumes_exactly(clips, tmp_path, stop_at):
    """Straight through 4 epochs == stopped at `stop_at` and resumed, with late dropout from epoch 2."""
    common = dict(scheduler="plateau", scheduler_patience=0, late_dropout=0.7, late_dropout_epoch=2,
                  conv_kernel=3, mirror_prob=0.5)
    straight = train(settings(clips, tmp_path / "straight", epochs=4, **common))
    train(settings(clips, tmp_path / "resumed", epochs=stop_at, **common))
    resumed = resume(
        ResumeSettings(checkpoint=tmp_path / "resumed" / "SignTransformer_last.pt", overrides={"epochs": 4})
    )
    assert_same_history(straight.history, resumed.history)
    # and late dropout did something: without it the same run differs
    without = train(settings(clips, tmp_path / "without", epochs=4, **{**common, "late_dropout": 0.0}))
    assert without.history[0]["train_loss"] == pytest.approx(straight.history[0]["train_loss"], abs=1e-6)
    assert without.history[-1]["train_loss"] != pytest.approx(straight.history[-1]["train_loss"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_conv_blocks_train_under_mixed_precision_as_in_float32(clips, tmp_path, force_amp, dtype):
    """The convolutions and the masked batch norm under autocast: the run follows float32's."""
    common = dict(COMMON, conv_kernel=5, conv_blocks=2, motion_features=True, hand_centred=True)
    reference = train(settings(clips, tmp_path / "fp32", epochs=3, **{**common, "amp": False}))
    mixed = train(settings(clips, tmp_path / "amp", epochs=3, **common), capabilities=force_amp(dtype))
    assert mixed.history[-1]["train_loss"] < 0.6 * mixed.history[0]["train_loss"]  # it learns
    for row, ref in zip(mixed.history, reference.history):
        assert row["train_loss"] == pytest.approx(ref["train_loss"], rel=0.02)
        assert row["val_loss"] == pytest.approx(ref["val_loss"], rel=0.02)
