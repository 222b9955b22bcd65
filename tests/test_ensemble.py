"""Ensembles: `slr evaluate`, `slr predict` and `slr export` with several checkpoints average their
probabilities; members that differ in classes or clip layout are refused, naming the difference."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slr.cli import app

TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, epochs=1, batch_size=8, lr=0.003, plots=False,
            device="cpu")


def _train(clips: Path, out: Path, seed: int, **extra) -> Path:
    from slr.engine.run import train
    from slr.settings import TrainSettings

    values = {**TINY, "num_gloss": 5, "num_cat": 2, **extra}
    train(TrainSettings(model="transformer", keypoints_train=clips, keypoints_val=clips, seed=seed, output_dir=out,
                        **values))
    return out / "SignTransformer_best.pt"


@pytest.fixture(scope="module")
def members(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs alike but for the seed, and three that cannot join them."""
    root = tmp_path_factory.mktemp("ensemble")
    torch.set_num_threads(1)
    return {
        "a": _train(synthetic_dir, root / "a", 1),
        "b": _train(synthetic_dir, root / "b", 2),
        "six_glosses": _train(synthetic_dir, root / "six", 3, num_gloss=6),
        "short_clips": _train(synthetic_dir, root / "short", 4, max_frames=8),
        "not_normalised": _train(synthetic_dir, root / "plain", 5, normalize=False),
    }


def _probs(checkpoints: list[Path], clips: Path) -> tuple[np.ndarray, np.ndarray]:
    from slr.analysis.ensemble import load_models
    from slr.analysis.evaluate import score_clips

    loaded = load_models(checkpoints[0], checkpoints[1:])
    scored = score_clips(loaded, clips, clips / "labels.csv")
    return scored.gloss_probs, scored.cat_probs


def test_ensemble_probabilities_are_the_members_average(members, synthetic_dir):
    gloss_a, cat_a = _probs([members["a"]], synthetic_dir)
    gloss_b, cat_b = _probs([members["b"]], synthetic_dir)
    assert not np.allclose(gloss_a, gloss_b, atol=1e-3)  # two different models, or the test proves nothing
    gloss, cat = _probs([members["a"], members["b"]], synthetic_dir)
    np.testing.assert_allclose(gloss, (gloss_a + gloss_b) / 2, atol=1e-6)
    np.testing.assert_allclose(cat, (cat_a + cat_b) / 2, atol=1e-6)


