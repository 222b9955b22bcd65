"""`slr evaluate`: metrics against hand-computed values, the files it writes, and its errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from slr.analysis.metrics import confusion_matrix, macro_f1, most_confused, per_class, task_metrics, topk_accuracy
from slr.cli import app
from slr.data.augment import build_transform
from slr.engine.checkpoint import load_trained_model, save_checkpoint
from slr.models.registry import build_model
from slr.engine.checkpoint import make_checkpoint
from slr.settings import TrainSettings

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)


def write_checkpoint(path: Path, *, input_dim: int, num_gloss: int, num_cat: int, class_names=None, edit=None) -> Path:
    """A checkpoint with the documented keys around a real (untrained) small model."""
    settings = TrainSettings(model="transformer", num_gloss=num_gloss, num_cat=num_cat, **TINY)
    torch.manual_seed(0)
    model = build_model("transformer", settings, input_dim, num_gloss, num_cat)
    if edit is not None:
        with torch.no_grad():
            edit(model)
    save_checkpoint(
        make_checkpoint(
            "model", model="transformer", model_class="SignTransformer",
            input_dim=input_dim, num_gloss=num_gloss, num_cat=num_cat,
            settings=settings.model_dump(mode="json"), model_state=model.state_dict(),
            class_names=class_names if class_names is not None else {"gloss": {}, "cat": {}},
            epoch=1, best_metric=0.0, history=[],),
        path,
    )
    return path


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)


def assert_one_line_error(result, *needles: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


# --- metric functions on a tiny known confusion ---------------------------------------------

Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 0, 2, 2, 2, 1]


def test_confusion_matrix_and_per_class_results_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)  # class 3: neither a label nor a prediction
    assert cm.tolist() == [[2, 1, 1, 0], [1, 1, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]]
    rows = per_class(cm, ["a", "b", "c", "d"])
    assert [r.accuracy for r in rows] == [0.5, 0.5, 0.75, None]
    assert [r.precision for r in rows] == pytest.approx([2 / 3, 1 / 3, 3 / 4, 0.0])
    # F1 = 2PR / (P + R): a = 2(2/3)(1/2)/(7/6) = 4/7, b = 2(1/3)(1/2)/(5/6) = 2/5, c = 3/4.
    assert [r.f1 for r in rows] == pytest.approx([4 / 7, 2 / 5, 3 / 4, 0.0])
    # Class d never occurs, so it does not pull the mean down.
    assert macro_f1(cm) == pytest.approx((4 / 7 + 2 / 5 + 3 / 4) / 3)
    assert macro_f1(confusion_matrix([0, 1], [0, 1], 2)) == 1.0
    # A class that is only ever predicted counts, with F1 0: class 0 has P = 1, R = 1/2, F1 = 2/3.
    assert macro_f1(confusion_matrix([0, 0], [0, 1], 2)) == pytest.approx((2 / 3 + 0) / 2)


def test_most_confused_pairs_by_count_then_ids():
    cm = np.array([[5, 3, 0], [1, 4, 3], [2, 0, 6]])
    pairs = most_confused(cm, ["a", "b", "c"], limit=3)
    assert [(p["true_name"], p["predicted_name"], p["count"]) for p in pairs] == [("a", "b", 3), ("b", "c", 3), ("c", "a", 2)]
    assert pairs[0]["share"] == pytest.approx(3 / 8)
    assert most_confused(np.eye(3, dtype=int), ["a", "b", "c"]) == []


def test_topk_accuracy_by_hand():
    scores = np.array(
        [
            [0.1, 0.5, 0.3, 0.1],  # true 2: rank 2
            [0.7, 0.1, 0.1, 0.1],  # true 0: rank 1
            [0.4, 0.3, 0.2, 0.1],  # true 3: rank 4
        ]
    )
    y = [2, 0, 3]
    assert topk_accuracy(scores, y, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, y, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, y, 3) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, y, 5) == 1.0  # k capped at the 4 classes
    metrics = task_metrics("gloss", scores, y, ["a", "b", "c", "d"])
    assert metrics.top5_k == 4 and metrics.top1 == pytest.approx(1 / 3)
    assert metrics.confusion.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]


# --- end to end: a model with a known answer -------------------------------------------------


def _always(gloss_bias, cat_bias):
    """Heads that ignore the clip: constant logits = the biases."""

    def edit(model):
        model.gloss_head.weight.zero_()
        model.gloss_head.bias.copy_(torch.tensor(gloss_bias))
        model.cat_head.weight.zero_()
        model.cat_head.bias.copy_(torch.tensor(cat_bias))

    return edit


def test_known_confusion_end_to_end(synthetic_dir, tmp_path):
    # 7 gloss classes, ranked 2 > 6 > 5 > 4 > 3 > 1 > 0 for every clip: always predicts gloss 2,
    # and the top 5 are {2, 6, 5, 4, 3}. Category: always 1.
    ckpt = write_checkpoint(
        tmp_path / "fixed.pt", input_dim=156, num_gloss=7, num_cat=2,
        class_names={"gloss": {2: "two"}, "cat": {}},
        edit=_always([0.0, 1.0, 9.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0]),
    )
    labels = pd.read_csv(synthetic_dir / "labels.csv")
    n = len(labels)
    support = labels["gloss"].value_counts().reindex(range(7), fill_value=0)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir), "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)

    gloss = report["gloss"]
    p2 = support[2] / n  # precision of class 2; its recall is 1
    f1_2 = 2 * p2 / (p2 + 1)
    assert gloss["top1"] == pytest.approx(p2)
    assert gloss["top5"] == pytest.approx(support[[2, 3, 4]].sum() / n)
    assert gloss["macro_f1"] == pytest.approx(f1_2 / 5)  # classes 0..4 occur; 5 and 6 never
    assert gloss["classes_in_f1"] == 5
    accuracy = {c["id"]: c["accuracy"] for c in gloss["per_class"]}
    assert accuracy == {0: 0.0, 1: 0.0, 2: 1.0, 3: 0.0, 4: 0.0, 5: None, 6: None}
    confused = [(p["true"], p["predicted"], p["count"]) for p in gloss["most_confused"]]
    assert sorted(confused) == sorted((g, 2, int(support[g])) for g in (0, 1, 3, 4))
    assert [c[2] for c in confused] == sorted((c[2] for c in confused), reverse=True)

    cat = report["cat"]
    share1 = (labels["cat"] == 1).mean()
    assert cat["top1"] == pytest.approx(share1)
    assert cat["top5_k"] == 2 and cat["top5"] == 1.0
    assert cat["macro_f1"] == pytest.approx((2 * share1 / (share1 + 1)) / 2)

    # Files: the confusion CSV holds the counts with names (checkpoint's for 2, clip names for the
    # rest, "gloss 5" where nothing names the class).
    table = pd.read_csv(out / "confusion_gloss.csv", index_col=0)
    assert list(table.columns) == ["gloss 0", "gloss 1", "two", "gloss 3", "gloss 4", "gloss 5", "gloss 6"]
    assert table["two"].tolist() == support.tolist()
    assert table.to_numpy().sum() == n and (table.drop(columns="two").to_numpy() == 0).all()
    for name in ("confusion_gloss.png", "confusion_cat.png"):
        assert_png(out / name)
    assert json.loads((out / "metrics.json").read_text())["gloss"]["top1"] == pytest.approx(p2)
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == n and (predictions["pred_gloss"] == 2).all()
    assert (predictions["pred_gloss_name"] == "two").all()


# --- end to end: a model trained by `slr train` ----------------------------------------------


@pytest.fixture
def trained(reference_runs) -> Path:
    """The session's transformer reference run (conftest): trained by `slr train`, read-only."""
    return reference_runs["transformer"].best


