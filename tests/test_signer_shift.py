"""What slr adds for signers never seen: the new augmentations keep "missing" meaning missing,
hand-centred coordinates, warm-up then cosine, the weight average (and its exact resume), the
signer-shift proxy data, and old checkpoints read with the values they were trained with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slr.data.augment import build_transform, keypoint_layout
from slr.data.synthetic import make_signer_shift_clips, split_by_signer
from slr.engine import checkpoint as ckpt
from slr.engine.run import resume, train
from slr.engine.training import warmup_cosine_factor
from slr.models.transformer import SignTransformer
from slr.settings import TOOK_THE_VALUE_OF, VALUE_BEFORE_SETTING_EXISTED, AugmentSettings, ResumeSettings, TrainSettings

from test_training import assert_same_history, settings

NEW_AUGMENTS = dict(shear=0.3, noise_std=0.05, hand_drop_prob=1.0, point_drop_prob=0.2)


def two_hand_clip(width: int, frames: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (frames, width)).astype(np.float32)
    layout = keypoint_layout(width)
    pts = x.reshape(frames, layout.points, layout.dims)
    pts[3:5] = 0.0  # two frames with nothing detected
    pts[:, layout.hands[0][0]] = 0.0  # one point never detected
    return x


@pytest.mark.parametrize("width", [156, 84, 126])
def test_new_augmentations_leave_undetected_points_at_zero(width):
    x = two_hand_clip(width)
    layout = keypoint_layout(width)
    before = np.abs(x.reshape(len(x), layout.points, layout.dims)).sum(-1) > 0
    transform = build_transform(AugmentSettings(**NEW_AUGMENTS), "keypoints", width, train=True)
    out = transform(x, np.random.default_rng(1))
    after = np.abs(out.reshape(len(x), layout.points, layout.dims)).sum(-1) > 0
    assert not (after & ~before).any()  # nothing undetected came back
    hands = [after[:, a:b].any() for a, b in layout.hands]
    assert hands.count(True) == 1  # hand_drop_prob 1: exactly one of the two seen hands is gone
    assert np.array_equal(transform(x, np.random.default_rng(1)), out)  # same rng, same clip


def test_hand_drop_keeps_the_only_hand_of_a_one_handed_clip():
    x = two_hand_clip(84)
    x[:, :42] = 0.0  # the left hand is never seen
    out = build_transform(AugmentSettings(hand_drop_prob=1.0), "keypoints", 84, train=True)(x, np.random.default_rng(0))
    assert np.abs(out[:, 42:]).sum() > 0


def test_hand_centred_puts_each_wrist_at_zero_on_average_and_the_hand_at_unit_size():
    clips = make_signer_shift_clips(num_signers=2, clips_per_signer=2, min_frames=20, max_frames=30)
    transform = build_transform(AugmentSettings(hand_centred=True), "keypoints", 84, train=False)
    for x in clips.x:
        pts = transform(x, np.random.default_rng(0)).reshape(len(x), 42, 2)
        for start in (0, 21):
            hand = pts[:, start : start + 21]
            seen = np.abs(hand).sum(-1) > 0
            if seen[:, 0].sum() < 5:
                continue
            assert np.allclose(hand[seen[:, 0], 0].mean(0), 0, atol=1e-4)
            both = seen[:, 0] & seen[:, 9]
            assert np.linalg.norm(hand[both, 9] - hand[both, 0], axis=-1).mean() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("choice", ["auto", "on"])
def test_mirror_left_handed_puts_the_signing_hand_on_the_right_in_training_and_prediction(dims, choice):
    clips = make_signer_shift_clips(num_signers=12, clips_per_signer=2, min_frames=20, max_frames=30, dims=dims, seed=3)
    assert clips.left_handed.any() and not clips.left_handed.all()
    width = clips.x[0].shape[1]
    plain = build_transform(AugmentSettings(mirror_left_handed="off"), "keypoints", width, train=False)
    for train_split in (False, True):
        to_right = build_transform(AugmentSettings(mirror_left_handed=choice), "keypoints", width, train=train_split)
        for x, left_handed in zip(clips.x, clips.left_handed):
            before = plain(x, np.random.default_rng(0))
            after = to_right(x, np.random.default_rng(0))
            if left_handed:  # the mirror image: x flipped, the hands swapped
                pts = before.reshape(len(x), 42, dims)
                expected = np.concatenate([pts[:, 21:], pts[:, :21]], axis=1)
                expected[..., 0] *= -1
                assert np.allclose(after, expected.reshape(x.shape) + 0.0)
            else:
                assert np.array_equal(after, before)


def test_mirror_left_handed_mirrors_a_clip_whose_only_hand_is_the_left():
    x = two_hand_clip(84)
    x[:, 42:] = 0.0  # the right hand is never seen
    out = build_transform(AugmentSettings(), "keypoints", 84, train=False)(x, np.random.default_rng(0))
    assert np.abs(out[:, :42]).sum() == 0 and np.abs(out[:, 42:]).sum() > 0


def test_mirror_left_handed_is_auto_for_hands_only_layouts_and_off_for_a_body():
    """156 (pose, hands, face): off unless asked for; the hands of 84 / 126: on by default."""
    body = two_hand_clip(156)
    pts = body.reshape(len(body), 78, 2)
    pts[:, 46:67] = 0.0  # only the left hand is seen: the one that moves
    auto = build_transform(AugmentSettings(), "keypoints", 156, train=False)(body, np.random.default_rng(0))
    forced = build_transform(AugmentSettings(mirror_left_handed="on"), "keypoints", 156, train=False)(body, np.random.default_rng(0))
    left, right = slice(25 * 2, 46 * 2), slice(46 * 2, 67 * 2)
    assert np.abs(auto[:, left]).sum() > 0 and np.abs(auto[:, right]).sum() == 0  # as recorded
    assert np.abs(forced[:, left]).sum() == 0 and np.abs(forced[:, right]).sum() > 0  # mirrored
    hands = two_hand_clip(84)
    hands[:, 42:] = 0.0
    off = build_transform(AugmentSettings(mirror_left_handed="off"), "keypoints", 84, train=False)(hands, np.random.default_rng(0))
    assert np.abs(off[:, 42:]).sum() == 0


def test_near_twin_letters_of_the_signer_proxy_really_differ():
    """Each twin letter bends one finger 0.35-0.6 further than its pair. A bend clipped at straight
    or closed made a twin its pair's copy, which capped every recipe near 0.8 on held-out signers."""
    from slr.data.synthetic import _letter_shapes

    for class_seed in range(20):
        curls, _, motion = _letter_shapes(11, class_seed)
        for twin in range(1, 11, 2):
            if motion[twin] == motion[twin - 1]:
                assert np.abs(curls[twin] - curls[twin - 1]).max() >= 0.35 - 1e-9


