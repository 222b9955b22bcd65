"""`slr predict`: names and probabilities, the same answer alone or in a batch, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slr.analysis.predict import predict_clips
from slr.cli import app
from slr.data.augment import build_transform
from slr.data.frames import sample_indices
from slr.engine.checkpoint import load_trained_model, save_checkpoint
from slr.models.registry import build_model
from slr.models.registry import model_spec
from slr.engine.checkpoint import make_checkpoint
from slr.settings import TrainSettings

runner = CliRunner()
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)
NAMES = {"gloss": {0: "hello", 1: "thank you", 2: "sorry"}, "cat": {0: "greeting", 1: "courtesy"}}


def write_checkpoint(path: Path, model: str, input_dim: int, *, num_gloss: int = 5, num_cat: int = 2,
                     class_names=None, seed: int = 0, **settings_values) -> Path:
    """A checkpoint with the documented keys around a real (untrained) small model."""
    settings = TrainSettings(model=model, num_gloss=num_gloss, num_cat=num_cat, **TINY, **settings_values)
    torch.manual_seed(seed)
    net = build_model(model, settings, input_dim, num_gloss, num_cat)
    save_checkpoint(
        make_checkpoint(
            "model", model=model, model_class=model_spec(model).class_name,
            input_dim=input_dim, num_gloss=num_gloss, num_cat=num_cat,
            settings=settings.model_dump(mode="json"), model_state=net.state_dict(),
            class_names=class_names if class_names is not None else {"gloss": {}, "cat": {}},
            epoch=1, best_metric=0.0, history=[],),
        path,
    )
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict-ckpt")
    return {
        "transformer": write_checkpoint(root / "tr.pt", "transformer", 156, class_names=NAMES),
        "iv3_gru": write_checkpoint(root / "gru.pt", "iv3_gru", 64, class_names=NAMES),
    }


def clips_of_different_lengths(synthetic_dir: Path, count: int = 5) -> list[Path]:
    by_length = {}
    for path in sorted(synthetic_dir.glob("*.npz")):
        with np.load(path) as clip:
            by_length.setdefault(len(clip["X"]), path)
    assert len(by_length) >= count  # the batch below really mixes lengths, so padding is exercised
    return [by_length[t] for t in sorted(by_length)[:count]]


def as_dict(prediction) -> dict[int, float]:
    return {gloss_id: prob for gloss_id, _, prob in prediction.glosses}


@pytest.mark.parametrize("model", ["transformer", "iv3_gru"])
def test_alone_or_in_a_batch_gives_the_same_answer(checkpoints, synthetic_dir, model):
    clips = clips_of_different_lengths(synthetic_dir)
    batch = predict_clips(checkpoints[model], clips, top_k=5)
    split = predict_clips(checkpoints[model], clips[::-1], top_k=5, batch_size=2)[::-1]
    for i, clip in enumerate(clips):
        alone = predict_clips(checkpoints[model], [clip], top_k=5)[0]
        for other in (batch[i], split[i]):
            assert other.clip == clip
            assert set(as_dict(other)) == set(as_dict(alone)) == set(range(5))
            for gloss_id, prob in as_dict(alone).items():
                assert as_dict(other)[gloss_id] == pytest.approx(prob, abs=1e-5)
            assert other.category[0] == alone.category[0]
            assert other.category[2] == pytest.approx(alone.category[2], abs=1e-5)
        assert sum(as_dict(alone).values()) == pytest.approx(1.0, abs=1e-5)


def test_probabilities_are_the_models_on_the_normalised_clip(checkpoints, synthetic_dir):
    clip = clips_of_different_lengths(synthetic_dir)[2]
    prediction = predict_clips(checkpoints["transformer"], [clip], top_k=3)[0]
    model, state = load_trained_model(checkpoints["transformer"])
    settings = TrainSettings.model_validate(state["settings"])
    with np.load(clip) as archive:
        x = build_transform(settings, "keypoints", 156, train=False)(archive["X"], np.random.default_rng(0))
    with torch.no_grad():
        gloss_logits, cat_logits = model(torch.from_numpy(x)[None], None)
    probs = torch.softmax(gloss_logits, -1)[0]
    top_p, top_i = probs.topk(3)
    assert [g[0] for g in prediction.glosses] == top_i.tolist()
    assert [g[2] for g in prediction.glosses] == pytest.approx(top_p.tolist(), abs=1e-6)
    assert [g[2] for g in prediction.glosses] == sorted((g[2] for g in prediction.glosses), reverse=True)
    assert prediction.category[0] == int(cat_logits.argmax())


def test_long_clips_are_shortened_as_in_training(synthetic_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "short.pt", "transformer", 156, max_frames=6, long_clips="sample")
    clip = clips_of_different_lengths(synthetic_dir)[-1]
    with np.load(clip) as archive:
        full = archive["X"]
    assert len(full) > 6
    sampled = tmp_path / "sampled.npz"
    np.savez(sampled, X=full[sample_indices(len(full), 6)])
    long, short = predict_clips(ckpt, [clip, sampled], top_k=5)
    assert long.frames == len(full) and short.frames == 6
    for gloss_id, prob in as_dict(short).items():
        assert as_dict(long)[gloss_id] == pytest.approx(prob, abs=1e-5)


def test_cli_names_json_and_text(checkpoints, synthetic_dir, tmp_path):
    clips = clips_of_different_lengths(synthetic_dir, 2)
    result = runner.invoke(app, ["predict", str(checkpoints["transformer"]), *map(str, clips), "--top-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [Path(a["clip"]) for a in answer] == clips
    names = {0: "hello", 1: "thank you", 2: "sorry", 3: "gloss 3", 4: "gloss 4"}  # partial names are completed
    for entry in answer:
        assert len(entry["top_glosses"]) == 4
        assert all(g["name"] == names[g["id"]] for g in entry["top_glosses"])
        probs = [g["prob"] for g in entry["top_glosses"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert entry["gloss"] == entry["top_glosses"][0]
        assert entry["cat"]["name"] == {0: "greeting", 1: "courtesy"}[entry["cat"]["id"]]

    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat,cat_name\n0,A,0,letters\n1,B,0,letters\n2,C,1,more\n3,D,1,more\n4,E,1,more\n")
    result = runner.invoke(app, ["predict", str(checkpoints["transformer"]), str(clips[0]), "--classes", str(classes)])
    assert result.exit_code == 0, result.output
    assert str(clips[0]) in result.output and "frames" in result.output
    assert sum(f"{i}. " in result.output for i in range(1, 6)) == 5  # top 5 by default
    assert "hello" not in result.output and any(f"{n} (" in result.output for n in "ABCDE")


def test_bad_inputs_are_one_message_and_exit_2(checkpoints, synthetic_dir, tmp_path):
    good = clips_of_different_lengths(synthetic_dir, 1)[0]
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good.read_bytes()[:64])
    wide = tmp_path / "wide.npz"
    np.savez(wide, X=np.zeros((12, 40), np.float32))
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, Y=np.zeros((12, 156), np.float32))
    np.savez(tmp_path / "keypoints_only.npz", X=np.zeros((12, 156), np.float32))
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    cases = [
        ([str(checkpoints["transformer"]), str(corrupt)], ["corrupt.npz", "truncated"]),
        ([str(checkpoints["transformer"]), str(wide)], ["wide.npz", "width 40, expected 156"]),
        ([str(checkpoints["transformer"]), str(nokey)], ["nokey.npz", "no key 'X'"]),
        ([str(checkpoints["transformer"]), str(tmp_path / "gone.npz")], ["gone.npz", "not found"]),
        ([str(tmp_path / "gone.pt"), str(good)], ["gone.pt", "checkpoint not found"]),
        ([str(text), str(good)], ["text.pt", "not a readable checkpoint"]),
        # No X2048 in this clip: the features model falls back to X, which is 156 wide, not 64.
        ([str(checkpoints["iv3_gru"]), str(wide).replace("wide", "keypoints_only")], ["'X' has width 156, expected 64"]),
    ]
    for args, needles in cases:
        result = runner.invoke(app, ["predict", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        for needle in needles:
            assert needle in result.output, (needle, result.output)


def test_clips_with_nan_or_inf_are_refused_and_all_named(checkpoints, synthetic_dir, tmp_path):
    good = clips_of_different_lengths(synthetic_dir, 1)[0]
    with np.load(good) as archive:
        x = archive["X"].astype(np.float32)
    nan_clip, inf_clip, huge_clip = tmp_path / "nan.npz", tmp_path / "inf.npz", tmp_path / "huge64.npz"
    np.savez(nan_clip, X=np.where(np.arange(156) == 3, np.nan, x).astype(np.float32))
    np.savez(inf_clip, X=np.where(np.arange(156) == 3, np.inf, x).astype(np.float32))
    np.savez(huge_clip, X=x.astype(np.float64) * 1e300)  # finite on disk, infinite as float32
    for extra in ([], ["--json"]):
        clips = [str(good), str(nan_clip), str(inf_clip), str(huge_clip)]
        result = runner.invoke(app, ["predict", str(checkpoints["transformer"]), *clips, *extra])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "NaN" not in result.output.replace("NaN or infinite", "")
        assert result.stderr.startswith("error: 3 of 4 clips cannot be used")
        for clip in (nan_clip, inf_clip, huge_clip):
            assert str(clip) in result.stderr and str(clip) not in result.stdout
        assert str(good) not in result.stderr and "RuntimeWarning" not in result.output
        if extra:  # the one good clip is still answered, and stdout stays JSON
            assert [Path(a["clip"]) for a in json.loads(result.stdout)] == [good]
        else:
            assert result.stdout.startswith(f"{good} (")


def test_a_bad_input_is_named_after_the_others_are_predicted(checkpoints, synthetic_dir, tmp_path):
    """Issue 26 item 6: `slr predict CKPT broken.mp4 good.npz` predicts the good one, names the
    broken one, and exits 2 (the broken video here is unreadable; one that crashes the extractor
    is the same problem: tests/test_extract_crash.py)."""
    good = clips_of_different_lengths(synthetic_dir, 1)[0]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video\n")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good.read_bytes()[:64])
    pytest.importorskip("mediapipe")
    result = runner.invoke(app, ["predict", str(checkpoints["transformer"]), str(broken), str(good), str(corrupt),
                                 "--json"])
    assert result.exit_code == 2, result.output
    assert [Path(a["clip"]) for a in json.loads(result.stdout)] == [good]
    error = result.stderr[result.stderr.index("error: "):]  # after the notice that the clips' extraction is unknown
    assert error.startswith("error: 2 of 3 clips cannot be used")
    assert f"{broken}: cannot be read as a video" in result.stderr and "corrupt.npz" in result.stderr
    assert "Traceback" not in result.output


def test_non_finite_model_outputs_name_the_checkpoint(synthetic_dir, tmp_path):
    """Finite but enormous weights (a diverged or damaged run) overflow the logits to inf: no NaN
    probabilities and no `"prob": NaN` (invalid JSON), but an error naming the checkpoint."""
    ckpt = write_checkpoint(tmp_path / "tr.pt", "transformer", 156)
    state = torch.load(ckpt, weights_only=True)
    state["model_state"]["gloss_head.weight"].fill_(3e38)
    bad = tmp_path / "overflowing.pt"
    save_checkpoint(state, bad)
    clip = clips_of_different_lengths(synthetic_dir, 1)[0]
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["predict", str(bad), str(clip), *extra])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:"), result.output
        assert "NaN or infinite outputs" in result.output and str(clip) in result.output


def test_what_a_clip_path_is_when_it_is_not_a_file(checkpoints, tmp_path):
    (tmp_path / "broken.npz").symlink_to(tmp_path / "moved-away.npz")
    (tmp_path / "folder.npz").mkdir()
    result = runner.invoke(app, ["predict", str(checkpoints["transformer"]), str(tmp_path / "broken.npz"),
                                 str(tmp_path / "folder.npz")])
    assert result.exit_code == 2
    assert "broken.npz: is a broken symbolic link" in result.output
    assert "folder.npz: is a directory" in result.output


def test_an_export_or_edited_settings_given_as_the_checkpoint_are_named(checkpoints, synthetic_dir, tmp_path):
    clip = str(clips_of_different_lengths(synthetic_dir, 1)[0])
    exported = tmp_path / "model.ts.pt"
    assert runner.invoke(app, ["export", str(checkpoints["transformer"]), "--format", "torchscript",
                               "--output", str(exported)]).exit_code == 0
    result = runner.invoke(app, ["predict", str(exported), clip])
    assert result.exit_code == 2 and "is a TorchScript model" in result.output
    edited = write_checkpoint(tmp_path / "edited.pt", "transformer", 156)
    state = torch.load(edited, weights_only=True)
    state["settings"]["lr"] = -1.0
    save_checkpoint(state, edited)
    result = runner.invoke(app, ["predict", str(edited), clip])
    assert result.exit_code == 2
    assert "stored settings are not valid" in result.output and "--lr: Input should be greater than 0" in result.output
    assert "errors.pydantic.dev" not in result.output
