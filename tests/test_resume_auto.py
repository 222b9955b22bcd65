"""`--resume auto`: one job script for a run's first start and every requeue, and the refusals that
keep a requeued job from starting over a run it cannot continue. Plus the rules for resuming on
another number of processes (the multi-process runs themselves are in test_multi_node.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.engine import checkpoint as ckpt
from slr.engine.distributed import DistInfo
from slr.engine.resume import fit_batch_to_world
from slr.errors import CheckpointError
from slr.settings import TrainSettings

from test_training import TINY, read_log

runner = CliRunner()
#: A schedule over --epochs would differ between a 1-epoch run resumed to 2 and a straight 2-epoch run;
#: and the thread count the auto choice times on a busy machine may differ between the two runs,
#: which changes float sums (seen once under the full suite: losses 1e-4 apart).
FIXED_LR = ["--scheduler", "none", "--threads", "1"]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def job(clips: Path, out: Path, *extra: str, model: str | None = "transformer"):
    """The same command a job script runs on every start (extra: what differs between tries here)."""
    small = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    args = ["train", *([model] if model else []), "--resume", "auto", "--output-dir", str(out),
            "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
            "--num-gloss", "4", "--num-cat", "2", "--lr", "1e-3", "--batch-size", "16", "--no-plots",
            *FIXED_LR, *small, *extra]
    return runner.invoke(app, args)


def test_first_start_requeue_and_finished_run(clips, tmp_path, one_thread):
    straight = runner.invoke(app, ["train", "transformer", "--output-dir", str(tmp_path / "straight"),
                                   "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
                                   "--num-gloss", "4", "--num-cat", "2", "--lr", "1e-3", "--batch-size", "16",
                                   "--no-plots", *FIXED_LR, *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()],
                                   "--epochs", "2"])
    assert straight.exit_code == 0, straight.output
    out = tmp_path / "job"

    first = job(clips, out, "--epochs", "1")  # no folder yet: a new run
    assert first.exit_code == 0, first.output
    assert "resuming" not in first.output
    assert [r["epoch"] for r in read_log(out / "log.csv")] == ["1"]

    requeued = job(clips, out, "--epochs", "2")  # the folder's _last.pt: continue in place
    assert requeued.exit_code == 0, requeued.output
    assert "resuming" in requeued.output and "SignTransformer_last.pt" in requeued.output
    assert not (out / "earlier").exists()  # continued, nothing moved aside
    resumed, uninterrupted = read_log(out / "log.csv"), read_log(tmp_path / "straight" / "log.csv")
    for key in ("train_loss", "val_loss", "val_gloss_acc"):
        assert [float(r[key]) for r in resumed] == pytest.approx([float(r[key]) for r in uninterrupted], abs=1e-6)

    done = digests(out)
    again = job(clips, out, "--epochs", "2", model=None)  # every epoch trained: nothing to do, nothing touched
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert digests(out) == done


def test_an_unreadable_last_checkpoint_stops_the_job_and_is_kept(clips, tmp_path, one_thread):
    out = tmp_path / "job"
    assert job(clips, out, "--epochs", "1").exit_code == 0
    last = out / "SignTransformer_last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # damaged after it was written
    before = digests(out)

    result = job(clips, out, "--epochs", "2")
    assert result.exit_code == 2, result.output
    assert "--resume auto cannot continue from it" in result.output and "left as it is" in result.output
    assert "Traceback" not in result.output
    assert digests(out) == before  # no new run moved it aside or wrote over it


def test_a_folder_holding_another_models_run_is_refused(clips, tmp_path, one_thread):
    out = tmp_path / "job"
    assert job(clips, out, "--epochs", "1").exit_code == 0
    (out / "SignTransformer_last.pt").rename(out / "InceptionV3GRU_last.pt")  # as if an iv3_gru job wrote here
    before = digests(out)
    result = job(clips, out, "--epochs", "2")
    assert result.exit_code == 2, result.output
    assert "iv3_gru (InceptionV3GRU_last.pt)" in result.output and "--output-dir" in result.output
    assert digests(out) == before


def test_a_checkpoint_given_by_path_still_resumes(clips, tmp_path, one_thread):
    out = tmp_path / "run"
    assert job(clips, out, "--epochs", "1").exit_code == 0
    small = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    result = runner.invoke(app, ["train", "--resume", str(out / "SignTransformer_last.pt"), "--epochs", "2",
                                 "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
                                 "--num-gloss", "4", "--num-cat", "2", "--lr", "1e-3", "--batch-size", "16",
                                 "--no-plots", *small])
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in read_log(out / "log.csv")] == ["1", "2"]


# -- another number of processes on resume: the rules (the runs are in test_multi_node.py) -------------


def _state(tmp_path: Path, clips: Path, batch: int) -> tuple[TrainSettings, dict]:
    result = job(clips, tmp_path / "w", "--epochs", "1", "--batch-size", str(batch))
    assert result.exit_code == 0, result.output
    state = ckpt.load_checkpoint(tmp_path / "w" / "SignTransformer_last.pt", need="resume")
    return TrainSettings.model_validate(state["settings"]), state


def test_the_per_process_batch_is_rescaled_to_keep_the_global_batch(clips, tmp_path, one_thread):
    settings, state = _state(tmp_path, clips, 12)  # trained on 1 process with 12
    two = DistInfo(rank=0, world_size=2)
    fitted, runtime, notes = fit_batch_to_world(settings, {"world_size": 2}, state, two)
    assert fitted.batch_size == 6 and "global batch of 12" in notes[0]
    # Trained on 2 with 6 each (as the 2-process run records it), resumed on 3: 4 each.
    state = {**state, "runtime": {**state["runtime"], "world_size": 2}, "settings": {**state["settings"], "batch_size": 6}}
    fitted, _, _ = fit_batch_to_world(fitted.model_copy(update={"batch_size": 6}), {}, state, DistInfo(0, 3))
    assert fitted.batch_size == 4


def test_a_global_batch_the_processes_cannot_share_is_refused(clips, tmp_path, one_thread):
    settings, state = _state(tmp_path, clips, 5)
    with pytest.raises(CheckpointError, match=r"global batch of 5 .* cannot share evenly.*divides 5 \(1, 5\)"):
        fit_batch_to_world(settings, {}, state, DistInfo(rank=0, world_size=2))


def test_another_global_batch_is_refused_inside_an_epoch_only(clips, tmp_path, one_thread):
    settings, state = _state(tmp_path, clips, 12)
    other = settings.model_copy(update={"batch_size": 8})
    fitted, _, notes = fit_batch_to_world(other, {}, state, DistInfo())  # at an epoch boundary: as asked
    assert fitted.batch_size == 8 and "global batch 8 from here on" in notes[0]
    inside = {**state, "step_in_epoch": 3}
    with pytest.raises(CheckpointError, match=r"stopped inside epoch 2 .*\{\{batch_size\}\} 12 here"):
        fit_batch_to_world(other, {}, inside, DistInfo())
