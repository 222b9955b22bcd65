"""The training engine on this CPU: outputs, loss bookkeeping, accumulation, resume, faults."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from slr.cli import app
from slr.engine import checkpoint as ckpt
from slr.engine.run_folder import GUIDE_COLUMNS
from slr.engine.run import resume, train
from slr.errors import TrainingStopped
from slr.settings import ResumeSettings, TrainSettings
from shown import raises_shown, shown

TINY = dict(d_model=32, num_heads=2, num_layers=1, ff_dim=64, gru_hidden=16, gru_layers=1)


def settings(clips: Path, out: Path, **overrides) -> TrainSettings:
    values = dict(
        model="transformer",
        keypoints_train=clips / "train",
        keypoints_val=clips / "val",
        features_train=clips / "train",
        features_val=clips / "val",
        num_gloss=4,
        num_cat=2,
        epochs=2,
        batch_size=16,
        lr=1e-3,
        output_dir=out,
        plots=False,
        # One thread, as slr's docs tell a run that must repeat bit for bit: tests here compare runs
        # to 1e-6, and with auto threads a run steps at whatever counts its timed windows chose.
        # Under bfloat16 (the default on a CPU that has it) 1 vs 2 threads moves a loss by ~1e-4.
        threads=1,
        **TINY,
    )
    values.update(overrides)
    return TrainSettings(**values)


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metrics(history) -> list[tuple[float, ...]]:
    return [
        (r["train_loss"], r["val_loss"], r["val_gloss_acc"], r["val_cat_acc"], r["train_gloss_acc"], r["lr"])
        for r in history
    ]


def assert_same_history(a, b, tol=1e-6):
    assert len(a) == len(b)
    for row_a, row_b in zip(metrics(a), metrics(b)):
        assert row_a == pytest.approx(row_b, abs=tol), (row_a, row_b)


@pytest.mark.parametrize("model", ["transformer", "iv3_gru"])
def test_outputs_follow_the_guide(clips, tmp_path, model):
    """Through the command line, as the guide runs it: the curves are drawn after the run."""
    out = tmp_path / "run"
    chosen = settings(clips, out, model=model, log_csv=tmp_path / "logs" / "m.csv", plots=True)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in chosen.model_dump(mode="json").items()
                                      if v is not None and k != "model"}))
    result = CliRunner().invoke(app, ["train", model, "--config", str(config)])
    assert result.exit_code == 0, result.output
    name = "SignTransformer" if model == "transformer" else "InceptionV3GRU"
    assert (out / f"{name}_last.pt").is_file() and (out / f"{name}_best.pt").is_file()
    assert (out / "settings.json").is_file()
    rows = read_log(tmp_path / "logs" / "m.csv")
    assert list(rows[0])[: len(GUIDE_COLUMNS)] == GUIDE_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (tmp_path / "logs" / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = ckpt.load_checkpoint(out / f"{name}_last.pt")
    assert state["epoch"] == 2 and state["model_class"] == name
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["model_state"])
    best = ckpt.load_checkpoint(out / f"{name}_best.pt")
    assert best["best_metric"] == max(float(r["val_gloss_acc"]) for r in rows)


def test_training_learns(clips, tmp_path):
    outcome = train(settings(clips, tmp_path, epochs=6, lr=3e-3))  # the synthetic classes are learnt by epoch 6
    assert outcome.history[-1]["train_loss"] < 0.6 * outcome.history[0]["train_loss"]
    assert outcome.best_metric >= 0.75


def test_logged_train_loss_is_the_epoch_mean(clips, tmp_path):
    """With a learning rate too small to move the weights, the epoch's logged loss must equal the
    sample-weighted mean loss of the initial model over all training clips, not the last batch's."""
    # float32 (amp off on a CPU with native bfloat16 too): the check below sums float32 losses
    # and the plain transformer: the convolution blocks' batch norm normalises by the batch in
    # training but by its running statistics in eval mode, which the reference loss below uses
    s = settings(clips, tmp_path, epochs=1, lr=1e-12, dropout=0.0, augment=False, batch_size=20, amp=False,
                 conv_kernel=0)
    torch.manual_seed(s.seed)
    from slr.engine.data_setup import build_data
    from slr.engine.distributed import DistInfo
    from slr.models.registry import build_model

    data = build_data(s, DistInfo(), torch.device("cpu"))
    model = build_model("transformer", s, data.input_dim, 4, 2).eval()
    loader, _ = data.loaders(s, DistInfo(), torch.device("cpu"), workers=0)
    loader.sampler.set_epoch(1)
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            g, c = model(batch.x, batch.mask)
            smooth = s.label_smoothing  # the training loss is smoothed as the settings say
            loss = 0.5 * torch.nn.functional.cross_entropy(
                g, batch.gloss, label_smoothing=smooth
            ) + 0.5 * torch.nn.functional.cross_entropy(c, batch.cat, label_smoothing=smooth)
            total += loss.item() * len(batch)
            n += len(batch)
    outcome = train(s)
    assert outcome.history[0]["train_loss"] == pytest.approx(total / n, rel=1e-5)


