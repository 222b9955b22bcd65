"""Layouts by declaration (`--keypoint-layout FILE`): a width slr does not know gets mirroring with
left/right swaps, hand drop, hand-centring and shoulder normalisation from a small JSON file; bad
files are refused naming the file; checkpoints carry the declaration to evaluate and predict, and
a resume with another declaration is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from slr.analysis.inference import load_model
from slr.data.augment import build_transform, declared_layout, keypoint_layout, mirror_clip, normalize_clip
from slr.data.layout_file import check_declaration, read_layout_file
from slr.engine import checkpoint as ckpt
from slr.engine.run import resume, train
from slr.errors import CheckpointError, DataError
from slr.settings import AugmentSettings, ResumeSettings
from shown import raises_shown, shown

from test_training import clips, settings  # noqa: F401  (clips: the module's fixture)

# A layout slr cannot know from its width: 4 body points (0 nose, 1 left shoulder, 2 right
# shoulder, 3 chest), then a left and a right MediaPipe hand: 46 points x (x, y) = 92 values.
BODY = {"dims": 2, "mirror_pairs": [[1, 2]], "hands": [[4, 25], [25, 46]], "shoulders": [1, 2], "name": "body-46"}
WIDTH = 92

OFF = dict(mirror_prob=0.0, rotate_deg=0.0, scale_jitter=0.0, shift=0.0, speed_jitter=0.0, frame_dropout=0.0,
           time_mask=0.0, shear=0.0, noise_std=0.0, hand_drop_prob=0.0, point_drop_prob=0.0, feature_dropout=0.0,
           hand_centred=False)


def body_clip(frames: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2, 0.8, (frames, 46, 2)).astype(np.float32)
    pts[:, 1] = (0.6, 0.5)  # the signer's left shoulder (right of the image)
    pts[:, 2] = (0.4, 0.5)
    return pts.reshape(frames, WIDTH)


def write(tmp_path: Path, content, name: str = "layout.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_without_a_declaration_the_width_says_nothing_of_left_and_right():
    layout = keypoint_layout(WIDTH)
    assert layout.hands == () and layout.shoulders is None
    assert np.array_equal(layout.mirror_order, np.arange(46))


def test_a_declared_mirror_swaps_the_declared_pairs_and_hands(tmp_path):
    layout = declared_layout(read_layout_file(write(tmp_path, BODY)), WIDTH)
    x = body_clip()
    mirrored = mirror_clip(x, layout).reshape(-1, 46, 2)
    pts = x.reshape(-1, 46, 2)
    np.testing.assert_allclose(mirrored[:, 4:25, 0], -pts[:, 25:46, 0])  # the right hand is now the left
    np.testing.assert_allclose(mirrored[:, 4:25, 1], pts[:, 25:46, 1])
    np.testing.assert_allclose(mirrored[:, 1], pts[:, 2] * [-1, 1])  # and the shoulders swapped
    np.testing.assert_allclose(mirrored[:, 0], pts[:, 0] * [-1, 1])  # an unpaired point stays
    np.testing.assert_array_equal(mirror_clip(mirror_clip(x, layout), layout), x)


def test_the_declared_shoulders_normalise_and_the_declared_hands_drop_and_centre(tmp_path):
    declared = read_layout_file(write(tmp_path, BODY))
    layout = declared_layout(declared, WIDTH)
    out = normalize_clip(body_clip(), layout).reshape(-1, 46, 2)
    np.testing.assert_allclose(out[:, 1], np.tile([0.5, 0.0], (len(out), 1)), atol=1e-5)  # (0.6-0.5)/0.2
    np.testing.assert_allclose(out[:, 2], np.tile([-0.5, 0.0], (len(out), 1)), atol=1e-5)

    drop = build_transform(AugmentSettings(**{**OFF, "hand_drop_prob": 1.0}), "keypoints", WIDTH, True, declared)
    dropped = drop(body_clip(), np.random.default_rng(0)).reshape(-1, 46, 2)
    hands_gone = [bool((dropped[:, a:b] == 0).all()) for a, b in BODY["hands"]]
    assert sorted(hands_gone) == [False, True]  # one of the two hands hidden, the body kept
    assert (np.abs(dropped[:, :4]).sum(-1) > 0).all()
    undeclared = build_transform(AugmentSettings(**{**OFF, "hand_drop_prob": 1.0}), "keypoints", WIDTH, True)
    kept = undeclared(body_clip(), np.random.default_rng(0)).reshape(-1, 46, 2)
    assert (np.abs(kept).sum(-1) > 0).all()  # no hands known: nothing dropped

    centred = build_transform(AugmentSettings(**{**OFF, "hand_centred": True}), "keypoints", WIDTH, False, declared)
    pts = centred(body_clip(), np.random.default_rng(0)).reshape(-1, 46, 2)
    for start, _ in BODY["hands"]:
        np.testing.assert_allclose(pts[:, start].mean(axis=0), [0.0, 0.0], atol=1e-5)  # each wrist at 0


def test_the_156_layout_declared_is_the_one_slr_knows(tmp_path):
    """The file format can say what slr's own layout says: the same permutation, hands, shoulders."""
    pose_pairs = [[1, 4], [2, 5], [3, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16], [17, 18], [19, 20],
                  [21, 22], [23, 24]]
    known = keypoint_layout(156)
    declared = declared_layout(check_declaration(
        {"dims": 2, "mirror_pairs": pose_pairs, "hands": [[25, 46], [46, 67]], "shoulders": [11, 12]}, "test"), 156)
    assert np.array_equal(declared.mirror_order, known.mirror_order)
    assert declared.hands == known.hands and declared.shoulders == known.shoulders


