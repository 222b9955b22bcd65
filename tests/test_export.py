"""`slr export`: TorchScript and ONNX files that run without slr and match the PyTorch model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slr.cli import app
from slr.engine.checkpoint import load_trained_model, save_checkpoint
from slr.models.registry import build_model
from slr.models.registry import model_spec
from slr.engine.checkpoint import make_checkpoint
from slr.settings import TrainSettings

runner = CliRunner()
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)


def write_checkpoint(path: Path, model: str, input_dim: int, *, num_gloss: int = 6, num_cat: int = 3,
                     **sizes) -> Path:
    """A checkpoint with the documented keys around a real (untrained) small model."""
    settings = TrainSettings(model=model, num_gloss=num_gloss, num_cat=num_cat, **{**TINY, **sizes})
    torch.manual_seed(0)
    net = build_model(model, settings, input_dim, num_gloss, num_cat)
    with torch.no_grad():  # batch-norm statistics as after training, not the identity of a fresh model
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.3)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    save_checkpoint(
        make_checkpoint(
            "model", model=model, model_class=model_spec(model).class_name,
            input_dim=input_dim, num_gloss=num_gloss, num_cat=num_cat,
            settings=settings.model_dump(mode="json"), model_state=net.state_dict(),
            class_names={"gloss": {0: "hello"}, "cat": {}}, epoch=1, best_metric=0.0, history=[],),
        path,
    )
    return path


def inputs(input_dim: int, seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """Clips of lengths the export check did not use, and a padded batch with padding that is not zero."""
    rng = np.random.default_rng(seed)
    cases = [
        (rng.standard_normal((1, t, input_dim)).astype(np.float32), np.ones((1, t), bool)) for t in (5, 33, 90)
    ]
    lengths = np.array([40, 13, 2])
    mask = np.arange(40)[None] < lengths[:, None]
    cases.append((rng.standard_normal((3, 40, input_dim)).astype(np.float32), mask))
    return cases


def reference(ckpt: Path, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    model, _ = load_trained_model(ckpt)
    with torch.no_grad():
        return [t.numpy() for t in model(torch.from_numpy(x), torch.from_numpy(mask))]


def reported_diff(output: str) -> float:
    line = next(line for line in output.splitlines() if line.startswith("max abs difference"))
    return float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    return {
        "transformer": write_checkpoint(root / "SignTransformer_best.pt", "transformer", 20),
        # convolution blocks before each layer (slr/models/conv_block.py), 2 layers of 2 blocks, CLS pooling
        "transformer-conv": write_checkpoint(root / "conv" / "SignTransformer_best.pt", "transformer", 20,
                                             conv_kernel=5, conv_blocks=2, num_layers=2, pooling="cls"),
        "iv3_gru": write_checkpoint(root / "InceptionV3GRU_best.pt", "iv3_gru", 12),
    }


@pytest.mark.slow
@pytest.mark.parametrize("model, dim", [("transformer", 20), ("transformer-conv", 20), ("iv3_gru", 12)])
def test_onnx_runs_in_onnxruntime_with_any_batch_and_length(checkpoints, model, dim):
    import onnxruntime

    ckpt = checkpoints[model]
    result = runner.invoke(app, ["export", str(ckpt), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    path = ckpt.with_name(ckpt.stem + ".onnx")  # the default: beside the checkpoint
    assert str(path) in result.output and reported_diff(result.output) <= 1e-4
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[:2]) for i in session.get_inputs()] == [("x", ["batch", "time"]), ("mask", ["batch", "time"])]
    meta = json.loads(session.get_modelmeta().custom_metadata_map["slr"])
    assert meta["input_dim"] == dim and meta["num_gloss"] == 6 and meta["gloss_names"]["0"] == "hello"
    for x, mask in inputs(dim):
        got = session.run(["gloss_logits", "cat_logits"], {"x": x, "mask": mask})
        want = reference(ckpt, x, mask)
        assert got[0].shape == (len(x), 6) and got[1].shape == (len(x), 3)
        for a, b in zip(got, want):
            assert np.abs(a - b).max() <= 1e-4
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.slow
@pytest.mark.parametrize("model, dim", [("transformer", 20), ("transformer-conv", 20), ("iv3_gru", 12)])
def test_torchscript_loads_in_a_python_without_slr(checkpoints, tmp_path, model, dim):
    ckpt = checkpoints[model]
    target = tmp_path / "exported" / "model.ts.pt"
    result = runner.invoke(app, ["export", str(ckpt), "--format", "torchscript", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert str(target) in result.output and reported_diff(result.output) <= 1e-4

    cases = inputs(dim)
    np.savez(tmp_path / "inputs.npz", **{f"x{i}": x for i, (x, _) in enumerate(cases)},
             **{f"m{i}": m for i, (_, m) in enumerate(cases)})
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["slr"] = None  # any attempt to import slr fails
        import numpy as np, torch
        model = torch.jit.load({str(target)!r})
        data = np.load("inputs.npz")
        out = {{}}
        for i in range({len(cases)}):
            gloss, cat = model(torch.from_numpy(data[f"x{{i}}"]), torch.from_numpy(data[f"m{{i}}"]))
            out[f"g{{i}}"], out[f"c{{i}}"] = gloss.detach().numpy(), cat.detach().numpy()
        np.savez("outputs.npz", **out)
        assert not any(name == "slr" or name.startswith("slr.") for name in sys.modules if sys.modules[name])
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outputs = np.load(tmp_path / "outputs.npz")
    for i, (x, mask) in enumerate(cases):
        want = reference(ckpt, x, mask)
        assert np.abs(outputs[f"g{i}"] - want[0]).max() <= 1e-4
        assert np.abs(outputs[f"c{i}"] - want[1]).max() <= 1e-4


def test_a_failed_check_exits_non_zero_and_leaves_no_file(checkpoints, tmp_path):
    target = tmp_path / "model.onnx"
    first = runner.invoke(app, ["export", str(checkpoints["iv3_gru"]), "--format", "onnx", "--output", str(target)])
    assert first.exit_code == 0, first.output
    earlier = target.read_bytes()  # an earlier export: never replaced by a file that failed its check
    result = runner.invoke(
        app, ["export", str(checkpoints["iv3_gru"]), "--format", "onnx", "--output", str(target), "--tolerance", "1e-30"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "differ from PyTorch" in result.output
    assert "nothing was written" in result.output
    assert target.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def refused(args: list[str], *needles: str) -> None:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.slow
def test_output_never_replaces_the_checkpoint_or_a_file_that_is_not_such_an_export(tmp_path):
    ckpt = write_checkpoint(tmp_path / "SignTransformer_best.pt", "transformer", 20)
    other_run = write_checkpoint(tmp_path / "other" / "SignTransformer_last.pt", "transformer", 20)
    hard_link = tmp_path / "link.pt"
    os.link(ckpt, hard_link)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    onnx_export = tmp_path / "model.onnx"
    assert runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--output", str(onnx_export)]).exit_code == 0
    before = {p: p.read_bytes() for p in (ckpt, other_run, notes, onnx_export)}

    refused([str(ckpt), "--format", "torchscript", "--output", str(ckpt)], str(ckpt), "the checkpoint being exported")
    refused([str(ckpt), "--format", "onnx", "--output", str(hard_link)], "link.pt", "the checkpoint being exported")
    refused([str(ckpt), "--format", "torchscript", "--output", str(other_run)], str(other_run), "PyTorch checkpoint")
    refused([str(ckpt), "--format", "onnx", "--output", str(notes)], "notes.txt", "not an ONNX model")
    refused([str(ckpt), "--format", "torchscript", "--output", str(onnx_export)], "model.onnx", "not a TorchScript")
    refused([str(ckpt), "--format", "torchscript", "--output", str(notes / "m.ts.pt")], "notes.txt",
            "not a directory")
    assert {p: p.read_bytes() for p in before} == before
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files either


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
def test_an_earlier_export_of_the_same_format_is_replaced(tmp_path):
    old = write_checkpoint(tmp_path / "old.pt", "transformer", 20, num_gloss=4)
    new = write_checkpoint(tmp_path / "new.pt", "transformer", 20, num_gloss=6)
    target = tmp_path / "deploy.ts.pt"
    for ckpt in (old, new):
        result = runner.invoke(app, ["export", str(ckpt), "--format", "torchscript", "--output", str(target)])
        assert result.exit_code == 0, result.output
    gloss, _ = torch.jit.load(str(target))(torch.zeros(1, 3, 20), torch.ones(1, 3, dtype=torch.bool))
    assert gloss.shape == (1, 6)  # the second export's model


def test_bad_inputs(checkpoints, tmp_path):
    check = refused
    check([str(checkpoints["transformer"]), "--format", "tflite"], "--format", "torchscript", "onnx")
    check([str(checkpoints["transformer"])], "--format is required")
    check([str(tmp_path / "gone.pt"), "--format", "onnx"], "gone.pt", "checkpoint not found")
    check([str(checkpoints["transformer"]), "--format", "onnx", "--output", str(tmp_path)], "is a directory")

    # A model with the InceptionV3 backbone inside (frames input) is out of scope for export.
    state = torch.load(checkpoints["iv3_gru"], weights_only=True)
    state["model_state"] = {**state["model_state"], "backbone.Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}
    frames = tmp_path / "frames.pt"
    save_checkpoint(state, frames)
    check([str(frames), "--format", "torchscript"], "frames.pt", "video frames", "features")
    assert not (tmp_path / "frames.ts.pt").exists()


BLOCK_IMPORTS = """
import sys
for name in {blocked!r}:  # None in sys.modules: Python's own way of saying "not installed"
    sys.modules[name] = None
