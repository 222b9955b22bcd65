"""Defaults resolved from other settings (slr/settings.py):

- --max-frames left out: keypoint clips over 32 frames are fed as 32 evenly spread frames (the
  transformer), features keep every frame (iv3_gru); 0 means no limit, and checkpoints written when
  the default was no limit (stored as None) keep it;
- --conv-kernel left out: convolution blocks of kernel 7 at widths up to 128, none above.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from slr.data.prepare import preprocessing
from slr.engine.checkpoint import load_checkpoint
from slr.engine.run import train
from slr.settings import KEYPOINT_MAX_FRAMES, TrainSettings, stored_train_settings
from slr.data.synthetic import write_synthetic_dataset

from test_training import settings


def test_the_default_depends_on_what_the_model_reads():
    assert TrainSettings().max_frames == KEYPOINT_MAX_FRAMES == 32
    assert TrainSettings(model="iv3_gru").max_frames == 0
    assert TrainSettings(max_frames=None).max_frames == 32  # "none" on the command line is the default
    assert TrainSettings(max_frames=0).max_frames == 0
    assert TrainSettings(max_frames=64).max_frames == 64
    with pytest.raises(ValidationError, match="0 for no limit"):
        TrainSettings(max_frames=1)


def test_stored_settings_of_the_no_limit_default_keep_every_frame():
    assert TrainSettings.model_validate(stored_train_settings({"max_frames": None})).max_frames == 0
    assert TrainSettings.model_validate(stored_train_settings({"max_frames": 40})).max_frames == 40


def test_no_limit_reaches_prediction_as_none():
    assert preprocessing(TrainSettings(max_frames=0), "keypoints", 32)["max_frames"] is None
    assert preprocessing(TrainSettings(), "keypoints", 32)["max_frames"] == 32


def test_a_default_run_feeds_long_clips_as_32_frames_and_stores_the_rule(tmp_path, one_thread):
    root = tmp_path / "long"
    options = dict(num_gloss=3, num_cat=1, feature_dim=32, min_frames=40, max_frames=70)
    write_synthetic_dataset(root / "train", 24, seed=1, **options)
    write_synthetic_dataset(root / "val", 6, seed=2, **options)
    seen = []
    run = settings(root, tmp_path / "run", epochs=1, num_gloss=3, num_cat=1, batch_size=8)
    assert run.max_frames == 32
    from slr.models.transformer import SignTransformer

    real_forward = SignTransformer.forward

    def watching(self, x, *args, **kwargs):
        seen.append(x.shape[1])
        return real_forward(self, x, *args, **kwargs)

    SignTransformer.forward = watching
    try:
        train(run)
    finally:
        SignTransformer.forward = real_forward
    assert seen and max(seen) == 32  # every clip was 40-70 frames long
    state = load_checkpoint(tmp_path / "run" / "SignTransformer_last.pt", need="model")
    assert state["settings"]["max_frames"] == 32
    stored = TrainSettings.model_validate(stored_train_settings(state["settings"]))
    assert preprocessing(stored, "keypoints", 32)["max_frames"] == 32  # what predict and export apply


def test_convolution_blocks_by_default_only_at_the_width_they_were_measured_at():
    from slr.settings import CONV_AUTO_MAX_WIDTH, CONV_KERNEL

    assert TrainSettings().conv_kernel == CONV_KERNEL == 7  # slr's default width, 128
    assert TrainSettings(d_model=CONV_AUTO_MAX_WIDTH + 64, num_heads=8).conv_kernel == 0
    assert TrainSettings(d_model=256, num_heads=8, conv_kernel=5).conv_kernel == 5  # given: kept
    assert TrainSettings(conv_kernel=0).conv_kernel == 0
    # checkpoints from before the setting read as the plain transformer
    assert TrainSettings.model_validate(stored_train_settings({})).conv_kernel == 0