@pytest.mark.parametrize("content, message", [
    ("{not json", r"layout\.json: layout file is not valid JSON \(line 1, column 2"),
    ([1, 2], "expected a JSON object"),
    ({**BODY, "mirror": [[1, 2]]}, "unknown key\\(s\\) 'mirror'; known: name, dims"),
    ({**BODY, "dims": 4}, "'dims' must be 2 \\(x, y\\) or 3"),
    ({**BODY, "dims": True}, "'dims' must be 2"),
    ({**BODY, "mirror_pairs": [[1, 1]]}, "pairs point 1 with itself"),
    ({**BODY, "mirror_pairs": [[1, 2], [2, 3]]}, "point 2 is in two pairs"),
    ({**BODY, "mirror_pairs": [[1, "2"]]}, "\\[1, '2'\\] is not a pair of point indices"),
    ({**BODY, "mirror_pairs": [[0, 5]]}, "names point 5 of a hand; a mirror already swaps the two hands"),
    ({**BODY, "hands": [[4, 20], [25, 46]]}, "\\[4, 20\\) holds 16 points; a hand is 21"),
    ({**BODY, "hands": [[4, 25], [20, 41]]}, "'hands' ranges overlap"),
    ({**BODY, "hands": [[4, 25], [25, 46], [46, 67]]}, "declares 3 hands"),
    ({**BODY, "shoulders": [1, 1]}, "'shoulders' names point 1 twice"),
    ({**BODY, "points": 0}, "'points' must be a positive integer"),
])
def test_a_bad_layout_file_is_refused_naming_the_file_and_the_problem(tmp_path, content, message):
    path = write(tmp_path, content)
    with raises_shown(DataError, message) as info:
        read_layout_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("declared, message", [
    ({**BODY, "points": 40}, "declares 40 points of 2 coordinates, but the clips have 92 values per frame"),
    ({**BODY, "dims": 3}, "3 coordinates per point does not fit clips of 92 values"),
    ({**BODY, "shoulders": [1, 46]}, "names point 46, but the clips have 46 points \\(0 to 45\\)"),
    ({**BODY, "mirror_pairs": [[0, 50]]}, "names point 50"),
])
def test_a_declaration_that_does_not_fit_the_clips_is_refused(tmp_path, declared, message):
    path = write(tmp_path, declared)
    loaded = read_layout_file(path)  # sound on its own: only the clips' width shows the problem
    with raises_shown(DataError, message) as info:
        declared_layout(loaded, WIDTH, path)
    assert str(path) in str(info.value)


