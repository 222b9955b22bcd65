"""What a resumed or repeated run does with settings and files: flags given on resume take effect,
outputs go beside the checkpoint, and an earlier run's files are kept, never overwritten."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.engine import checkpoint as ckpt
from slr.engine.run import resume, train
from slr.errors import CheckpointError, ConfigError, DataError
from slr.settings import ResumeSettings
from shown import raises_shown, shown

from test_training import TINY, read_log, settings

runner = CliRunner()


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def data_flags(clips: Path) -> list[str]:
    small = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    return ["--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
            "--num-gloss", "4", "--num-cat", "2", "--no-plots", *small]


def test_lr_weight_decay_and_patience_given_on_resume_take_effect(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1, scheduler="plateau", scheduler_patience=5))
    last = tmp_path / "SignTransformer_last.pt"
    resumed = resume(ResumeSettings(
        checkpoint=last, overrides={"epochs": 2, "lr": 3e-3, "weight_decay": 0.05, "scheduler_patience": 1}))
    assert resumed.history[1]["lr"] == pytest.approx(3e-3)  # trained at the new rate, not the stored 1e-3
    state = ckpt.load_checkpoint(last)
    groups = state["optimizer_state"]["param_groups"]
    assert all(g["weight_decay"] == 0.05 for g in groups)
    assert state["scheduler_state"]["patience"] == 1
    assert state["settings"]["lr"] == 3e-3  # what is recorded is what ran


def test_cosine_resumed_with_more_epochs_follows_the_longer_curve(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=3, scheduler="cosine"))
    resumed = resume(
        ResumeSettings(checkpoint=tmp_path / "SignTransformer_last.pt", overrides={"epochs": 5}))
    lrs = [row["lr"] for row in resumed.history]
    # Epoch 4 of a 5-epoch curve, not the 0 where the 3-epoch curve ended.
    assert lrs[3] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 5)))
    assert lrs[4] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_another_scheduler_on_resume_is_refused_clearly(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1, scheduler="plateau"))
    with raises_shown(CheckpointError, "trained with --scheduler plateau"):
        resume(ResumeSettings(
            checkpoint=tmp_path / "SignTransformer_last.pt", overrides={"epochs": 2, "scheduler": "cosine"}))


def test_resume_of_a_moved_run_writes_beside_it_and_leaves_the_original_alone(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(settings(clips, Path("runs"), epochs=1))
    original = digests(tmp_path / "runs")
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    result = runner.invoke(app, ["resume", "copy/SignTransformer_last.pt", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert digests(tmp_path / "runs") == original
    assert [int(r["epoch"]) for r in read_log(tmp_path / "copy" / "log.csv")] == [1, 2]


def test_resume_from_elsewhere_names_the_stored_data_path(clips, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(clips, data)
    monkeypatch.chdir(tmp_path)
    train(settings(Path("data"), Path("runs"), epochs=1))
    monkeypatch.chdir(tmp_path / "runs")
    with raises_shown(DataError, "--keypoints-train data/train, stored in the checkpoint"):
        resume(ResumeSettings(checkpoint=Path("SignTransformer_last.pt"), overrides={"epochs": 2}))


def test_guide_resume_spelling_takes_the_model_and_folder_from_the_checkpoint(clips, tmp_path):
    train(settings(clips, tmp_path / "gru", model="iv3_gru", epochs=1))
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "gru" / "InceptionV3GRU_last.pt"),
                                 "--features-train", str(clips / "train"), "--features-val", str(clips / "val"),
                                 "--epochs", "2", *data_flags(clips)[4:]])
    assert result.exit_code == 0, result.output
    assert ckpt.load_checkpoint(tmp_path / "gru" / "InceptionV3GRU_last.pt")["epoch"] == 2


def test_a_new_run_keeps_the_earlier_run_in_the_same_folder(clips, tmp_path):
    out = tmp_path / "runs"
    train(settings(clips, out, epochs=1))
    earlier = digests(out)
    train(settings(clips, out, epochs=1, seed=7))
    kept = list((out / "earlier").iterdir())
    assert len(kept) == 1 and digests(kept[0]) == earlier  # every file, unchanged
    assert ckpt.load_checkpoint(out / "SignTransformer_last.pt")["settings"]["seed"] == 7


def test_resuming_an_older_checkpoint_keeps_the_later_files(clips, tmp_path):
    out = tmp_path / "runs"
    train(settings(clips, out, epochs=3, lr=1e-7))  # best stays at epoch 1
    assert ckpt.load_checkpoint(out / "SignTransformer_best.pt")["epoch"] == 1
    later = {name: digest for name, digest in digests(out).items() if name != "SignTransformer_best.pt"}
    resume(ResumeSettings(checkpoint=out / "SignTransformer_best.pt", overrides={"epochs": 2}))
    kept = next((out / "earlier").iterdir())
    assert digests(kept) == later  # the 3-epoch _last.pt and its log survive
    assert len(read_log(out / "log.csv")) == 2


def test_resume_in_place_moves_nothing(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1))
    resume(ResumeSettings(checkpoint=tmp_path / "SignTransformer_last.pt", overrides={"epochs": 2}))
    assert not (tmp_path / "earlier").exists()


def test_log_csv_that_is_not_a_log_is_refused_before_anything_is_written(clips, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(clips, data)
    labels = data / "train" / "labels.csv"
    before = labels.read_bytes()
    with pytest.raises(ConfigError, match="not an slr training log"):
        train(settings(data, tmp_path / "out", epochs=1, log_csv=labels))
    assert labels.read_bytes() == before
    assert not (tmp_path / "out" / "SignTransformer_last.pt").exists()


@pytest.mark.parametrize("where", ["log-dir", "output-file"])
def test_unusable_output_paths_fail_before_training(clips, tmp_path, where):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    flag = ["--log-csv", str(tmp_path / "a-dir")] if where == "log-dir" else ["--output-dir", str(tmp_path / "a-file")]
    out = [] if where == "output-file" else ["--output-dir", str(tmp_path / "out")]
    result = runner.invoke(app, ["train", "transformer", *data_flags(clips), *flag, *out])
    assert result.exit_code == 2
    assert ("--log-csv is a directory" if where == "log-dir" else "--output-dir exists and is not a directory") \
        in result.output
    assert "epoch 1" not in result.output and ".tmp" not in result.output


def test_resuming_an_early_stopped_run_says_why_nothing_happens(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=10, lr=1e-7, early_stop=1))
    result = runner.invoke(app, ["resume", str(tmp_path / "SignTransformer_last.pt"), "--epochs", "20"])
    assert result.exit_code == 0
    assert "stopped early" in result.output and "--early-stop none" in result.output
    again = runner.invoke(app, ["resume", str(tmp_path / "SignTransformer_last.pt"), "--epochs", "3", "--early-stop", "none"])
    assert again.exit_code == 0, again.output  # the hint works as given
    assert ckpt.load_checkpoint(tmp_path / "SignTransformer_last.pt")["epoch"] == 3


def test_bad_stored_settings_name_the_checkpoint(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1))
    last = tmp_path / "SignTransformer_last.pt"
    state = ckpt.load_checkpoint(last)
    state["settings"]["lr"] = -1.0
    ckpt.save_checkpoint(state, last)
    result = runner.invoke(app, ["resume", str(last), "--epochs", "2"])
    assert result.exit_code == 2
    assert "settings stored in the checkpoint" in result.output and "--lr" in result.output


@pytest.mark.slow
def test_model_defaults_to_transformer_and_the_guide_smoke_test_runs(clips, tmp_path):
    result = runner.invoke(app, ["train", *data_flags(clips), "--epochs", "1", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "SignTransformer_last.pt").is_file()
    # The guide's smoke test, word for word.
    result = runner.invoke(app, ["train", "--model", "transformer", "--smoke-test", "--num-gloss", "105",
                                 "--num-cat", "10"])
    assert result.exit_code == 0, result.output
    assert "smoke" in result.output.lower()


def test_resume_help_says_defaults_come_from_the_checkpoint():
    result = runner.invoke(app, ["resume", "--help"], terminal_width=120)
    assert "from the checkpoint" in result.output and "(default: 20)" not in result.output


def test_two_models_in_one_folder_never_overwrite_each_others_files(clips, tmp_path):
    out = tmp_path / "m"
    train(settings(clips, out, epochs=1))
    transformer_run = digests(out)
    train(settings(clips, out, model="iv3_gru", epochs=1))
    gru_run = digests(out)
    kept = next((out / "earlier").iterdir())
    assert digests(kept) == transformer_run  # the whole earlier run moved together, checkpoints too
    assert not (out / "SignTransformer_last.pt").exists()
    # Resuming the moved transformer run continues in its new folder; the iv3_gru run is untouched.
    resume(ResumeSettings(checkpoint=kept / "SignTransformer_last.pt", overrides={"epochs": 2}))
    assert digests(out) == gru_run
    assert ckpt.load_checkpoint(kept / "SignTransformer_last.pt")["epoch"] == 2


def test_a_log_shared_by_two_runs_is_kept_beside_itself(clips, tmp_path):
    shared = tmp_path / "logs" / "share.csv"
    train(settings(clips, tmp_path / "a", epochs=1, log_csv=shared))
    first = shared.read_bytes()
    train(settings(clips, tmp_path / "b", epochs=1, log_csv=shared))
    kept = next((tmp_path / "logs" / "earlier").iterdir())
    assert (kept / "share.csv").read_bytes() == first
    assert not (tmp_path / "b" / "earlier").exists()  # b was a new folder: nothing of its own to keep


# -- one resume, one unit of files (issue: `train --resume` reset settings; a stale log stayed) -----


def test_train_with_resume_keeps_the_stored_settings_like_slr_resume(clips, tmp_path, monkeypatch):
    """`slr train ... --resume CKPT` used to train every setting not given again at its default
    (lr 3e-3 and weight decay 0.05 continued at 1e-4 and 0); now it is `slr resume`: stored < config
    < flags, with a line for each setting that changes."""
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["train", "transformer", *data_flags(clips), "--epochs", "1", "--lr", "3e-3",
                                "--weight-decay", "0.05", "--output-dir", "runs"])
    assert first.exit_code == 0, first.output
    config = tmp_path / "more.yaml"
    config.write_text("scheduler_patience: 2\nepochs: 9\n")
    result = runner.invoke(app, ["train", "--resume", "runs/SignTransformer_last.pt", "--config", str(config),
                                 "--epochs", "2"])
    assert result.exit_code == 0, result.output
    stored = ckpt.load_checkpoint(tmp_path / "runs" / "SignTransformer_last.pt")["settings"]
    assert (stored["lr"], stored["weight_decay"]) == (3e-3, 0.05)  # kept, not reset to the defaults
    assert (stored["scheduler_patience"], stored["epochs"]) == (2, 2)  # the config file, then the flag
    assert "--epochs: 2 (the checkpoint has 1)" in result.output
    assert "--scheduler-patience: 2 (the checkpoint has 5)" in result.output
    assert "--lr" not in result.output.split("resuming")[0]  # unchanged settings get no line


def test_the_guides_local_then_multi_gpu_sequence_moves_the_whole_earlier_run(clips, tmp_path, monkeypatch):
    """The guide's "Local Machine" run (no --log-csv), then its "Multi-GPU" run (--log-csv logs/...):
    the first run's log and curves used to stay in runs/ beside the second run's checkpoints."""
    monkeypatch.chdir(tmp_path)
    local = runner.invoke(app, ["train", "transformer", *data_flags(clips)[:-len(TINY) - 1], *data_flags(clips)[-len(TINY):],
                                "--epochs", "1", "--plots"])
    assert local.exit_code == 0, local.output
    first_run = digests(tmp_path / "runs")
    assert {"log.csv", "log.png", "settings.json", "SignTransformer_last.pt"} <= set(first_run)
    multi = runner.invoke(app, ["train", "transformer", *data_flags(clips), "--epochs", "1",
                                "--log-csv", "logs/transformer_multi_gpu.csv"])
    assert multi.exit_code == 0, multi.output
    kept = list((tmp_path / "runs" / "earlier").iterdir())
    assert len(kept) == 1 and digests(kept[0]) == first_run  # exactly the earlier run's files, unchanged
    now = set(digests(tmp_path / "runs"))
    assert "log.csv" not in now and "log.png" not in now  # no stale log beside the new checkpoints
    assert (tmp_path / "logs" / "transformer_multi_gpu.csv").is_file()


def tree(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` by its path there, outside earlier/ and tensorboard/ (whose
    event files keep their own earlier/, slr/engine/run_folder.py)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in ("earlier", "tensorboard")}


@pytest.mark.slow
def test_a_new_run_moves_the_earlier_runs_exports_and_reports_with_it(clips, tmp_path):
    """What slr export, evaluate and compare wrote into a run's folder by default describes that run's
    checkpoints: a new run into the folder moves it to earlier/<time>/ with them, and leaves files
    that are not slr's where they are."""
    out = tmp_path / "keep"
    train(settings(clips, out, epochs=1))
    best, last = out / "SignTransformer_best.pt", out / "SignTransformer_last.pt"
    for args in (["export", str(best), "--format", "torchscript"], ["export", str(last), "--format", "onnx"],
                 ["evaluate", str(best), "--keypoints", str(clips / "val")],
                 ["compare", str(best), str(last), "--keypoints", str(clips / "val")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    mine = {"notes.txt": "the user's own\n", "evaluation/my-remarks.txt": "also the user's\n"}
    for name, text in mine.items():
        (out / name).write_text(text)
    first = tree(out)
    for name in ("SignTransformer_best.ts.pt", "SignTransformer_last.onnx", "evaluation/metrics.json",
                 "evaluation/predictions.csv", "comparison/comparison.json"):
        assert name in first  # what the commands write by default, where they write it

    train(settings(clips, out, epochs=1, seed=7))
    kept = list((out / "earlier").iterdir())
    assert len(kept) == 1
    moved = {name: digest for name, digest in first.items() if name not in mine}
    assert tree(kept[0]) == moved  # all of the first run, unchanged
    now = tree(out)
    assert not set(now) & (set(moved) - {"SignTransformer_best.pt", "SignTransformer_last.pt", "log.csv",
                                          "settings.json"})  # no export or report of the first run is left
    for name, text in mine.items():
        assert (out / name).read_text() == text  # not slr's: stays where the user put it
    assert not (out / "comparison").exists()  # emptied by the move