def test_evaluate_matches_the_model_run_clip_by_clip(trained, synthetic_dir, tmp_path):
    """Every probability in predictions.csv equals the model run on that clip alone, normalised as in training."""
    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat,cat_name\n0,zero,0,even\n1,one,1,odd\n2,two,0,even\n3,three,1,odd\n4,four,0,even\n")
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--classes", str(classes),
              "--output-dir", str(out), "--batch-size", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "confusion_gloss_png" in result.output

    model, state = load_trained_model(trained)
    settings = TrainSettings.model_validate(state["settings"])
    transform = build_transform(settings, "keypoints", 156, train=False)
    assert transform is not None  # normalisation is on by default: the comparison below depends on it
    predictions = pd.read_csv(out / "predictions.csv")
    for row in predictions.itertuples():
        with np.load(synthetic_dir / f"{row.file}.npz") as clip:
            x = transform(clip["X"].astype(np.float32), np.random.default_rng(0))
        with torch.no_grad():
            gloss_logits, cat_logits = model(torch.from_numpy(x)[None], None)
        probs = torch.softmax(gloss_logits, -1)[0].numpy()
        assert row.pred_gloss == probs.argmax()
        assert row.pred_gloss_prob == pytest.approx(probs.max(), abs=1e-5)
        assert row.pred_cat == int(cat_logits.argmax())
    names = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four"}
    assert (predictions["gloss_name"] == predictions["gloss"].map(names)).all()
    assert set(predictions["cat_name"]) == {"even", "odd"}

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gloss"]["top1"] == pytest.approx(predictions["gloss_correct"].mean())
    assert metrics["cat"]["top1"] == pytest.approx(predictions["cat_correct"].mean())
    table = pd.read_csv(out / "confusion_gloss.csv", index_col=0)
    crosstab = pd.crosstab(predictions["gloss"], predictions["pred_gloss"]).reindex(
        index=range(5), columns=range(5), fill_value=0
    )
    assert (table.to_numpy() == crosstab.to_numpy()).all()
    assert list(table.columns) == ["zero", "one", "two", "three", "four"]
    f1 = macro_f1(crosstab.to_numpy())
    assert metrics["gloss"]["macro_f1"] == pytest.approx(f1)
    assert math.isfinite(metrics["gloss"]["top5"]) and metrics["gloss"]["top5"] >= metrics["gloss"]["top1"]


