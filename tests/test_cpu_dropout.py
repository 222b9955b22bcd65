"""CpuDropout: torch's dropout in distribution (rate, scale, gradient), from torch's generator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slr.models.cpu_dropout import CpuDropout, keep_mask, rounded_drop_levels, use_cpu_dropout
from slr.models.transformer import SignTransformer


def dropped_share(out: torch.Tensor) -> float:
    return float((out == 0).float().mean())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_drops_p_of_the_elements_and_scales_the_rest(p, dtype):
    torch.manual_seed(0)
    x = torch.ones(256, 4096, dtype=dtype)  # 1M elements: the share's sd is under 0.0005
    out = CpuDropout(p).train()(x)
    assert dropped_share(out) == pytest.approx(p, abs=0.003)
    kept = out[out != 0].float()
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-2)  # bfloat16 rounds the scale
    assert float(out.float().mean()) == pytest.approx(1.0, abs=0.01)  # the expectation is kept


def test_each_of_the_four_numbers_of_a_draw_is_uniform():
    """A plain random_() on int64 leaves the sign bit 0: every fourth 16-bit number would be
    non-negative, so at p 0.5 those elements would never be dropped."""
    torch.manual_seed(1)
    mask = keep_mask(torch.Size([4096, 4]), rounded_drop_levels(0.5), torch.float32)
    for position in range(4):
        assert dropped_share(mask[:, position]) == pytest.approx(0.5, abs=0.05), position


def test_the_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 100, requires_grad=True)
    out = CpuDropout(0.3).train()(x)
    out.sum().backward()
    kept = out.detach() != 0
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full((int(kept.sum()),), 1 / (1 - rounded_drop_levels(0.3) / 65536)))


def test_masks_follow_torchs_seed_and_not_the_thread_count():
    x = torch.ones(64, 256)
    layer = CpuDropout(0.2).train()
    before = torch.get_num_threads()
    try:
        torch.manual_seed(3)
        torch.set_num_threads(1)
        one = layer(x)
        state = torch.get_rng_state()  # what a checkpoint keeps
        second = layer(x)
        torch.set_num_threads(2)
        torch.manual_seed(3)
        two = layer(x)
        torch.set_rng_state(state)
        again = layer(x)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)  # the same seed, another thread count: the same mask
    assert torch.equal(second, again)  # a restored generator state: the same next mask
    assert not torch.equal(one, second)  # and each call draws a new one


def test_torchs_own_dropout_runs_in_evaluation_at_the_edges_and_off_the_cpu():
    x = torch.randn(8, 16)
    assert torch.equal(CpuDropout(0.5).eval()(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    assert torch.equal(CpuDropout(1.0).train()(x), torch.zeros_like(x))
    # p 1e-4 would round to 7/65536 (7% off): torch's dropout, so the same draws as nn.Dropout's
    assert rounded_drop_levels(1e-4) is None and rounded_drop_levels(0.1) == 6554
    torch.manual_seed(4)
    ours = CpuDropout(1e-4).train()(torch.ones(1000, 100))
    torch.manual_seed(4)
    assert torch.equal(ours, nn.Dropout(1e-4).train()(torch.ones(1000, 100)))
    # off the CPU (the meta device stands in for a GPU here): torch's dropout, whose kernel is fused there
    on_meta = CpuDropout(0.5).train()(torch.empty(4, 4, device="meta"))
    assert on_meta.device.type == "meta" and on_meta.shape == (4, 4)


def test_the_transformer_uses_it_in_every_dropout_layer():
    model = SignTransformer(12, 5, 3, d_model=32, num_heads=2, num_layers=2, ff_dim=64, conv_kernel=3, dropout=0.2)
    plain = [m for m in model.modules() if type(m) is nn.Dropout]
    ours = [m for m in model.modules() if isinstance(m, CpuDropout)]
    assert not plain and len(ours) == 2 * 3 + 2  # three per encoder layer, the input's and the head's
    assert {m.p for m in ours} == {0.2}
    replaced = use_cpu_dropout(nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.3, inplace=True))))
    assert isinstance(replaced[1][0], CpuDropout) and replaced[1][0].p == 0.3  # nested ones too


def test_in_bfloat16_the_kept_values_are_scaled_by_1_over_1_minus_p_not_by_its_bfloat16():
    """bfloat16 holds 1 / 0.9 as 1.109: a mask of that value would shrink every kept value by 0.16%."""
    torch.manual_seed(5)
    x = torch.rand(1024, 1024).add(1).to(torch.bfloat16)  # [1, 2): one rounding step is 2**-7
    out = CpuDropout(0.1).train()(x)
    kept = out != 0
    ratio = float((out[kept].double() / x[kept].double()).mean())
    assert ratio == pytest.approx(65536 / (65536 - 6554), rel=3e-4)
