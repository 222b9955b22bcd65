"""The end of a training run: the best epoch is said to be chosen on the validation set, with the last
epoch beside it; a test split is scored once with the chosen checkpoint and stored in it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from slr.cli import app

TINY = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32", "--batch-size", "8",
        "--lr", "0.003", "--no-plots", "--device", "cpu", "--num-gloss", "5", "--num-cat", "2", "--epochs", "3"]


@pytest.fixture(scope="module")
def split_dir(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synthetic_dir with the train, val and test label files `slr split --test` writes."""
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("split") / "clips"
    shutil.copytree(synthetic_dir, directory)
    result = CliRunner().invoke(app, ["split", str(directory), "--group-by", r"clip_(\d+)", "--val", "0.25",
                                      "--test", "0.25"])
    assert result.exit_code == 0, result.output
    assert (directory / "labels_test.csv").is_file()
    return directory


def _train(directory: Path, out: Path, *flags: str):
    args = ["train", "transformer", "--keypoints-train", str(directory), "--keypoints-val", str(directory),
            "--labels-train-csv", str(directory / "labels_train.csv"), *TINY, "--output-dir", str(out), *flags]
    return CliRunner().invoke(app, args)


def test_split_test_file_is_scored_once_and_stored_in_the_chosen_checkpoint(split_dir, tmp_path):
    out = tmp_path / "run"
    result = _train(split_dir, out, "--labels-val-csv", str(split_dir / "labels_val.csv"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "chosen on the validation set" in text
    assert f"test split: 10 clips of {split_dir / 'labels_test.csv'} (found beside" in text  # said before training
    assert text.count("test: gloss acc") == 1

    from slr.engine.checkpoint import load_checkpoint

    best = load_checkpoint(out / "SignTransformer_best.pt", need="resume")
    stored = best["test"]
    assert stored["labels_csv"] == str(split_dir / "labels_test.csv")
    assert stored["epoch"] == best["best_epoch"]
    assert "test" not in load_checkpoint(out / "SignTransformer_last.pt", need="resume")
    # the same number as `slr evaluate` of the chosen checkpoint on the test clips
    report = tmp_path / "evaluation"
    evaluated = CliRunner().invoke(app, ["evaluate", str(out / "SignTransformer_best.pt"), "--keypoints",
                                         str(split_dir), "--labels-csv", str(split_dir / "labels_test.csv"),
                                         "--output-dir", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert stored["clips"] == metrics["clips"] == 10
    assert stored["gloss_acc"] == pytest.approx(metrics["gloss"]["top1"])
    assert stored["cat_acc"] == pytest.approx(metrics["cat"]["top1"])
    assert f"test: gloss acc {stored['gloss_acc']:.4f}, cat acc {stored['cat_acc']:.4f} on 10 clips" in text


def test_without_a_test_split_nothing_is_scored(split_dir, tmp_path):
    out = tmp_path / "run"  # validated on labels.csv itself: no labels_test.csv is looked for beside it
    result = _train(split_dir, out, "--labels-val-csv", str(split_dir / "labels_train.csv"), "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "test:" not in result.output
    from slr.engine.checkpoint import load_checkpoint

    assert "test" not in load_checkpoint(out / "SignTransformer_best.pt", need="resume")


def test_a_missing_test_file_is_refused_before_training(split_dir, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "nope.csv"
    result = _train(split_dir, out, "--labels-val-csv", str(split_dir / "labels_val.csv"), "--labels-test-csv",
                    str(missing))
    assert result.exit_code == 2, result.output
    assert str(missing) in " ".join(result.output.split())
    assert not (out / "SignTransformer_last.pt").exists()


def test_summary_lines_name_the_choice_and_the_last_epoch():
    from slr.engine.test_split import HeldOutAccuracy
    from slr.ui.training_view import outcome_lines

    class Outcome:
        history = [{"epoch": e, "val_gloss_acc": a, "val_cat_acc": 0.5} for e, a in ((1, 0.6), (2, 0.99), (3, 0.9))]
        best_metric, best_epoch = 0.99, 2
        test = None

    first, = outcome_lines(Outcome())
    assert first == ("done: epoch 2 chosen on the validation set (val_gloss_acc 0.9900, optimistic: those clips "
                     "chose it); last epoch 3: val_gloss_acc 0.9000, val_cat_acc 0.5000")
    Outcome.test = HeldOutAccuracy(Path("labels_test.csv"), 40, 0.85, 0.95, 2, Path("M_best.pt"))
    assert outcome_lines(Outcome())[1].startswith("test: gloss acc 0.8500, cat acc 0.9500 on 40 clips of labels_test.csv")