def test_default_output_dir_and_names_from_clip_files(reference_run_copy, synthetic_dir):
    trained = reference_run_copy("transformer").best  # the outputs go beside it
    result = runner.invoke(app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    out = trained.parent / "evaluation"
    assert Path(report["files"]["metrics_json"]) == out / "metrics.json" and (out / "confusion_cat.png").is_file()
    # The synthetic clips are named clip_0001_gloss 3.npz: training stored those names.
    assert [c["name"] for c in report["gloss"]["per_class"]] == [f"gloss {i}" for i in range(5)]


# --- bad input: one message, exit 2 -----------------------------------------------------------


def test_missing_and_unreadable_checkpoint(synthetic_dir, tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "none.pt"), "--keypoints", str(synthetic_dir)])
    assert_one_line_error(result, "none.pt", "checkpoint not found")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    result = runner.invoke(app, ["evaluate", str(text), "--keypoints", str(synthetic_dir)])
    assert_one_line_error(result, "notes.pt", "not a readable checkpoint")


def test_bad_clips_and_labels(synthetic_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", input_dim=156, num_gloss=5, num_cat=2)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(synthetic_dir, corrupt)
    victim = sorted(corrupt.glob("*.npz"))[3]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated archive
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(corrupt), "--output-dir", str(tmp_path / "o")])
    assert_one_line_error(result, victim.name)

    narrow = tmp_path / "narrow"
    shutil.copytree(synthetic_dir, narrow)
    victim = sorted(narrow.glob("*.npz"))[0]
    np.savez(victim, X=np.zeros((10, 100), np.float32))
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(narrow), "--output-dir", str(tmp_path / "o")])
    assert_one_line_error(result, victim.stem, "100 wide, expected 156")

    small = write_checkpoint(tmp_path / "small.pt", input_dim=156, num_gloss=3, num_cat=2)
    result = runner.invoke(app, ["evaluate", str(small), "--keypoints", str(synthetic_dir)])
    assert_one_line_error(result, "labels.csv", "gloss ids 0..2")

    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(tmp_path / "nowhere")])
    assert_one_line_error(result, "nowhere", "not found")