def test_a_missing_layout_file_names_the_setting_and_the_file(tmp_path):
    with raises_shown(DataError, "--keypoint-layout: layout file not found") as info:
        read_layout_file(tmp_path / "nowhere.json")
    assert "nowhere.json" in str(info.value)


# -- through training, evaluation and resume ----------------------------------------------------------

# The training clips are 156 wide: declared here with the hands swapped by the mirror, one body
# pair, and no shoulders (so clips are normalised on their detected points): evaluation's input
# differs from what the width alone would give.
DECLARED_156 = {"dims": 2, "mirror_pairs": [[11, 12]], "hands": [[25, 46], [46, 67]]}


def test_a_declared_layout_travels_in_the_checkpoint_and_a_resume_must_keep_it(clips, tmp_path):  # noqa: F811
    layout_file = write(tmp_path, DECLARED_156)
    common = dict(mirror_prob=0.5, hand_drop_prob=0.3, hand_centred=True, keypoint_layout=layout_file)
    train(settings(clips, tmp_path / "run", epochs=1, **common))
    last = tmp_path / "run" / "SignTransformer_last.pt"
    state = ckpt.load_checkpoint(last, need="resume")
    assert state["keypoint_layout"] == check_declaration(DECLARED_156, "test")

    # evaluate / predict / export read the clips with the stored declaration: the file is not needed
    moved = tmp_path / "elsewhere.json"
    shutil.move(layout_file, moved)
    loaded = load_model(last)
    transform = loaded.dataset_options()["transform"]
    clip = np.load(next((clips / "val").glob("*.npz")))["X"]
    expected = build_transform(loaded.settings, "keypoints", 156, False, DECLARED_156)(clip, np.random.default_rng(0))
    np.testing.assert_array_equal(transform(clip, np.random.default_rng(0)), expected)
    by_width = build_transform(loaded.settings, "keypoints", 156, False)(clip, np.random.default_rng(0))
    assert not np.allclose(expected, by_width)  # the declaration is what made the difference

    # a resume reads the file again: gone, changed, or dropped are each refused by name
    with raises_shown(DataError, "--keypoint-layout: layout file not found"):
        resume(ResumeSettings(checkpoint=last, overrides={"epochs": 2}))
    write(tmp_path, {**DECLARED_156, "mirror_pairs": []})
    with raises_shown(CheckpointError, "trained with a --keypoint-layout declaration, and this run has another one"):
        resume(ResumeSettings(checkpoint=last, overrides={"epochs": 2}))
    with raises_shown(CheckpointError, "this run has none"):
        resume(ResumeSettings(checkpoint=last, overrides={"epochs": 2, "keypoint_layout": None}))
    write(tmp_path, DECLARED_156)  # as it was: the run goes on
    resumed = resume(ResumeSettings(checkpoint=last, overrides={"epochs": 2}))
    assert [row["epoch"] for row in resumed.history] == [1, 2]


def test_an_edited_declaration_in_a_checkpoint_is_refused_naming_it(clips, tmp_path):  # noqa: F811
    train(settings(clips, tmp_path / "run", epochs=1, keypoint_layout=write(tmp_path, DECLARED_156)))
    state = torch.load(tmp_path / "run" / "SignTransformer_best.pt", weights_only=True)
    state["keypoint_layout"]["hands"] = [[25, 46], [46, 80]]
    edited = tmp_path / "edited.pt"
    torch.save(state, edited)
    with pytest.raises(DataError) as info:
        load_model(edited)
    assert str(edited) in shown(info.value) and "holds 34 points" in shown(info.value)
