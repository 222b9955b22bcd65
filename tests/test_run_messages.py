"""What a run says about its data, as a new user reads it: which directory a problem is in, one
notice per fact, and hints that print as commands (no doubled quoting)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from shown import shown

from slr.data.synthetic import write_synthetic_dataset
from slr.engine.data_setup import build_data
from slr.engine.distributed import DistInfo
from slr.errors import DataError
from slr.settings import TrainSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def data_of(settings: TrainSettings):
    return build_data(settings, DistInfo(), torch.device("cpu"))


def test_a_problem_in_the_validation_directory_is_said_to_be_there(clips, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(clips / "val", val)
    next(val.glob("*.npz")).write_bytes(b"not an archive")
    s = TrainSettings(model="transformer", keypoints_train=clips / "train", keypoints_val=val,
                      num_gloss=4, num_cat=2, output_dir=tmp_path / "run")
    with pytest.raises(DataError) as caught:
        data_of(s)
    text = shown(caught.value)
    assert "problem(s) in the validation data (--keypoints-val)" in text, text
    assert "training data" not in text


def test_features_read_from_x_are_told_once_per_folder(tmp_path):
    # The guide's layout: iv3_gru may read keypoint clips' X; one folder for both splits is one notice.
    write_synthetic_dataset(tmp_path / "kp", 8, num_gloss=2, num_cat=2, feature_dim=32, with_features=False)
    s = TrainSettings(model="iv3_gru", features_train=tmp_path / "kp", features_val=tmp_path / "kp",
                      num_gloss=2, num_cat=2, output_dir=tmp_path / "run")
    told = [n for n in map(shown, data_of(s).notices) if "clips without 'X2048'" in n]
    assert len(told) == 1 and told[0].startswith(str(tmp_path / "kp")), told


def test_the_data_warning_names_its_validate_command_once_quoted(tmp_path):
    options = dict(num_gloss=2, num_cat=2, feature_dim=32, min_frames=8, max_frames=12)
    write_synthetic_dataset(tmp_path / "train", 8, seed=1, **options)
    write_synthetic_dataset(tmp_path / "val", 4, seed=2, **options)
    first = next((tmp_path / "train").glob("*.npz"))
    with np.load(first) as archive:
        arrays = dict(archive)
    arrays["X"][:] = 0  # nothing detected in any frame: a warning, not an error
    np.savez(first, **arrays)
    s = TrainSettings(model="transformer", keypoints_train=tmp_path / "train", keypoints_val=tmp_path / "val",
                      num_gloss=2, num_cat=2, output_dir=tmp_path / "run")
    warned = [n for n in map(shown, data_of(s).notices) if "in the data" in n]
    assert warned and "`slr validate " in warned[0], warned
    assert "``" not in warned[0], warned[0]


def test_validation_glosses_without_training_clips_are_named_with_the_ceiling_they_set(tmp_path):
    options = dict(num_cat=2, feature_dim=32, min_frames=8, max_frames=12)
    write_synthetic_dataset(tmp_path / "train", 12, seed=1, num_gloss=3, **options)
    write_synthetic_dataset(tmp_path / "val", 16, seed=2, num_gloss=4, **options)  # gloss 3: 4 clips
    s = TrainSettings(model="transformer", keypoints_train=tmp_path / "train", keypoints_val=tmp_path / "val",
                      num_gloss=4, num_cat=2, output_dir=tmp_path / "run")
    told = [n for n in map(shown, data_of(s).notices) if "no training clip" in n]
    assert told == [f"{tmp_path / 'val'}: 4 of 16 validation clips are of glosses with no training clip "
                    "(1 gloss: id 3); the model cannot learn them, so val_gloss_acc is at most 75.0%"], told
    same = TrainSettings(model="transformer", keypoints_train=tmp_path / "val", keypoints_val=tmp_path / "val",
                         num_gloss=4, num_cat=2, output_dir=tmp_path / "run2")
    assert not [n for n in data_of(same).notices if "no training clip" in n]


@pytest.mark.parametrize("width, options, inert", [
    (42, {"hand_drop_prob": 0.3}, ["--hand-drop-prob does nothing here: it needs two hands; this layout has one"]),
    (100, {"hand_drop_prob": 0.3, "hand_centred": True},
     ["--hand-drop-prob does nothing here: it needs two hands; this layout has none",
      "--hand-centred does nothing here: this layout has no hands"]),
    (84, {"hand_drop_prob": 0.3, "mirror_left_handed": "on"}, []),  # two hands: both act
])
def test_an_option_the_clips_layout_cannot_use_is_said_to_do_nothing(tmp_path, width, options, inert):
    data = dict(num_gloss=2, num_cat=2, kp_dim=width, feature_dim=8, min_frames=8, max_frames=12)
    write_synthetic_dataset(tmp_path / "train", 8, seed=1, **data)
    write_synthetic_dataset(tmp_path / "val", 4, seed=2, **data)
    s = TrainSettings(model="transformer", keypoints_train=tmp_path / "train", keypoints_val=tmp_path / "val",
                      num_gloss=2, num_cat=2, output_dir=tmp_path / "run", **options)
    assert [n for n in map(shown, data_of(s).notices) if "does nothing here" in n] == inert


def test_keypoint_options_on_feature_clips_are_said_to_do_nothing(clips, tmp_path):
    s = TrainSettings(model="iv3_gru", features_train=clips / "train", features_val=clips / "val",
                      num_gloss=4, num_cat=2, output_dir=tmp_path / "run", rotate_deg=10)
    told = [n for n in map(shown, data_of(s).notices) if "does nothing here" in n]
    assert told == ["--rotate-deg does nothing here: it acts on keypoints, and these clips are features"]


def test_a_classes_file_that_disagrees_with_the_labels_is_named(clips, tmp_path):
    """`clips`: 4 glosses; gloss g is in category g % 2 (synthetic labels)."""
    import csv

    with open(clips / "train" / "labels.csv", newline="") as handle:
        cat_of = {int(r["gloss"]): int(r["cat"]) for r in csv.DictReader(handle)}
    classes = tmp_path / "classes.csv"
    rows = [f"{g},word{g},{cat_of[g] if g != 1 else 1 - cat_of[1]},c" for g in (0, 1, 2)]  # no 3; 1 moved
    classes.write_text("gloss,name,cat,cat_name\n" + "\n".join(rows) + "\n")
    s = TrainSettings(model="transformer", keypoints_train=clips / "train", keypoints_val=clips / "val",
                      num_gloss=4, num_cat=2, output_dir=tmp_path / "run", classes_csv=classes)
    told = [n for n in map(shown, data_of(s).notices) if n.startswith(str(classes))]
    assert len(told) == 2, told
    assert "names 3 of the 4 glosses the labels use; gloss id(s) 3 have no name there" in told[0]
    assert f"gloss 1 (word1): cat {1 - cat_of[1]} there, {cat_of[1]} in the labels" in told[1]