def test_evaluate_several_checkpoints(members, synthetic_dir, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(members["a"]), str(members["b"]), "--keypoints",
                                      str(synthetic_dir), "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["ensemble"] == [str(members["a"]), str(members["b"])]
    gloss_a, _ = _probs([members["a"]], synthetic_dir)
    gloss_b, _ = _probs([members["b"]], synthetic_dir)
    from slr.data.labels import read_labels

    truth = read_labels(synthetic_dir / "labels.csv")["gloss"].to_numpy()
    expected = float(((gloss_a + gloss_b).argmax(axis=1) == truth).mean())
    assert report["gloss"]["top1"] == pytest.approx(expected)


def test_evaluate_ensemble_writes_beside_the_members_by_default(members, synthetic_dir, tmp_path):
    import shutil

    for name in ("a", "b"):  # copies: the default output folder is created in the members' folder
        (tmp_path / "runs" / name).mkdir(parents=True)
        shutil.copy(members[name], tmp_path / "runs" / name / members[name].name)
    runs = [tmp_path / "runs" / name / members[name].name for name in ("a", "b")]
    result = CliRunner().invoke(app, ["evaluate", *map(str, runs), "--keypoints", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "ensemble_evaluation" / "metrics.json").is_file()
    assert "ensemble of 2 checkpoints" in result.output
    assert not (tmp_path / "runs" / "a" / "evaluation").exists()


def test_predict_several_checkpoints(members, synthetic_dir):
    clip = sorted(synthetic_dir.glob("*.npz"))[0]

    def top(*checkpoints: Path) -> dict[str, float]:
        result = CliRunner().invoke(app, ["predict", *map(str, checkpoints), str(clip), "--json", "--top-k", "5"])
        assert result.exit_code == 0, result.output
        (prediction,) = json.loads(result.stdout)
        assert prediction["clip"] == str(clip)  # the .pt files were taken as checkpoints, the clip as a clip
        return {g["name"]: g["prob"] for g in prediction["top_glosses"]}

    a, b, both = top(members["a"]), top(members["b"]), top(members["a"], members["b"])
    assert set(both) == set(a) == set(b)  # all 5 classes
    for name, prob in both.items():
        assert prob == pytest.approx((a[name] + b[name]) / 2, abs=1e-6)


def test_export_writes_one_graph_that_averages(members, synthetic_dir, tmp_path):
    out = tmp_path / "ensemble.ts.pt"
    result = CliRunner().invoke(app, ["export", str(members["a"]), str(members["b"]), "--format", "torchscript",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    extra = {"slr.json": ""}
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is what is tested here
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["slr.json"])
    assert meta["ensemble"] == [str(members["a"]), str(members["b"])]
    from slr.analysis.inference import dataset_from_arrays, load_model
    from slr.data.clips import read_clip
    from slr.data.dataset import collate_clips

    clip = sorted(synthetic_dir.glob("*.npz"))[3]
    loaded = load_model(members["a"])
    batch = collate_clips([dataset_from_arrays(loaded, [read_clip(clip, "X")], ["c"])[0]])
    with torch.no_grad():
        gloss, cat = module(batch.x, batch.mask)
        each = [load_model(m).model(batch.x, batch.mask) for m in (members["a"], members["b"])]
    expected = (torch.softmax(each[0][0], -1) + torch.softmax(each[1][0], -1)) / 2
    torch.testing.assert_close(torch.softmax(gloss, -1), expected, atol=1e-6, rtol=1e-5)
    expected_cat = (torch.softmax(each[0][1], -1) + torch.softmax(each[1][1], -1)) / 2
    torch.testing.assert_close(torch.softmax(cat, -1), expected_cat, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "other, why",
    [
        ("six_glosses", "it has 6 glosses, the other 5"),
        ("short_clips", "it prepares clips with max_frames = 8, the other with 32"),
        ("not_normalised", "it prepares clips with normalize = False, the other with True"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_members_that_differ_are_refused_with_the_reason(members, synthetic_dir, tmp_path, other, why, command):
    out = tmp_path / "out"
    where = ["--keypoints", str(synthetic_dir), "--output-dir", str(out)] if command == "evaluate" else [
        "--format", "torchscript", "--output", str(out / "m.ts.pt")]
    result = CliRunner().invoke(app, [command, str(members["a"]), str(members[other]), *where])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert str(members[other]) in message and why in message
    assert not out.exists()  # nothing written


def test_predict_refuses_a_member_of_other_classes(members, synthetic_dir):
    clip = sorted(synthetic_dir.glob("*.npz"))[0]
    result = CliRunner().invoke(app, ["predict", str(members["a"]), str(members["six_glosses"]), str(clip)])
    assert result.exit_code == 2
    assert "6 glosses" in " ".join(result.output.split())


def test_the_same_checkpoint_twice_is_refused(members, synthetic_dir, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(members["a"]), str(members["a"]), "--keypoints",
                                      str(synthetic_dir), "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "given twice" in result.output


def test_a_class_named_differently_is_refused(members, tmp_path):
    from slr.analysis.ensemble import load_models
    from slr.engine.checkpoint import load_checkpoint, save_checkpoint
    from slr.errors import CheckpointError

    state = load_checkpoint(members["b"], need="model")
    renamed = tmp_path / "renamed.pt"
    names = state["class_names"]
    names["gloss"] = {**names["gloss"], 0: "something else"}
    save_checkpoint(state, renamed)
    with pytest.raises(CheckpointError, match="gloss 0 is 'something else'"):
        load_models(members["a"], [renamed])