def test_wrong_or_missing_directory_flags(synthetic_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", input_dim=156, num_gloss=5, num_cat=2)
    result = runner.invoke(app, ["evaluate", str(ckpt), "--features", str(synthetic_dir)])
    assert_one_line_error(result, "reads keypoints", "--keypoints DIR")
    result = runner.invoke(app, ["evaluate", str(ckpt)])
    assert_one_line_error(result, "exactly one of --keypoints DIR or --features DIR")
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir), "--features", str(synthetic_dir)])
    assert_one_line_error(result, "exactly one")
    assert not (tmp_path / "evaluation").exists()


def test_clips_with_nan_or_inf_are_refused_and_all_named(synthetic_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", input_dim=156, num_gloss=5, num_cat=2)
    out = tmp_path / "eval"
    args = ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir), "--output-dir", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_dir, broken)
    victims = sorted(broken.glob("*.npz"))[2:5]
    for victim, bad in zip(victims, (np.nan, np.inf, -np.inf)):
        with np.load(victim) as archive:
            x = archive["X"].astype(np.float32)
        x[0, 7] = bad  # one value in one frame is enough to make every probability NaN
        np.savez(victim, X=x)
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(broken), "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"3 of {len(list(broken.glob('*.npz')))} clips cannot be used" in result.output
    for victim in victims:
        assert victim.name in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # the earlier evaluation is untouched


def test_macro_f1_says_over_how_many_classes(synthetic_dir, tmp_path):
    # 7 gloss classes known to the checkpoint, 5 in the data (always predicting one of them): F1 is over 5.
    ckpt = write_checkpoint(tmp_path / "fixed.pt", input_dim=156, num_gloss=7, num_cat=2,
                            edit=_always([0.0, 1.0, 9.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0]))
    args = ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir), "--output-dir", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    gloss_line = next(line for line in result.output.splitlines() if line.startswith("gloss: top-1"))
    cat_line = next(line for line in result.output.splitlines() if line.startswith("category: top-1"))
    assert gloss_line.endswith("(over the 5 of 7 classes in the labels or the predictions)"), gloss_line
    assert cat_line.endswith("(2 classes)"), cat_line
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["gloss"]["classes_in_f1"] == 5


def test_output_dir_problems_are_refused_before_any_work(synthetic_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", input_dim=156, num_gloss=5, num_cat=2)
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me\n")
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir), "--output-dir", str(afile)])
    assert_one_line_error(result, "afile.txt", "--output-dir exists and is not a directory")
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir),
                                 "--output-dir", str(afile / "sub")])
    assert_one_line_error(result, "afile.txt exists and is not a directory")
    # An output file that is one of the inputs: the labels would be replaced by predictions.
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    labels = data / "predictions.csv"
    (data / "labels.csv").rename(labels)
    before = labels.read_bytes()
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(data), "--labels-csv", str(labels),
                                 "--output-dir", str(data)])
    assert_one_line_error(result, "predictions.csv would replace the input")
    assert afile.read_text() == "keep me\n" and labels.read_bytes() == before
    assert not (data / "metrics.json").exists()


