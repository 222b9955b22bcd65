"""What `slr import`'s output needs from the rest of slr (issue 22, points 3 and 4): a layout.json
beside the clips is used without a flag and named in the run's header; a width no layout explains
says what the run loses; labels without `cat` train as one category and reports then show no
category figures; `--num-gloss` / `--num-cat` default to what the data says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from slr.cli import app

TINY = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32", "--epochs", "1",
        "--batch-size", "16", "--no-plots", "--no-tensorboard"]
#: A declaration for odd_width's 16 points: a body with shoulders and one left/right pair.
LAYOUT = {"name": "test-16", "dims": 2, "points": 16, "mirror_pairs": [[1, 2]], "shoulders": [3, 4],
          "point_names": [f"p{i}" for i in range(16)]}


def odd_width(root: Path) -> Path:
    """train/ and val/ clips 32 values wide (16 points x (x, y)): a width no built-in layout explains."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 32), ("val", 12)):
        (root / split).mkdir(parents=True)
        rows = ["file,gloss,cat"]
        for i in range(count):
            gloss = i % 4
            x = rng.normal(gloss, 1.0, (8 + i % 5, 32)).astype(np.float32)
            np.savez(root / split / f"clip_{i:03d}.npz", X=x)
            rows.append(f"clip_{i:03d},{gloss},{gloss % 2}")
        (root / split / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def without_cat(clips: Path, root: Path) -> Path:
    """A copy of the `clips` fixture whose labels have no cat column (a signer column instead)."""
    shutil.copytree(clips, root)
    for split in ("train", "val"):
        labels = pd.read_csv(root / split / "labels.csv")
        labels = labels.drop(columns="cat").assign(signer="s1")
        labels.to_csv(root / split / "labels.csv", index=False)
    return root


def train(data: Path, out: Path, *extra):
    return run("train", "transformer", "--keypoints-train", data / "train", "--keypoints-val", data / "val",
               "--output-dir", out, *TINY, *extra)


def checkpoint(out: Path) -> dict:
    return torch.load(out / "SignTransformer_last.pt", weights_only=True)


# --- point 3: the layout beside the clips ------------------------------------------------------------


def test_validate_names_the_layout_found_beside_the_clips_and_the_flag_overrides_it(clips, tmp_path):
    known = run("validate", clips / "train")
    assert "keypoint layout mediapipe-78x2 (known from the width, 156)" in known.output
    data = odd_width(tmp_path / "data")
    bare = run("validate", data / "train")
    assert "keypoint layout: none known for 32 values per frame" in bare.output
    assert "match no layout slr knows, and none is declared" in bare.output and "layout.json" in bare.output
    (data / "layout.json").write_text(json.dumps(LAYOUT))  # the parent of train/ and val/
    found = run("validate", data / "train")
    assert found.exit_code == 0, found.output
    assert f"keypoint layout test-16 from {data / 'layout.json'} (found beside the clips)" in found.output
    assert "none is declared" not in found.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**LAYOUT, "name": "given"}))
    given = run("validate", data / "train", "--keypoint-layout", other)
    assert f"keypoint layout given from {other} (--keypoint-layout)" in given.output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"dims": 3}))
    refused = run("validate", data / "train", "--keypoint-layout", wrong)
    assert refused.exit_code == 2 and "does not fit clips of 32 values" in refused.output


@pytest.mark.slow
def test_training_uses_the_layout_beside_the_clips_and_says_so(tmp_path, one_thread):
    data = odd_width(tmp_path / "data")
    plain = train(data, tmp_path / "plain", "--num-gloss", "4", "--num-cat", "2")
    assert plain.exit_code == 0, plain.output
    assert "match no layout slr knows, and none is declared" in plain.output
    assert checkpoint(tmp_path / "plain")["keypoint_layout"] is None
    (data / "layout.json").write_text(json.dumps(LAYOUT))
    declared = train(data, tmp_path / "declared", "--num-gloss", "4", "--num-cat", "2")
    assert declared.exit_code == 0, declared.output
    header = next(line for line in declared.output.splitlines() if "values per frame" in line)
    assert f"keypoint layout test-16 from {data / 'layout.json'} (found beside the clips)" in header
    assert "none is declared" not in declared.output
    assert checkpoint(tmp_path / "declared")["keypoint_layout"]["shoulders"] == [3, 4]


# --- point 4: cat optional, class counts from the data --------------------------------------------------


@pytest.mark.slow
def test_labels_without_cat_train_one_category_and_reports_show_no_category(clips, tmp_path, one_thread):
    data = without_cat(clips, tmp_path / "data")
    done = train(data, tmp_path / "run")
    assert done.exit_code == 0, done.output
    state = checkpoint(tmp_path / "run")
    assert (state["num_gloss"], state["num_cat"]) == (4, 1)  # the largest gloss id + 1; one category
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["settings"]["num_gloss"] == 4
    best = tmp_path / "run" / "SignTransformer_best.pt"

    evaluated = run("evaluate", best, "--keypoints", data / "val", "--group-by", "signer")
    assert evaluated.exit_code == 0, evaluated.output
    assert "gloss: top-1" in evaluated.output and "category" not in evaluated.output.lower()
    predicted = run("predict", best, next((data / "val").glob("*.npz")))
    assert predicted.exit_code == 0 and "category" not in predicted.output
    as_json = run("predict", best, next((data / "val").glob("*.npz")), "--json")
    assert json.loads(as_json.output)[0]["cat"] is None
    compared = run("compare", best, tmp_path / "run" / "SignTransformer_last.pt", "--keypoints", data / "val",
                   "--output-dir", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.output
    assert "category" not in compared.output and "gloss top-1" in compared.output


@pytest.mark.slow
def test_the_guides_explicit_counts_still_work_and_a_too_small_one_is_the_error_it_was(clips, tmp_path, one_thread):
    data = without_cat(clips, tmp_path / "data")
    guide = train(data, tmp_path / "guide", "--num-gloss", "105", "--num-cat", "10")
    assert guide.exit_code == 0, guide.output
    assert (checkpoint(tmp_path / "guide")["num_gloss"], checkpoint(tmp_path / "guide")["num_cat"]) == (105, 10)
    small = train(data, tmp_path / "small", "--num-gloss", "3")
    assert small.exit_code == 2 and "outside 0..2 (--num-gloss 3)" in small.output


def test_class_counts_come_from_the_labels_and_the_classes_file(tmp_path):
    from slr.data.class_counts import class_counts

    train_csv = tmp_path / "train.csv"
    train_csv.write_text("file,gloss,cat\na,0,1\nb,3,0\n")
    val_csv = tmp_path / "val.csv"
    val_csv.write_text("file,gloss,cat\nc,5,2\n")
    assert class_counts([train_csv, val_csv], None) == (6, 3)
    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat,cat_name\n0,a,0,x\n9,j,4,y\n")
    assert class_counts([train_csv, val_csv], classes) == (10, 5)  # ids the classes file names have outputs
    bare = tmp_path / "bare.csv"
    bare.write_text("file,gloss\na,0\n")
    assert class_counts([bare, bare], classes) == (10, 1)  # no cat column: one category


def test_validate_says_labels_without_cat_are_one_category(clips, tmp_path):
    data = without_cat(clips, tmp_path / "data")
    report = run("validate", data / "train")
    assert report.exit_code == 0, report.output
    assert "the labels have no cat column: one category" in report.output