def test_gradient_accumulation_with_a_partial_last_window(clips, tmp_path):
    """72 clips: batch 16 x 2 micro-steps (windows 32, 32, and a last one of 8) must train exactly
    like batch 32 (batches 32, 32, 8): the short window divides by its own size."""
    # to 1e-5: float32 on any CPU, and no batch norm (the convolution blocks' normalises each
    # micro-batch by its own statistics, so accumulation is not one big batch there)
    common = dict(epochs=2, dropout=0.0, augment=False, amp=False, conv_kernel=0)
    accumulated = train(settings(clips, tmp_path / "a", batch_size=16, gradient_accumulation_steps=2, **common))
    plain = train(settings(clips, tmp_path / "b", batch_size=32, **common))
    assert_same_history(accumulated.history, plain.history, tol=1e-5)


def test_resume_matches_a_straight_run(clips, tmp_path):
    """N epochs straight == N/2 epochs, then `slr resume` to N: losses and accuracies to 1e-6."""
    # plateau, not cosine: a cosine curve depends on --epochs, which differs between the two runs.
    common = dict(scheduler="plateau", scheduler_patience=0, mirror_prob=0.5, rotate_deg=10, frame_dropout=0.1)
    straight = train(settings(clips, tmp_path / "straight", epochs=4, **common))
    half = settings(clips, tmp_path / "resumed", epochs=2, **common)
    train(half)
    resumed = resume(
        ResumeSettings(checkpoint=tmp_path / "resumed" / "SignTransformer_last.pt", overrides={"epochs": 4})
    )
    assert_same_history(straight.history, resumed.history)
    log = read_log(tmp_path / "resumed" / "log.csv")
    assert [int(r["epoch"]) for r in log] == [1, 2, 3, 4]  # the log continued, nothing lost or repeated


def test_train_with_resume_flag_and_epochs_is_the_total(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=2))
    last = tmp_path / "SignTransformer_last.pt"
    again = resume(ResumeSettings(checkpoint=last, overrides={"epochs": 3}))
    assert [r["epoch"] for r in again.history] == [1, 2, 3]


def test_resume_refuses_another_model_or_class_count(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1))
    last = tmp_path / "SignTransformer_last.pt"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["train", "iv3_gru", "--features-train", str(clips / "train"), "--features-val", str(clips / "val"),
         "--num-gloss", "4", "--num-cat", "2", "--resume", str(last)],
    )
    assert result.exit_code == 2 and "not 'iv3_gru'" in result.output
    result = runner.invoke(app, ["resume", str(last), "--num-gloss", "5"])
    assert result.exit_code == 2 and "num_gloss = 4" in result.output


def test_non_finite_loss_stops_and_keeps_checkpoints(clips, tmp_path):
    train(settings(clips, tmp_path, epochs=1))
    best, last = tmp_path / "SignTransformer_best.pt", tmp_path / "SignTransformer_last.pt"
    before = best.read_bytes(), last.read_bytes()
    with raises_shown(TrainingStopped, r"non-finite.*check --alpha 1e\+39"):
        # alpha this large overflows float32: the loss is infinite from the first step.
        resume(ResumeSettings(checkpoint=last, overrides={"epochs": 2, "alpha": 1e39}))
    assert (best.read_bytes(), last.read_bytes()) == before
    assert ckpt.load_checkpoint(best)["epoch"] == 1


def test_early_stop_and_plateau_scheduler(clips, tmp_path):
    outcome = train(
        settings(clips, tmp_path, epochs=10, lr=1e-7, early_stop=2, scheduler="plateau", scheduler_patience=0)
    )
    assert len(outcome.history) == 3  # one improvement, then two epochs without one
    lrs = [r["lr"] for r in outcome.history]
    assert lrs[1] < lrs[0] or lrs[2] < lrs[1]  # plateau cut the rate after an epoch without progress


def test_guide_cpu_commands_degrade_gpu_options_to_notices(clips, tmp_path, monkeypatch):
    from slr.engine import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)  # a CPU where --amp cannot help
    args = [
        "train", "transformer",
        "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
        "--labels-train-csv", str(clips / "train" / "labels.csv"),
        "--labels-val-csv", str(clips / "val" / "labels.csv"),
        "--num-gloss", "4", "--num-cat", "2", "--epochs", "1", "--batch-size", "8",
        "--auto-workers", "--auto-batch-size", "--enable-parallel", "--amp", "--compile-model",
        "--gradient-accumulation-steps", "2", "--grad-clip", "1.0", "--scheduler", "plateau",
        "--early-stop", "15", "--lr", "5e-5", "--weight-decay", "1e-4", "--pin-memory",
        "--log-csv", str(tmp_path / "logs" / "cpu.csv"), "--output-dir", str(tmp_path / "out"),
        "--d-model", "32", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "64", "--no-plots",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for flag in ("--amp", "--compile-model", "--enable-parallel", "--pin-memory", "--auto-batch-size"):
        assert flag in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / "SignTransformer_last.pt").is_file()
    rows = read_log(tmp_path / "logs" / "cpu.csv")
    assert len(rows) == 1 and math.isfinite(float(rows[0]["train_loss"]))