sys.argv = ["slr", *sys.argv[1:]]
from slr.cli import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("blocked", [{"onnx", "onnxscript", "onnxruntime"}, {"onnxscript"}])
def test_missing_onnx_packages_are_named_at_once_with_the_extra_that_brings_them(checkpoints, tmp_path, blocked):
    code = BLOCK_IMPORTS.format(blocked=sorted(blocked))
    out = tmp_path / "model.onnx"
    done = subprocess.run([sys.executable, "-c", code, "export", str(checkpoints["transformer"]), "--format", "onnx",
                           "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert 'pip install -e ".[export]"' in done.stderr, done.stderr
    for name in ("onnx", "onnxscript", "onnxruntime"):
        assert (f"'{name}'" in done.stderr) == (name in blocked), done.stderr
    assert not out.exists()


def left_handed_clip(frames: int = 30, seed: int = 3) -> np.ndarray:
    """A hands-only (84-wide) clip whose left hand signs (moves) while the right one rests."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, frames)[:, None]
    left = np.stack([0.3 + 0.1 * np.sin(t + rng.uniform(0, 1, 21)), 0.5 + 0.1 * np.cos(2 * t + rng.uniform(0, 1, 21))], -1)
    right = np.stack([0.7 + rng.uniform(-0.02, 0.02, (1, 21)).repeat(frames, 0),
                      0.6 + rng.uniform(-0.02, 0.02, (1, 21)).repeat(frames, 0)], -1)
    return np.concatenate([left, right], axis=1).reshape(frames, 84).astype(np.float32)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
def test_an_export_fed_as_its_metadata_says_answers_as_slr_predict_for_a_left_handed_clip(tmp_path):
    """The metadata names every step `slr predict` applies (here the left-hand mirror of a hands-only
    layout): the exported model, fed through `prepare_clip(x, metadata)`, gives predict's probabilities."""
    from slr.analysis.predict import predict_clips
    from slr.data.augment import keypoint_layout, mirror_clip, normalize_clip
    from slr.data.prepare import prepare_clip

    ckpt = write_checkpoint(tmp_path / "SignTransformer_best.pt", "transformer", 84, num_gloss=6)
    target = tmp_path / "model.ts.pt"
    result = runner.invoke(app, ["export", str(ckpt), "--format", "torchscript", "--output", str(target)])
    assert result.exit_code == 0, result.output
    extra = {"slr.json": ""}
    module = torch.jit.load(str(target), _extra_files=extra)
    meta = json.loads(extra["slr.json"])
    prep = meta["preprocessing"]
    assert prep["mirror_left_handed"] is True and prep["layout"] == "two-hands-42x2"  # auto, resolved
    assert [s["step"] for s in prep["steps"]] == ["shorten", "normalize", "mirror_left_handed"]

    clip = left_handed_clip()
    # the clip is one the mirror changes: fed only normalised, it would be another input
    layout, weighting = keypoint_layout(84), prep["normalize_weighting"]
    assert not np.allclose(prepare_clip(clip, meta), normalize_clip(clip, layout, weighting))
    assert np.allclose(prepare_clip(clip, meta), mirror_clip(normalize_clip(clip, layout, weighting), layout))
    path = tmp_path / "clip.npz"
    np.savez(path, X=clip)
    predicted = predict_clips(ckpt, [path], top_k=6)[0]

    x = torch.from_numpy(prepare_clip(clip, meta))[None]
    with torch.no_grad():
        gloss_logits, cat_logits = module(x, torch.ones(x.shape[:2], dtype=torch.bool))
    gloss = torch.softmax(gloss_logits, -1)[0]
    for gloss_id, _, prob in predicted.glosses:
        assert abs(float(gloss[gloss_id]) - prob) <= 1e-5
    cat_id, _, cat_prob = predicted.category
    assert abs(float(torch.softmax(cat_logits, -1)[0, cat_id]) - cat_prob) <= 1e-5


@pytest.mark.parametrize("dim, options, steps", [
    (84, {}, ["shorten", "normalize", "mirror_left_handed"]),
    (84, {"mirror_left_handed": "off", "hand_centred": True, "max_frames": 12}, ["shorten", "normalize", "hand_centred"]),
    (156, {}, ["shorten", "normalize"]),  # auto: no mirror where there is a body
    (156, {"mirror_left_handed": "on", "hand_centred": True, "long_clips": "crop", "max_frames": 12},
     ["shorten", "normalize", "mirror_left_handed", "hand_centred"]),
    (84, {"normalize": False, "mirror_left_handed": "on"}, ["shorten", "mirror_left_handed"]),
])
def test_the_metadata_names_each_step_and_prepare_clip_is_what_predict_feeds(tmp_path, dim, options, steps):
    from slr.analysis.export import metadata
    from slr.analysis.inference import dataset_from_arrays, load_model
    from slr.data.prepare import prepare_clip

    ckpt = write_checkpoint(tmp_path / "SignTransformer_best.pt", "transformer", dim, **options)
    loaded = load_model(ckpt)
    meta = json.loads(json.dumps(metadata(loaded)))  # as a deployment reads it back
    prep = meta["preprocessing"]
    assert [s["step"] for s in prep["steps"]] == steps
    assert prep["mirror_left_handed"] == ("mirror_left_handed" in steps)
    assert prep["hand_centred"] == ("hand_centred" in steps)
    rng = np.random.default_rng(dim)
    clip = left_handed_clip(30) if dim == 84 else rng.uniform(0.2, 0.8, (30, dim)).astype(np.float32)
    fed = dataset_from_arrays(loaded, [clip], ["c"])[0].x.numpy()  # what slr predict and evaluate feed
    assert np.array_equal(prepare_clip(clip, meta), fed)
