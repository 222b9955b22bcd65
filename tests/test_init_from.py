"""`slr train --init-from CKPT`: weights only, the layout must match, a head of another class count
starts afresh (said in one line); `--freeze-encoder-epochs N` trains only the heads for N epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from slr.cli import app

TINY = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32", "--batch-size", "8",
        "--lr", "0.003", "--no-plots", "--device", "cpu"]


def _train(clips: Path, out: Path, *flags: str):
    args = ["train", "transformer", "--keypoints-train", str(clips), "--keypoints-val", str(clips), *TINY,
            "--output-dir", str(out), *flags]
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def pretrained(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-gloss model trained for 2 epochs."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pretrained")
    result = _train(synthetic_dir, out, "--num-gloss", "5", "--num-cat", "2", "--epochs", "2")
    assert result.exit_code == 0, result.output
    return out / "SignTransformer_best.pt"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from slr.engine.checkpoint import load_checkpoint

    return load_checkpoint(path, need="weights")["model_state"]


def _encoder(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if not k.startswith(("gloss_head.", "cat_head."))}


def test_init_keeps_the_encoder_and_restarts_a_head_of_another_size(pretrained, synthetic_dir):
    from slr.engine.init_from import init_from_checkpoint
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    settings = TrainSettings(model="transformer", d_model=16, num_heads=2, num_layers=1, ff_dim=32, num_gloss=7,
                             num_cat=2, init_from=pretrained)
    torch.manual_seed(0)
    model = build_model("transformer", settings, 156, 7, 2)
    fresh_head = model.gloss_head.weight.detach().clone()
    notes = init_from_checkpoint(model, pretrained, model_name="transformer", input_dim=156, keypoint_layout=None,
                                 settings=settings)
    stored = _weights(pretrained)
    now = model.state_dict()
    for key, value in _encoder(stored).items():
        assert torch.equal(now[key], value), key
    assert torch.equal(now["cat_head.weight"], stored["cat_head.weight"])  # same size: it comes over
    assert torch.equal(now["gloss_head.weight"], fresh_head)  # 5 there, 7 here: the new model's own
    assert notes == [f"{{{{init_from}}}}: gloss_head re-initialised (5 glosses in {pretrained}, 7 here); "
                     "every other weight comes from the checkpoint"]


def test_frozen_encoder_stays_the_checkpoints_while_the_head_learns(pretrained, synthetic_dir, tmp_path):
    result = _train(synthetic_dir, tmp_path / "tuned", "--num-gloss", "6", "--num-cat", "2", "--epochs", "1",
                    "--init-from", str(pretrained), "--freeze-encoder-epochs", "1")
    assert result.exit_code == 0, result.output
    assert "--init-from: gloss_head re-initialised (5 glosses in" in " ".join(result.output.split())
    tuned = tmp_path / "tuned" / "SignTransformer_last.pt"
    before, after = _weights(pretrained), _weights(tuned)
    for key, value in _encoder(before).items():
        assert torch.equal(after[key], value), f"{key} changed while frozen"
    assert not torch.equal(after["cat_head.weight"], before["cat_head.weight"])  # the heads trained

    from slr.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tuned, need="resume")
    assert state["epoch"] == 1 and len(state["history"]) == 1  # a new run: its own epochs, not the checkpoint's


def test_without_freezing_the_encoder_trains(pretrained, synthetic_dir, tmp_path):
    result = _train(synthetic_dir, tmp_path / "tuned", "--num-gloss", "5", "--num-cat", "2", "--epochs", "1",
                    "--init-from", str(pretrained))
    assert result.exit_code == 0, result.output
    assert "every weight from" in result.output  # no head of another size
    before, after = _weights(pretrained), _weights(tmp_path / "tuned" / "SignTransformer_last.pt")
    assert any(not torch.equal(after[k], v) for k, v in _encoder(before).items())


def test_another_layout_is_refused_before_training(pretrained, synthetic_dir, tmp_path):
    result = _train(synthetic_dir, tmp_path / "wide", "--num-gloss", "5", "--num-cat", "2", "--epochs", "1",
                    "--init-from", str(pretrained), "--d-model", "32", "--num-heads", "2")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert str(pretrained) in text and "--d-model 32 here, --d-model 16 in the checkpoint" in text
    assert not (tmp_path / "wide" / "SignTransformer_last.pt").exists()


def test_clips_of_another_width_are_refused(pretrained, tmp_path):
    from slr.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "narrow", 12, num_gloss=5, num_cat=2, feature_dim=8, kp_dim=84,
                            min_frames=6, max_frames=10)
    result = _train(tmp_path / "narrow", tmp_path / "run", "--num-gloss", "5", "--num-cat", "2", "--epochs", "1",
                    "--init-from", str(pretrained))
    assert result.exit_code == 2, result.output
    assert "reads 156 values per frame, this run's clips have 84" in " ".join(result.output.split())


def test_a_resumed_run_continues_from_its_own_checkpoint(pretrained, synthetic_dir, tmp_path):
    import shutil

    start = tmp_path / "start.pt"
    shutil.copy(pretrained, start)
    out = tmp_path / "tuned"
    result = _train(synthetic_dir, out, "--num-gloss", "5", "--num-cat", "2", "--epochs", "1", "--init-from", str(start))
    assert result.exit_code == 0, result.output
    start.unlink()  # the stored --init-from is not read again: the run's own _last.pt has everything
    resumed = CliRunner().invoke(app, ["resume", str(out / "SignTransformer_last.pt"), "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "--init-from:" not in resumed.output

    from slr.engine.checkpoint import load_checkpoint

    assert load_checkpoint(out / "SignTransformer_last.pt", need="resume")["epoch"] == 2