def test_missing_data_flags_and_directories_are_clear_errors(clips, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "transformer", "--num-gloss", "4", "--num-cat", "2"])
    assert result.exit_code == 2 and "--keypoints-train DIR is required" in result.output
    result = runner.invoke(
        app, ["train", "transformer", "--keypoints-train", str(tmp_path / "nope"), "--keypoints-val", str(clips / "val")]
    )
    assert result.exit_code == 2 and "nope" in result.output and "Traceback" not in result.output


def test_bad_data_is_refused_before_training(clips, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(clips / "train", bad)
    next(bad.glob("*.npz")).write_text("not an archive")
    result = CliRunner().invoke(
        app,
        ["train", "transformer", "--keypoints-train", str(bad), "--keypoints-val", str(clips / "val"),
         "--num-gloss", "4", "--num-cat", "2", "--output-dir", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert "slr validate" in result.output
    assert not (tmp_path / "o" / "SignTransformer_last.pt").exists()


def test_workers_give_the_same_run(clips, tmp_path):
    common = dict(epochs=1, mirror_prob=0.5, frame_dropout=0.1)
    zero = train(settings(clips, tmp_path / "w0", num_workers=0, **common))
    two = train(settings(clips, tmp_path / "w2", num_workers=2, **common))
    assert_same_history(zero.history, two.history)


def test_the_validate_hint_repeats_the_flags_that_found_the_problem(clips, tmp_path):
    # Gloss ids 0-3 with --num-gloss 3: `slr validate DIR` alone would find nothing wrong.
    result = CliRunner().invoke(
        app,
        ["train", "transformer", "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
         "--num-gloss", "3", "--num-cat", "2", "--kp-key", "X", "--output-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    hint = result.output.split("run `")[-1].split("`")[0]
    assert hint.startswith("slr validate ") and "--num-gloss 3 --num-cat 2" in hint
    validate = CliRunner().invoke(app, hint.split()[1:])
    assert validate.exit_code == 1  # the suggested command finds the same problem


def test_curves_that_cannot_be_drawn_do_not_fail_a_finished_run(clips, tmp_path):
    (tmp_path / "log.png").mkdir()  # where the curves would go
    result = CliRunner().invoke(
        app,
        ["train", "transformer", "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
         "--num-gloss", "4", "--num-cat", "2", "--epochs", "1", "--output-dir", str(tmp_path), "--plots",
         *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]],
    )
    assert result.exit_code == 0, result.output
    assert "training curves not drawn" in result.output and "slr plot" in result.output


def test_a_non_finite_loss_from_the_data_blames_the_data_not_the_learning_rate(tmp_path):
    """Before: a batch of implausible inputs ended in "Try a lower --lr". (Clips past float32's safe
    range are now refused when read, and pre-norm layers absorb the rest, so this drives the stop
    itself with such a batch; a batch of ordinary values still names the learning rate.)"""
    from slr.data.dataset import ClipBatch
    from slr.engine.distributed import DistInfo
    from slr.engine.observer import SilentObserver
    from slr.engine.run_folder import run_paths
    from slr.engine.training import Trainer
    from slr.models.registry import build_model

    run = settings(tmp_path, tmp_path / "out")
    model = build_model("transformer", run, 12, 4, 2)
    trainer = Trainer(run, model, None, None, torch.device("cpu"), run_paths(run), DistInfo(), SilentObserver(),
                      None, {})

    def batch(scale: float) -> ClipBatch:
        x = torch.rand(2, 5, 12) * scale
        return ClipBatch(x=x, mask=torch.ones(2, 5, dtype=torch.bool), lengths=torch.full((2,), 5),
                         gloss=torch.zeros(2, dtype=torch.long), cat=torch.zeros(2, dtype=torch.long),
                         index=torch.arange(2))

    with pytest.raises(TrainingStopped) as info:
        trainer._stop_non_finite(1, 3, batch(1e9))
    assert "most likely comes from the data" in shown(info.value) and "--lr" not in shown(info.value)
    with pytest.raises(TrainingStopped) as info:
        trainer._stop_non_finite(1, 3, batch(1.0))
    assert "Try a lower --lr" in shown(info.value)