def test_feature_dropout_zeroes_whole_channels_of_features_only():
    s = AugmentSettings(feature_dropout=0.5)
    x = np.ones((10, 64), np.float32)
    out = build_transform(s, "features", 64, train=True)(x, np.random.default_rng(0))
    dropped = (out == 0).all(axis=0)
    assert 0 < dropped.sum() < 64 and ((out == 0) == dropped[None]).all()
    assert build_transform(s, "features", 64, train=False) is None


def test_warmup_then_cosine():
    f = warmup_cosine_factor(total_steps=100, warmup_steps=10)
    rising = [f(i) for i in range(10)]
    assert rising == sorted(rising) and rising[-1] < 1
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert f(100) == pytest.approx(0.0) and f(500) == pytest.approx(0.0)


def test_warmup_cosine_steps_per_optimizer_step(clips, tmp_path):
    # 72 clips in batches of 16: 5 optimizer steps per epoch, 2 epochs, 5 warm-up steps.
    out = train(settings(clips, tmp_path, epochs=2, scheduler="warmup_cosine", warmup_epochs=1.0))
    f = warmup_cosine_factor(10, 5)
    assert [row["lr"] for row in out.history] == pytest.approx([1e-3 * f(5), 1e-3 * f(10)])


def test_weight_average_resumes_exactly_and_is_what_the_checkpoint_holds(clips, tmp_path):
    common = dict(scheduler="plateau", scheduler_patience=0, ema_decay=0.9, label_smoothing=0.1, noise_std=0.02)
    straight = train(settings(clips, tmp_path / "straight", epochs=4, **common))
    train(settings(clips, tmp_path / "resumed", epochs=2, **common))
    resumed = resume(
        ResumeSettings(checkpoint=tmp_path / "resumed" / "SignTransformer_last.pt", overrides={"epochs": 4})
    )
    assert_same_history(straight.history, resumed.history)
    state = ckpt.load_checkpoint(tmp_path / "straight" / "SignTransformer_last.pt")
    averaged, training = state["model_state"], state["ema_state"]["training_weights"]
    assert averaged.keys() == training.keys()
    assert any(not torch.equal(averaged[k], training[k]) for k in averaged)


def test_motion_features_see_the_same_clip_alone_or_padded():
    torch.manual_seed(0)
    model = SignTransformer(84, 11, 2, d_model=32, num_heads=2, num_layers=1, ff_dim=64, motion_features=True).eval()
    x = torch.randn(2, 10, 84)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    batched = model(x, mask)[0][1]
    alone = model(x[1:, :6], mask[1:, :6])[0][0]
    assert torch.allclose(batched, alone, atol=1e-5)


