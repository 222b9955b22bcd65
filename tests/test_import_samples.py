"""`slr import` on real files of each format (the shared data folder's formats/, issue 22): what the
clips hold (frames, which parts were found), the group columns, the layout; then training on them.

The samples are read where they lie, beside the checkout (or where SLR_FORMATS_DIR points), and
never copied into the repository: some carry licences (GPL-3.0, CC BY-NC-SA) that MIT does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from slr.cli import app

FORMATS = Path(os.environ.get("SLR_FORMATS_DIR",
                              Path(__file__).resolve().parents[2] / "shared" / "data" / "formats"))
TINY = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32", "--epochs", "1",
        "--batch-size", "4", "--no-plots", "--no-tensorboard"]

pytestmark = pytest.mark.skipif(not (FORMATS / "gislr" / "train.csv").is_file(),
                                reason=f"real format samples not found at {FORMATS} (set SLR_FORMATS_DIR)")
pyarrow = pytest.importorskip("pyarrow")


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def imported(fmt: str, source: Path, out: Path, *extra: str):
    result = run("import", fmt, source, "--output-dir", out, "--workers", "1", *extra)
    return result


def clip(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as z:
        return z["X"], z["mask"], json.loads(str(z["meta"][()]))


def found(mask: np.ndarray, start: int, stop: int) -> float:
    """Share of frames in which any point of [start, stop) was found."""
    return float(mask[:, start:stop].any(axis=1).mean())


def test_gislr_kaggle_files_become_fsl105_clips_with_signer_groups(tmp_path):
    out = tmp_path / "gislr"
    result = imported("gislr", FORMATS / "gislr", out)
    assert result.exit_code == 0, result.output
    x, mask, meta = clip(out / "100015657.npz")
    assert x.shape == (105, 156) and x.dtype == np.float32 and mask.shape == (105, 78) and mask.dtype == bool
    assert meta["frame_numbers"] == [103, 207] and meta["format"] == "gislr"
    assert "parquet-cpp-arrow" in meta["format_version"]
    assert found(mask, 46, 67) == 0.0  # right hand NaN in every frame (README)
    assert found(mask, 25, 46) == pytest.approx(0.27, abs=0.01)  # left hand NaN in 73 % of frames
    assert mask[:, :25].all() and mask[:, 67:].all()  # body and face in every frame
    assert np.all(x[~np.repeat(mask, 2, axis=1)] == 0)  # not found = 0, slr's convention
    # a value where it belongs, whatever the row order: pose landmark 11 (left shoulder) is point 11
    table = pd.read_parquet(FORMATS / "gislr" / "train_landmark_files" / "16069" / "100015657.parquet")
    first = table[(table.frame == 103) & (table.type == "pose") & (table.landmark_index == 11)]
    assert x[0, 22:24] == pytest.approx(first[["x", "y"]].to_numpy()[0])
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert labels.to_dict("records") == [{"file": "100015657", "gloss": "0", "signer": "16069",
                                          "sequence_id": "100015657"}]
    assert (out / "classes.csv").read_text() == "gloss,name\n0,cloud\n"
    assert {p.name for p in out.glob("*.npz")} == {"100015657.npz", "1001373962.npz", "1006440534.npz"}
    assert "2 clip(s) without a sign" in result.output  # the unlabelled files are clips, not labels rows
    short = clip(out / "1006440534.npz")[2]
    assert short["frames"] == 3 and short["frame_numbers"] == [0, 2]


def test_gislr_layout_is_the_156_layout_slr_knows(tmp_path):
    from slr.data.augment import declared_layout, keypoint_layout
    from slr.data.layout_file import read_layout_file

    out = tmp_path / "gislr"
    assert imported("gislr", FORMATS / "gislr", out).exit_code == 0
    declared = read_layout_file(out / "layout.json")
    assert declared["points"] == 78 and declared["dims"] == 2 and len(declared["point_names"]) == 78
    assert declared["point_names"][11] == "pose.LEFT_SHOULDER" and declared["point_names"][67] == "face.1"
    ours, known = declared_layout(declared, 156), keypoint_layout(156)
    assert ours.shoulders == known.shoulders and ours.hands == known.hands
    assert np.array_equal(ours.mirror_order[:67], known.mirror_order[:67])  # body and hands as slr mirrors them
    assert ours.mirror_order[68] == 69  # and the face's eye corners swap too


def test_a_second_source_merges_into_the_folder_with_its_signers(tmp_path):
    """gislr-silfa: another writer (other row order, int64 columns, one frame) into the same folder:
    ids of the first import kept, new signs appended, the signer column there for `slr split`."""
    pytest.importorskip("sklearn")
    out = tmp_path / "clips"
    assert imported("gislr", FORMATS / "gislr", out).exit_code == 0
    second = imported("gislr", FORMATS / "gislr-silfa", out)
    assert second.exit_code == 0, second.output
    classes = pd.read_csv(out / "classes.csv", dtype=str)
    assert classes.to_dict("list") == {"gloss": ["0", "1", "2", "3"], "name": ["cloud", "A", "B", "C"]}
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert len(labels) == 7 and set(labels.signer) == {"16069", "100"}
    assert list(labels.columns) == ["file", "gloss", "signer", "sequence_id"]
    x, mask, meta = clip(out / "1015.npz")
    assert x.shape == (1, 156) and mask[0].all() and meta["frame_numbers"] == [1, 1]  # every part found
    table = pd.read_parquet(FORMATS / "gislr-silfa" / "train_landmark_files" / "100" / "1015.parquet")
    face = table[(table.type == "face") & (table.landmark_index == 263)]  # the 3rd face point kept
    assert x[0, 2 * 69:2 * 69 + 2] == pytest.approx(face[["x", "y"]].to_numpy()[0])
    # `slr split` reads the signer column at once; here each sign has one signer, which it says
    # (tests/test_import_synthetic.py splits a set with several signers per sign)
    split = run("split", out, "--group-by", "signer", "--val", "0.3")
    assert split.exit_code == 2 and "1 signer(s) ('16069')" in split.output and "('100')" in split.output


def test_mediapipe_npy_frames_in_numeric_order_and_zeros_not_found(tmp_path):
    out = tmp_path / "mp"
    result = imported("auto", FORMATS / "mp_data", out)  # the format is found from the .npy files
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.npz"))) == 9
    x, mask, meta = clip(out / "hello_0.npz")
    assert x.shape == (20, 156) and meta["format_version"] == "258 values per frame"
    frame_10 = np.load(FORMATS / "mp_data" / "MP_Data" / "hello" / "0" / "10.npy")
    assert x[10, :50] == pytest.approx(frame_10[:100].reshape(25, 4)[:, :2].reshape(-1))  # 10.npy, not 2.npy
    assert found(mask, 25, 46) == 0.0  # left hand never detected
    assert found(mask, 46, 67) == pytest.approx(11 / 20)  # right hand missing in 9 of 20 frames
    assert not mask[:, 67:].any()  # no face in 258-value frames: its points are never found
    assert not clip(out / "hello_120.npz")[1][0].any()  # frame 0 of seq 120: nothing detected
    assert (out / "classes.csv").read_text() == "gloss,name\n0,-\n1,hello\n2,thank-you\n"
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert set(labels.columns) == {"file", "gloss", "sequence"} and len(labels) == 9


def test_openpose_json_folders_body_25_in_pixels_or_divided_by_the_frame_size(tmp_path):
    out = tmp_path / "op"
    result = imported("openpose", FORMATS / "openpose", out)
    assert result.exit_code == 0, result.output
    assert "--frame-size" in result.output  # pixels stay pixels, and the user is told
    x, mask, meta = clip(out / "du_wohn_wo.npz")
    assert x.shape == (175, 134) and meta["format_version"] == "1.2"
    assert not mask[:, 25:].any()  # hands present but empty lists in every frame
    assert mask[:, [1, 2, 5]].all()  # neck and shoulders found
    assert 150 <= x[:, 0][mask[:, 0]].min() and x[:, 0][mask[:, 0]].max() <= 575  # pixels
    assert clip(out / "gebaerden.npz")[0].shape == (149, 134)
    layout = json.loads((out / "layout.json").read_text())
    assert layout["shoulders"] == [5, 2] and layout["hands"] == [[25, 46], [46, 67]]
    assert [2, 5] in layout["mirror_pairs"] or [5, 2] in layout["mirror_pairs"]
    scaled = imported("openpose", FORMATS / "openpose", tmp_path / "scaled", "--frame-size", "640x480")
    assert scaled.exit_code == 0
    x2, _, meta2 = clip(tmp_path / "scaled" / "du_wohn_wo.npz")
    assert x2[mask.repeat(2, axis=1)] == pytest.approx(x[mask.repeat(2, axis=1)] / np.tile([640, 480], 67)[
        np.nonzero(mask.repeat(2, axis=1))[1]])
    assert "640x480" in meta2["coordinates"]


def test_pose_files_of_three_versions_by_point_names(tmp_path):
    pytest.importorskip("pose_format")
    data = FORMATS / "pose" / "src" / "python" / "tests" / "data"
    out = tmp_path / "pose"
    result = imported("pose", data, out)
    # openpose.pose is OpenPose; the first file (hand_estimation/...) made this a Holistic import
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "openpose.pose" in failed[0] and "another folder" in failed[0]
    x, mask, meta = clip(out / "mediapipe.npz")
    assert meta["format_version"] == "0.1" and x.shape == (170, 156)
    # only 8 body points in this file, found by name: shoulders 11, 12 ... hips 23, 24; never the nose
    assert set(np.flatnonzero(mask[:, :25].any(axis=0))) == {11, 12, 13, 14, 15, 16, 23, 24}
    assert mask[:, 67:].any(axis=0).sum() >= 1  # some of the 11 face points among its 128
    with np.load(out / "mediapipe.npz") as z:
        assert z["timestamps_ms"][1] == pytest.approx(1000 / 24)
    full = clip(out / "6fb01565da31c5500d1ef2cd2906b06b.npz")
    assert full[2]["format_version"] == "0.2" and full[1].all()  # nothing masked in this file
    assert full[0][:, 0::2].max() <= 1.5  # pixels divided by the width
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert dict(zip(labels.file, labels.folder))["mediapipe"] == "src/python/tests/data" or \
        dict(zip(labels.file, labels.sequence))["mediapipe"] == "mediapipe"
    alone = imported("pose", data / "openpose.pose", tmp_path / "op")
    assert alone.exit_code == 0, alone.output
    x, mask, meta = clip(tmp_path / "op" / "openpose.npz")
    assert meta["format_version"] == "0.0" and x.shape == (93, 134)
    assert found(mask, 46, 67) == 1.0 and 0 < found(mask, 25, 46) < 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt, source, extra", [
    ("gislr", "gislr-silfa", []),
    ("mediapipe-npy", "mp_data", []),
    ("openpose", "openpose", ["--frame-size", "640x480"]),
])
def test_an_import_trains_at_once_without_class_counts_or_a_layout_flag(tmp_path, fmt, source, extra, one_thread):
    out = tmp_path / "clips"
    assert imported(fmt, FORMATS / source, out, *extra).exit_code == 0
    done = run("train", "transformer", "--keypoints-train", out, "--keypoints-val", out,
               "--output-dir", tmp_path / "run", "--classes-csv", out / "classes.csv", *TINY)
    assert done.exit_code == 0, done.output
    assert f"from {out / 'layout.json'} (found beside the clips)" in done.output
    import torch

    state = torch.load(tmp_path / "run" / "SignTransformer_last.pt", weights_only=True)
    names = pd.read_csv(out / "classes.csv")
    assert state["num_gloss"] == len(names) and state["num_cat"] == 1  # no cat column: one category
    assert state["keypoint_layout"]["point_names"] == json.loads((out / "layout.json").read_text())["point_names"]
