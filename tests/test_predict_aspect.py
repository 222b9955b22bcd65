"""A video of another frame shape than the training videos: keypoints are fractions of the frame's
width and height, so `slr predict` says how far the sign's proportions are from what the model
learnt (the checkpoint records the training videos' frame size)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from slr.analysis.predict_video import aspect_notice
from slr.data.clip_meta import extraction_of

LANDSCAPE = {"width": 1280, "height": 720}


def test_a_portrait_video_against_landscape_training_videos_is_told_by_how_much():
    told = aspect_notice(Path("v.mp4"), {"width": 1280, "height": 2276}, LANDSCAPE)
    assert told is not None and told.startswith("v.mp4: 1280x2276 frames (aspect 0.56)")
    assert "1280x720 videos (1.78)" in told and "0.32x what the model learnt" in told, told


def test_the_same_shape_or_an_unknown_one_says_nothing():
    assert aspect_notice(Path("v.mp4"), {"width": 1920, "height": 1080}, LANDSCAPE) is None  # both 16:9
    assert aspect_notice(Path("v.mp4"), {"width": 1440, "height": 1080}, LANDSCAPE) is not None  # 4:3, 0.75x
    assert aspect_notice(Path("v.mp4"), {"width": 640, "height": 480}, None) is None  # older checkpoints
    assert aspect_notice(Path("v.mp4"), {"width": 0, "height": 480}, LANDSCAPE) is None


def test_the_extraction_record_keeps_the_training_videos_frame_size(tmp_path):
    meta = {"settings": {"fps": 15}, "extractor": "mediapipe holistic", "frame_size": LANDSCAPE}
    np.savez(tmp_path / "clip_0001_hello.npz", X=np.zeros((3, 156), np.float32), meta=json.dumps(meta))
    assert extraction_of(tmp_path)["frame_size"] == LANDSCAPE