def test_a_checkpoint_from_before_the_new_settings_loads_and_predicts_as_before(clips, tmp_path):
    """Stored settings without the new fields are read with the values of before they existed,
    whatever today's defaults are."""
    from slr.analysis.inference import load_model

    # attention_dropout took the value of the one --dropout (TOOK_THE_VALUE_OF): 0.3 shows it is
    # read from the checkpoint's own dropout, not from a constant.
    took = {name: 0.3 for name in TOOK_THE_VALUE_OF.values()}
    old_values = {**VALUE_BEFORE_SETTING_EXISTED, **took, **{name: 0.3 for name in TOOK_THE_VALUE_OF}}
    train(settings(clips, tmp_path, epochs=1, **old_values))
    path = tmp_path / "SignTransformer_best.pt"
    state = ckpt.load_checkpoint(path)
    x = torch.randn(3, 9, state["input_dim"])
    before = load_model(path).model(x)[0]
    for name in [*VALUE_BEFORE_SETTING_EXISTED, *TOOK_THE_VALUE_OF]:
        state["settings"].pop(name)
    state.pop("ema_state", None)
    old = tmp_path / "old.pt"
    torch.save(state, old)
    loaded = load_model(old)
    for name, value in old_values.items():
        assert getattr(loaded.settings, name) == value, name
    assert {layer.self_attn.dropout for layer in loaded.model.encoder.layers} == {0.3}
    assert torch.equal(loaded.model(x)[0], before)


def test_signer_shift_clips_are_split_by_signer_in_the_hands_only_layouts():
    for dims, width in ((2, 84), (3, 126)):
        clips = make_signer_shift_clips(num_signers=6, clips_per_signer=11, dims=dims, min_frames=20, max_frames=40)
        assert {x.shape[1] for x in clips.x} == {width}
        assert all(20 <= len(x) <= 40 for x in clips.x)
        train, val = split_by_signer(clips, [4, 5])
        assert set(train.signer) == {0, 1, 2, 3} and set(val.signer) == {4, 5}
        assert len(train) == 44 and len(val) == 22
        assert np.bincount(clips.gloss, minlength=11).min() == 6  # letters dealt evenly


@pytest.mark.parametrize("choice, told", [("auto", True), ("off", False)])
def test_a_run_says_when_the_default_mirrors_its_hands_only_clips(clips, tmp_path, choice, told):  # noqa: F811
    """Hands-only clips are changed by a default the user never named: the run says so (and how to
    turn it off); the 156-wide clips of `clips` are never mirrored by default, so nothing is said."""
    from shown import shown

    from slr.data.synthetic import write_clips
    from slr.engine.data_setup import build_data
    from slr.engine.distributed import DistInfo

    hands = make_signer_shift_clips(num_signers=6, clips_per_signer=4, min_frames=8, max_frames=12)
    train_part, val_part = split_by_signer(hands, [4, 5])
    s = TrainSettings(model="transformer", keypoints_train=write_clips(tmp_path / "train", train_part),
                      keypoints_val=write_clips(tmp_path / "val", val_part), num_gloss=11, num_cat=2,
                      output_dir=tmp_path / "run", mirror_left_handed=choice)
    notices = [shown(n) for n in build_data(s, DistInfo(), torch.device("cpu")).notices]
    assert any("--mirror-left-handed off" in n for n in notices) == told, notices
    body = build_data(settings(clips, tmp_path / "body"), DistInfo(), torch.device("cpu")).notices
    assert not any("mirror_left_handed" in n for n in body)


def letter_by_nearest_centroid(clips) -> float:
    """Letters of signers 18-35 from the mean features of signers 0-17's clips of each letter."""
    f = np.stack([x.mean(0) for x in clips.features])
    f = (f - f.mean(0)) / (f.std(0) + 1e-6)
    seen = clips.signer < 18
    centroids = np.stack([f[seen & (clips.gloss == g)].mean(0) for g in range(11)])
    predicted = ((f[~seen][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((predicted == clips.gloss[~seen]).mean())


def test_hand_crop_features_carry_the_letter_across_signers_where_image_features_carry_the_place():
    """features_from="hands" (iv3_gru's proxy in benchmarks/defaults_vs_reference.py --task
    features): each hand in its own place and units, so new signers' letters are near the seen
    signers' (about 0.37 with a nearest centroid, chance 0.09); projected from the image, where
    each signer stands and how big their hand is outweigh the letter (about 0.11)."""
    options = dict(with_features=True, feature_dim=256, min_frames=12, max_frames=20, seed=1)
    image = make_signer_shift_clips(**options)
    hands = make_signer_shift_clips(**options, features_from="hands")
    assert all(np.array_equal(a, b) for a, b in zip(image.x, hands.x))  # the keypoints are the same clips
    assert all(f.shape == (len(x), 256) and (f >= -0.5).all() for f, x in zip(hands.features, hands.x))
    assert letter_by_nearest_centroid(hands) > letter_by_nearest_centroid(image) + 0.15
    with pytest.raises(ValueError, match="features_from"):
        make_signer_shift_clips(num_signers=1, with_features=True, features_from="crops")