def test_a_features_model_given_keypoints_says_which_flag(synthetic_dir, tmp_path):
    settings = TrainSettings(model="iv3_gru", num_gloss=5, num_cat=2, **TINY)
    model = build_model("iv3_gru", settings, 64, 5, 2)
    ckpt = tmp_path / "InceptionV3GRU_best.pt"
    save_checkpoint(
        make_checkpoint(
            "model", model="iv3_gru", model_class="InceptionV3GRU",
         input_dim=64, num_gloss=5, num_cat=2, settings=settings.model_dump(mode="json"),
         model_state=model.state_dict(), class_names={"gloss": {}, "cat": {}},
         epoch=1, best_metric=0.0, history=[]),
        ckpt,
    )
    result = runner.invoke(app, ["evaluate", str(ckpt), "--keypoints", str(synthetic_dir)])
    assert_one_line_error(result, "holds an InceptionV3GRU (iv3_gru) model", "--features DIR")


# --- results by group, extra label columns, the most confused classes ------------------------


def _labels_with_signers(synthetic_dir: Path, path: Path) -> pd.DataFrame:
    labels = pd.read_csv(synthetic_dir / "labels.csv")
    labels["signer"] = [("2", "10", "alice", "")[i % 4] for i in range(len(labels))]
    labels["session"] = [f"s{i % 2}" for i in range(len(labels))]
    labels.to_csv(path, index=False)
    return labels


@pytest.mark.slow
def test_group_by_equals_each_group_evaluated_alone(trained, synthetic_dir, tmp_path):
    labels = _labels_with_signers(synthetic_dir, tmp_path / "labels.csv")
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--labels-csv",
                                 str(tmp_path / "labels.csv"), "--group-by", "signer", "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["group_by"] == "signer"
    groups = report["groups"]
    assert [g["value"] for g in groups] == ["2", "10", "alice", "(blank)"]  # numbers in numeric order, blanks last
    assert sum(g["clips"] for g in groups) == len(labels)
    for group in groups:
        value = "" if group["value"] == "(blank)" else group["value"]
        subset = tmp_path / f"only-{group['value']}.csv"
        labels[labels["signer"].fillna("") == value].to_csv(subset, index=False)
        alone = runner.invoke(app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--labels-csv",
                                    str(subset), "--output-dir", str(tmp_path / "alone"), "--json"])
        assert alone.exit_code == 0, alone.output
        alone = json.loads(alone.stdout)
        assert group["clips"] == alone["clips"]
        assert group["gloss_top1"] == pytest.approx(alone["gloss"]["top1"])
        assert group["gloss_top5"] == pytest.approx(alone["gloss"]["top5"])
        assert group["gloss_macro_f1"] == pytest.approx(alone["gloss"]["macro_f1"])
        assert group["cat_top1"] == pytest.approx(alone["cat"]["top1"])
    table = pd.read_csv(out / "per_group.csv", keep_default_na=False, dtype={"signer": str})
    assert list(table["signer"]) == ["2", "10", "alice", "(blank)"]
    assert list(table["gloss_top1"]) == pytest.approx([g["gloss_top1"] for g in groups])

    # predictions.csv keeps the labels' own columns, row for row.
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False, dtype=str)
    assert list(predictions.columns[-2:]) == ["signer", "session"]
    expected = labels.assign(file=labels["file"].str.removesuffix(".npz")).fillna("").set_index("file")
    assert list(predictions["signer"]) == list(expected.loc[predictions["file"], "signer"])
    assert list(predictions["session"]) == list(expected.loc[predictions["file"], "session"])


def test_group_by_a_column_that_does_not_exist(trained, synthetic_dir, tmp_path):
    _labels_with_signers(synthetic_dir, tmp_path / "labels.csv")
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--labels-csv",
                                 str(tmp_path / "labels.csv"), "--group-by", "speaker", "--output-dir", str(out)])
    assert_one_line_error(result, "labels.csv", "--group-by 'speaker'", "file, gloss, cat, signer, session")
    assert not out.exists()


def test_confusion_top_draws_the_most_confused_classes(trained, synthetic_dir, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(trained), "--keypoints", str(synthetic_dir), "--top", "3",
                                 "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert_png(out / "confusion_gloss.png")
    table = pd.read_csv(out / "confusion_gloss.csv", index_col=0)
    assert table.shape == (5, 5)  # the CSV stays complete
