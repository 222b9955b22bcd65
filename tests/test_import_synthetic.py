"""`slr import` on files written here in each format's shape: what a source of many signers gives
(`slr split --group-by signer` at once), bad input (one line per bad file, the others imported, a
non-zero exit), the output folder's existing tables (merged, or refused with the reason), resuming."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from slr.cli import app

pyarrow = pytest.importorskip("pyarrow")

PARTS = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_gislr(path: Path, frames: int, seed: int, first_frame: int = 0, nan_right: bool = True) -> None:
    """One GISLR-shaped parquet: 543 rows per frame, Kaggle's column types and part order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    types, index = [], []
    for name, size in PARTS:
        types += [name] * size
        index += list(range(size))
    n = len(types)
    xyz = rng.random((frames, n, 3))
    if nan_right:
        xyz[:, [i for i, t in enumerate(types) if t == "right_hand"]] = np.nan
    frame = np.repeat(np.arange(first_frame, first_frame + frames, dtype=np.int16), n)
    table = pa.table({
        "frame": frame,
        "row_id": [f"{f}-{t}-{i}" for f in range(first_frame, first_frame + frames) for t, i in zip(types, index)],
        "type": types * frames,
        "landmark_index": np.tile(np.array(index, np.int16), frames),
        "x": xyz[..., 0].ravel(), "y": xyz[..., 1].ravel(), "z": xyz[..., 2].ravel(),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def gislr_set(root: Path, signers: int = 4, signs: tuple[str, ...] = ("apple", "book", "cat")) -> Path:
    rows = ["path,participant_id,sequence_id,sign"]
    sequence = 1000
    for signer in range(signers):
        for k, sign in enumerate(signs):
            for repeat in range(2):
                sequence += 1
                rel = f"train_landmark_files/{signer + 1}/{sequence}.parquet"
                write_gislr(root / rel, frames=4 + repeat, seed=sequence)
                rows.append(f"{rel},{signer + 1},{sequence},{sign}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


def imported(*args):
    return run("import", *args, "--workers", "1")


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("failed:")]


# --- a source of many signers ---------------------------------------------------------------------


def test_gislr_signers_split_at_once(tmp_path):
    pytest.importorskip("sklearn")
    source = gislr_set(tmp_path / "asl-signs")
    out = tmp_path / "clips"
    result = imported("gislr", source, "--output-dir", out)
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert len(labels) == 24 and sorted(labels.signer.unique()) == ["1", "2", "3", "4"]
    split = run("split", out, "--group-by", "signer", "--val", "0.25")
    assert split.exit_code == 0, split.output
    train = pd.read_csv(out / "labels_train.csv", dtype=str)
    val = pd.read_csv(out / "labels_val.csv", dtype=str)
    assert not set(train.signer) & set(val.signer) and len(train) + len(val) == 24
    assert "signer" in val.columns  # the split files keep every column


def test_parts_and_dims_choose_the_points(tmp_path):
    write_gislr(tmp_path / "src" / "1.parquet", frames=3, seed=1)
    out = tmp_path / "hands"
    assert imported("gislr", tmp_path / "src", "--output-dir", out, "--parts", "hands", "--dims", "3").exit_code == 0
    with np.load(out / "1.npz") as z:
        assert z["X"].shape == (3, 42 * 3) and z["mask"].shape == (3, 42)
        assert not z["mask"][:, 21:].any()  # the right hand is NaN in these files
    layout = json.loads((out / "layout.json").read_text())
    assert layout["hands"] == [[0, 21], [21, 42]] and "shoulders" not in layout and layout["dims"] == 3
    bad = imported("gislr", tmp_path / "src", "--output-dir", tmp_path / "x", "--parts", "pose,tail")
    assert bad.exit_code == 2 and "unknown part 'tail'" in bad.output


# --- bad input: one line per bad file, the others imported, exit 1 ------------------------------------


def test_a_parquet_without_the_columns_or_rows_is_one_line_and_the_others_import(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    write_gislr(src / "good.parquet", frames=2, seed=0)
    pq.write_table(pa.table({"frame": [0], "x": [0.1]}), src / "columns.parquet")
    pq.write_table(pa.table({c: pa.array([], type) for c, type in (
        ("frame", pa.int16()), ("type", pa.string()), ("landmark_index", pa.int16()),
        ("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()))}), src / "empty.parquet")
    (src / "damaged.parquet").write_bytes(b"PAR1 not really")
    result = imported("gislr", src, "--output-dir", tmp_path / "out")
    assert result.exit_code == 1
    lines = failed_lines(result.output)
    assert len(lines) == 3
    assert any("columns.parquet" in l and "no column(s) type, landmark_index, y, z" in l for l in lines)
    assert any("empty.parquet" in l and "no frames" in l for l in lines)
    assert any("damaged.parquet" in l and "unreadable parquet" in l for l in lines)
    assert "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "out").glob("*.npz")] == ["good.npz"]


def test_npy_of_the_wrong_length_and_a_sequence_without_frames(tmp_path):
    root = tmp_path / "MP_Data"
    for sequence in ("0", "1"):
        (root / "hi" / sequence).mkdir(parents=True)
        for frame in range(3):
            np.save(root / "hi" / sequence / f"{frame}.npy", np.full(1662, 0.5))
    np.save(root / "hi" / "1" / "2.npy", np.zeros(300))
    (root / "hi" / "2").mkdir()  # a sequence folder with no frames
    result = imported("mediapipe-npy", root, "--output-dir", tmp_path / "out")
    assert result.exit_code == 1
    lines = failed_lines(result.output)
    assert len(lines) == 2
    assert any(str(Path("hi") / "1" / "2.npy") in l and "300 value(s)" in l for l in lines)
    assert any(l.rstrip().endswith("no frames (no .npy files in the sequence folder)") and "hi/2" in l for l in lines)
    with np.load(tmp_path / "out" / "hi_0.npz") as z:  # 1662 values: face included, found
        assert z["X"].shape == (3, 156) and z["mask"].all()


def openpose_frame(people: list[list[float]]) -> str:
    return json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": p, "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
         "hand_right_keypoints_2d": []} for p in people]})


def body(x: float, confidence: float = 0.9) -> list[float]:
    return [v for i in range(25) for v in (x + i, 100.0 + i, confidence)]


def test_openpose_frames_with_no_people_several_people_or_truncated(tmp_path):
    root = tmp_path / "op"
    (root / "two").mkdir(parents=True)
    (root / "two" / "two_000000000000_keypoints.json").write_text(openpose_frame([body(10, 0.2), body(300, 0.9)]))
    (root / "two" / "two_000000000001_keypoints.json").write_text(openpose_frame([]))  # nobody
    (root / "two" / "two_000000000002_keypoints.json").write_text(openpose_frame([body(20)]))
    (root / "nobody").mkdir()
    (root / "nobody" / "nobody_000000000000_keypoints.json").write_text(openpose_frame([]))
    (root / "cut").mkdir()
    (root / "cut" / "cut_000000000000_keypoints.json").write_text(openpose_frame([body(5)])[:40])
    result = imported("openpose", root, "--output-dir", tmp_path / "out")
    assert result.exit_code == 1
    lines = failed_lines(result.output)
    assert len(lines) == 2
    assert any("cut_000000000000_keypoints.json" in l and "not valid JSON" in l for l in lines)
    assert any("nobody" in l and "no person found in any of its 1 frame(s)" in l for l in lines)
    assert "1 of 3 frame(s) with no person (two_000000000001_keypoints.json)" in result.output
    assert "1 of 3 frame(s) hold several people" in result.output
    with np.load(tmp_path / "out" / "two.npz") as z:
        x, mask = z["X"], z["mask"]
        meta = json.loads(str(z["meta"][()]))
    assert x.shape == (3, 134) and x[0, 0] == 300  # the more confident person of frame 0
    assert not mask[1].any() and mask[2, :25].all()  # the empty frame keeps its place, nothing found
    assert meta["frames_with_several_people"] == 1 and meta["frames_without_people"] == 1


def write_pose(path: Path, version: float = 0.1) -> None:
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    names = ["LEFT_SHOULDER", "RIGHT_SHOULDER", "NOSE"]
    component = PoseHeaderComponent("POSE_LANDMARKS", names, [], [(255, 0, 0)] * 3, "XYZC")
    header = PoseHeader(0.1, PoseHeaderDimensions(200, 100, 0), [component])
    data = np.ones((4, 2, 3, 3), np.float32) * np.array([100.0, 50.0, 0.1], np.float32)
    data[:, 1] *= 1.5
    confidence = np.ones((4, 2, 3), np.float32)
    confidence[:, 0] = 0.2  # person 1 is the more confident
    confidence[:, :, 2] = 0  # no nose
    with open(path, "wb") as f:
        Pose(header, NumPyPoseBody(25, data, confidence)).write(f)
    if version != 0.1:  # the version is the file's first float
        raw = bytearray(path.read_bytes())
        raw[:4] = struct.pack("<f", version)
        path.write_bytes(bytes(raw))


def test_pose_files_of_an_unknown_version_or_damaged(tmp_path):
    pytest.importorskip("pose_format")
    src = tmp_path / "signs"
    src.mkdir()
    write_pose(src / "good.pose")
    write_pose(src / "future.pose", version=7.5)
    (src / "cut.pose").write_bytes((src / "good.pose").read_bytes()[:60])
    result = imported("pose", src, "--output-dir", tmp_path / "out")
    assert result.exit_code == 1
    lines = failed_lines(result.output)
    assert len(lines) == 2
    assert any("future.pose" in l and "version 7.5 is unknown" in l for l in lines)
    assert any("cut.pose" in l for l in lines)
    with np.load(tmp_path / "out" / "good.npz") as z:
        x, mask = z["X"], z["mask"]
        meta = json.loads(str(z["meta"][()]))
    assert meta["person"] == 1 and meta["frames_with_several_people"] == 4
    assert mask[:, [11, 12]].all() and not mask[:, 0].any()  # by name; the nose's confidence was 0
    assert x[0, 22:24] == pytest.approx([150 / 200, 75 / 100])  # person 1, divided by width and height
    assert "4 of 4 frame(s) hold several people; kept person 1" in result.output


# --- the output folder's tables ---------------------------------------------------------------------


def test_existing_labels_and_classes_are_merged_keeping_every_row_and_column(tmp_path):
    out = tmp_path / "clips"
    out.mkdir()
    (out / "labels.csv").write_text("file,gloss,note\nold_1,0,keep me\nold_2,1,\n")
    (out / "classes.csv").write_text("gloss,name,source\n0,book,mine\n1,zebra,mine\n")
    source = gislr_set(tmp_path / "asl-signs", signers=1)
    result = imported("gislr", source, "--output-dir", out)
    assert result.exit_code == 0, result.output
    classes = pd.read_csv(out / "classes.csv", dtype=str, keep_default_na=False)
    assert classes.to_dict("list") == {"gloss": ["0", "1", "2", "3"], "name": ["book", "zebra", "apple", "cat"],
                                       "source": ["mine", "mine", "", ""]}
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    assert list(labels.columns) == ["file", "gloss", "note", "signer", "sequence_id"]
    assert labels.iloc[0].to_dict() == {"file": "old_1", "gloss": "0", "note": "keep me", "signer": "",
                                        "sequence_id": ""}
    assert len(labels) == 2 + 6
    book = labels[labels.file == "1003"].iloc[0]  # the second sign of signer 1: book keeps id 0
    assert book.gloss == "0"


def test_labels_with_a_cat_column_need_a_category_for_every_sign_or_the_import_is_refused(tmp_path):
    out = tmp_path / "clips"
    out.mkdir()
    before = "file,gloss,cat\nold_1,0,0\n"
    (out / "labels.csv").write_text(before)
    (out / "classes.csv").write_text("gloss,name,cat,cat_name\n0,book,0,objects\n")
    source = gislr_set(tmp_path / "asl-signs", signers=1)
    refused = imported("gislr", source, "--output-dir", out)
    assert refused.exit_code == 2 and "'apple', 'cat' have no category in classes.csv" in refused.output
    assert (out / "labels.csv").read_text() == before and not list(out.glob("*.npz"))  # nothing written
    (out / "classes.csv").write_text("gloss,name,cat,cat_name\n0,book,0,objects\n1,apple,1,food\n2,cat,2,animals\n")
    done = imported("gislr", source, "--output-dir", out)
    assert done.exit_code == 0, done.output
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert dict(zip(labels.gloss, labels.cat)) == {"0": "0", "1": "1", "2": "2"}


@pytest.mark.parametrize("content, reason", [
    (b"file,gloss\nx,\xff\xfe\n", "not UTF-8"),
    (b"name,label\nx,1\n", "has no column(s) file"),
    (b"file,gloss\nx,1,2,3\n", "line 2 has 4 fields"),
])
def test_labels_that_cannot_be_merged_are_refused_and_left_as_they_are(tmp_path, content, reason):
    out = tmp_path / "clips"
    out.mkdir()
    (out / "labels.csv").write_bytes(content)
    write_gislr(tmp_path / "src" / "1.parquet", frames=2, seed=0)
    result = imported("gislr", tmp_path / "src", "--output-dir", out)
    assert result.exit_code == 2 and reason in result.output and "will not replace it" in result.output
    assert (out / "labels.csv").read_bytes() == content


def test_a_folder_of_another_layout_is_refused(tmp_path):
    write_gislr(tmp_path / "src" / "1.parquet", frames=2, seed=0)
    out = tmp_path / "clips"
    assert imported("gislr", tmp_path / "src", "--output-dir", out).exit_code == 0
    other = imported("gislr", tmp_path / "src", "--output-dir", out, "--parts", "hands")
    assert other.exit_code == 2 and "declares another layout" in other.output


def test_a_second_run_skips_complete_clips_and_redoes_missing_ones(tmp_path):
    source = gislr_set(tmp_path / "asl-signs", signers=1)
    out = tmp_path / "clips"
    assert imported("gislr", source, "--output-dir", out).exit_code == 0
    (out / "1001.npz").unlink()
    stamp = (out / "1002.npz").stat().st_mtime_ns
    again = run("import", "gislr", source, "--output-dir", out, "--workers", "1", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.output[again.output.index("{"):])
    assert (report["written"], report["skipped"]) == (1, 5)
    assert (out / "1002.npz").stat().st_mtime_ns == stamp
    assert len(pd.read_csv(out / "labels.csv")) == 6  # rows of skipped clips kept, none twice
    other = imported("gislr", source, "--output-dir", out, "--dims", "3")  # other settings: a new layout
    assert other.exit_code == 2


def test_the_format_is_found_or_asked_for(tmp_path):
    write_gislr(tmp_path / "src" / "a.parquet", frames=2, seed=0)
    np.save(tmp_path / "src" / "b.npy", np.zeros(258))
    mixed = imported("auto", tmp_path / "src", "--output-dir", tmp_path / "out")
    assert mixed.exit_code == 2 and "several formats" in mixed.output
    missing = imported("auto", tmp_path / "nowhere", "--output-dir", tmp_path / "out")
    assert missing.exit_code == 2 and "source not found" in missing.output


def crash_on_marked(sequence, target, options, on_frames=None):
    """An import task (run in the spawned workers, which import this module from tests/) that kills
    its process for a source whose name says `segv`, and otherwise imports as slr does."""
    import os
    import signal

    from slr.importers.run import import_one

    if "segv" in sequence.path.name:
        os.kill(os.getpid(), signal.SIGSEGV)
    return import_one(sequence, target, options, on_frames)


def test_a_file_that_kills_its_reader_is_one_failed_file_and_the_others_import(tmp_path):
    """Twelve files in chunks of several per process: the chunk whose process died is tried again one
    file per process, so the line names the file that kills, and its chunk-mates are imported."""
    from slr.importers.run import run_import
    from slr.settings import ImportSettings

    src = tmp_path / "src"
    for i in range(12):
        write_gislr(src / (f"{i:02d}-segv.parquet" if i == 5 else f"{i:02d}.parquet"), frames=2, seed=i)
    settings = ImportSettings(format="gislr", sources=[src], output_dir=tmp_path / "out", workers=1)
    result = run_import(settings, task=crash_on_marked)
    assert [o.source.name for o in result.failed] == ["05-segv.parquet"]
    assert "the import process died while reading it (signal 11, SIGSEGV)" in result.failed[0].error
    assert result.written == 11 and len(list((tmp_path / "out").glob("*.npz"))) == 11


def test_npy_sequences_saved_whole_as_one_array_each(tmp_path):
    """Some tutorials save `ROOT/<sign>/<sequence>.npy` as one [T, 1662] array instead of a file per frame."""
    root = tmp_path / "data"
    (root / "thanks").mkdir(parents=True)
    frames = np.zeros((5, 1662))
    frames[:, :132] = 0.5  # the pose found in every frame, nothing else
    np.save(root / "thanks" / "7.npy", frames)
    np.save(root / "thanks" / "8.npy", frames[:3])
    result = imported("mediapipe-npy", root, "--output-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out" / "thanks_7.npz") as z:
        assert z["X"].shape == (5, 156) and z["mask"][:, :25].all() and not z["mask"][:, 25:].any()
    assert pd.read_csv(tmp_path / "out" / "labels.csv", dtype=str).sequence.tolist() == ["7", "8"]


def test_openpose_frames_of_several_videos_in_one_folder_are_one_sequence_each(tmp_path):
    flat = tmp_path / "json"
    flat.mkdir()
    for video, frames in (("hello_s1", 3), ("thanks_s2", 2)):
        for t in range(frames):
            (flat / f"{video}_{t:012d}_keypoints.json").write_text(openpose_frame([body(10 * t)]))
    result = imported("openpose", flat, "--output-dir", tmp_path / "out", "--name-pattern", r"(\w+)_s\d")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out" / "hello_s1.npz") as z:
        assert z["X"].shape == (3, 134) and z["X"][2, 0] == 20
    assert np.load(tmp_path / "out" / "thanks_s2.npz")["X"].shape == (2, 134)
    assert (tmp_path / "out" / "classes.csv").read_text() == "gloss,name\n0,hello\n1,thanks\n"


def test_frame_numbers_with_gaps_and_far_apart():
    from slr.importers.gislr import _frame_numbers

    frame = np.array([107, 103, 103, 109, 107, 109], np.int64)  # 105 and 108 missing, rows out of order
    numbers, index = _frame_numbers(frame)
    assert numbers.tolist() == [103, 107, 109] and index.tolist() == [1, 0, 0, 2, 1, 2]
    far = np.array([5, 10**9, 5], np.int64)  # a range too wide to count over: sorted instead
    numbers, index = _frame_numbers(far)
    assert numbers.tolist() == [5, 10**9] and index.tolist() == [0, 1, 0]
