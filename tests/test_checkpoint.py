"""Checkpoint files: atomic writes, weights_only loading, refusal of foreign or unsafe files."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch

from slr.engine import checkpoint as ckpt
from slr.engine.checkpoint import capture_rng
from slr.engine.checkpoint import check_resume_values, derive_progress, make_checkpoint
from slr.errors import CheckpointError
from slr.models.registry import build_model
from slr.settings import TrainSettings
from shown import raises_shown, shown


def _state(value: float = 1.0) -> dict:
    return make_checkpoint("weights", model="transformer", model_class="SignTransformer", num_gloss=5, num_cat=2,
                           model_state={"w": torch.full((256, 256), value)})


def test_round_trip(tmp_path):
    path = tmp_path / "a" / "SignTransformer_last.pt"
    ckpt.save_checkpoint(_state(3.0), path)
    loaded = ckpt.load_checkpoint(path)
    assert torch.equal(loaded["model_state"]["w"], torch.full((256, 256), 3.0))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_wrapper_prefixes_are_stripped():
    state = {"module._orig_mod.head.weight": 1, "_orig_mod.module.x": 2, "plain": 3}
    assert ckpt.clean_state_dict(state) == {"head.weight": 1, "x": 2, "plain": 3}


def test_unwrap_model_from_data_parallel_and_compile_wrappers():
    inner = torch.nn.Linear(2, 2)
    wrapped = torch.nn.DataParallel(inner)
    assert ckpt.unwrap_model(wrapped) is inner


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickled_objects_are_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    assert "refused" in str(info.value) and str(path) in str(info.value)
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_a_pickled_module_is_refused_in_plain_words(tmp_path):
    """torch's own text offers options (weights_only=False, allow-lists) slr never takes, with
    terminal colour codes; the message names the object instead."""
    path = tmp_path / "module.pt"
    torch.save({"format": ckpt.FORMAT, "model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    text = str(info.value)
    assert "an object of torch.nn.modules.linear.Linear" in text, text
    assert "\x1b" not in text and "two options" not in text


def test_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"format": ckpt.FORMAT, "x": _Payload()}))
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(path)
    assert not (tmp_path / "PWNED_MARKER").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable checkpoint"),
        (b"hello, I am text\n", "not a readable checkpoint"),
    ],
)
def test_corrupt_files(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        ckpt.load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "t.pt"
    ckpt.save_checkpoint(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(path)


def test_foreign_torch_file_is_not_an_slr_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an slr checkpoint"):
        ckpt.load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "iv3_gru", "num_gloss": 5, "num_cat": 2}, "not 'iv3_gru'"),
        ({"model": "transformer", "num_gloss": 105, "num_cat": 2}, "num_gloss = 5"),
        ({"model": "transformer", "num_gloss": 5, "num_cat": 10}, "num_cat = 2"),
    ],
)
def test_incompatible_checkpoints_are_refused(tmp_path, kwargs, message):
    with pytest.raises(CheckpointError, match=message):
        ckpt.check_compatible(_state(), tmp_path / "x.pt", **kwargs)


_SAVING_CHILD = textwrap.dedent(
    """
    import sys, torch
    from slr.engine import checkpoint as ckpt
    path, direct = sys.argv[1], sys.argv[2] == "direct"
    print("ready", flush=True)  # torch is imported: from here on the child does nothing but save
    i = 1
    while True:
        state = {"format": ckpt.FORMAT, "version": 1, "model_state": {"w": torch.full((1024, 1024), float(i))}}
        if direct:  # what the protection replaces: torch.save straight onto the checkpoint
            torch.save(state, path)
        else:
            ckpt.save_checkpoint(state, path)
        i += 1
    """
)


def _kill_while_saving(path: Path, writer: str, delays) -> tuple[int, int]:
    """SIGKILL a child that keeps rewriting ``path``, once per delay after it is ready; returns
    (kills that interrupted a write, kills after which ``path`` did not load as one whole checkpoint)."""
    mid_write = broken = 0
    for delay in delays:
        child = subprocess.Popen([sys.executable, "-c", _SAVING_CHILD, str(path), writer], stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        temps = list(path.parent.glob(f".{path.name}.*.tmp"))
        if temps or writer == "direct":
            mid_write += bool(temps)
        try:
            w = ckpt.load_checkpoint(path)["model_state"]["w"]
            broken += not bool(torch.all(w == w[0, 0]))  # one whole checkpoint, never a mix
        except CheckpointError:
            broken += 1
        for temp in temps:
            temp.unlink()
    return mid_write, broken


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["atomic", "direct"])
def test_a_kill_during_a_real_save_leaves_a_loadable_checkpoint(tmp_path, writer):
    """Kills land after torch has imported, at varied offsets into a loop of 4 MB saves. With the
    atomic writer every kill leaves a loadable, whole checkpoint, and some kills are shown to have
    interrupted a write (their temporary file is left); writing straight onto the file (the
    "direct" case, which the atomic writer replaces) is caught by the same check."""
    path = tmp_path / "SignTransformer_last.pt"
    ckpt.save_checkpoint(_state(0.0), path)
    delays = [0.05 + 0.06 * k for k in range(8)]
    mid_write, broken = _kill_while_saving(path, writer, delays)
    if writer == "atomic":
        assert broken == 0
        assert mid_write >= 1, "no kill interrupted a save: the test would not see a non-atomic one"
    else:
        assert broken >= 1, "writing straight onto the checkpoint survived every kill: the check is blind"


# -- damaged files, legacy format, structure, weight mismatches ----------------------------------------

TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32)


def _training_state(**sizes) -> dict:
    """A checkpoint with every entry the trainer writes, around a real (untrained) small transformer."""
    settings = TrainSettings(model="transformer", num_gloss=5, num_cat=2, **{**TINY, **sizes})
    model = build_model("transformer", settings, 12, 5, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    return make_checkpoint(
        model="transformer", model_class="SignTransformer", input_dim=12, num_gloss=5, num_cat=2,
        settings=settings.model_dump(mode="json"), model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(), scheduler_state=None, scaler_state={}, runtime={}, epoch=1,
        step_in_epoch=0, epoch_totals=[0.0, 0.0, 0.0, 0.0], epoch_seconds=0.0, best_metric=0.5, best_epoch=1,
        early_stop={"stale_epochs": 0, "patience": None}, history=[{"epoch": 1, "val_gloss_acc": 0.5}],
        rng=capture_rng(),
    )


def _member_offset(path: Path, suffix: str) -> tuple[str, int]:
    """Where the bytes of the zip member whose name ends in ``suffix`` start in the file."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    return info.filename, info.header_offset + 30 + name_len + extra_len


def test_damaged_weight_bytes_are_refused_by_their_crc(tmp_path):
    """Flipped bytes inside a tensor load fine with torch (it never checks the CRCs) and used to give
    NaN predictions; the archive's CRCs catch them and name the member."""
    path = tmp_path / "SignTransformer_best.pt"
    ckpt.save_checkpoint(_state(1.0), path)
    member, offset = _member_offset(path, "/data/0")
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = b"\xff" * 8  # 0xffffffff is a float32 NaN
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    assert str(path) in str(info.value) and f"CRC mismatch in {member}" in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weights_with_nan_or_inf_are_refused(tmp_path, bad, dtype):
    state = _state(1.0)
    state["model_state"]["w"] = state["model_state"]["w"].to(dtype)
    state["model_state"]["w"][3, 7] = bad
    state["model_state"]["empty"] = torch.zeros(0)  # nothing to check there, and no error
    path = tmp_path / "diverged.pt"
    ckpt.save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="NaN or infinite values \\(w\\).*diverged run") as info:
        ckpt.load_checkpoint(path)
    assert str(path) in str(info.value)


def test_legacy_format_checkpoint_is_refused_with_a_reason(tmp_path):
    """torch's legacy (non-zip) format writes the uint32 random-number state but cannot read it back:
    an AttributeError deep in torch became an "internal error"."""
    path = tmp_path / "legacy.pt"
    torch.save(_training_state(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy \\(non-zip\\) format.*_use_new_zipfile_serialization") as info:
        ckpt.load_checkpoint(path)
    assert str(path) in str(info.value)


def test_legacy_format_checkpoint_that_torch_can_read_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save(_state(2.0), path, _use_new_zipfile_serialization=False)
    assert torch.equal(ckpt.load_checkpoint(path)["model_state"]["w"], torch.full((256, 256), 2.0))


def _drop(key):
    return lambda s: s.pop(key)


def _put(key, value):
    return lambda s: s.update({key: value})


@pytest.mark.parametrize(
    "edit, need, message",
    [
        (_drop("epoch"), "resume", "no 'epoch' entry to resume training"),
        (_drop("history"), "resume", "no 'history' entry"),
        (_drop("rng"), "resume", "no 'rng' entry"),
        (_drop("settings"), "resume", "no 'settings' entry"),
        (_drop("optimizer_state"), "resume", "no 'optimizer_state' entry"),
        (_drop("settings"), "model", "no 'settings' entry to build its model"),
        (_drop("input_dim"), "model", "no 'input_dim' entry"),
        (_drop("model_state"), "weights", "no 'model_state' entry"),
        (_put("epoch", "3"), "resume", "'epoch' should be a whole number of epochs, not str '3'"),
        (_put("best_metric", "x"), "resume", "'best_metric' should be a number, not str 'x'"),
        (_put("history", {"epoch": 1}), "resume", "'history' should be a list of dicts"),
        (_put("rng", {"python": []}), "resume", "'rng' should be the random-number state"),
        (lambda s: s["rng"]["numpy"].update(keys=torch.zeros(3)), "resume", "'rng' should be"),
        (lambda s: s["rng"].update(python=[3, "x", None]), "resume", "'rng' should be"),
        (_put("early_stop", []), "resume", "'early_stop' should be a dict"),
        # every entry an exact resume reads is required: none is guessed (step 0, no scaler, ...)
        (_drop("step_in_epoch"), "resume", "no 'step_in_epoch' entry"),
        (_drop("epoch_totals"), "resume", "no 'epoch_totals' entry"),
        (_drop("scaler_state"), "resume", "no 'scaler_state' entry"),
        (_drop("scheduler_state"), "resume", "no 'scheduler_state' entry"),
        (lambda s: s["rng"].update(torch=torch.zeros(10, dtype=torch.uint8)), "resume", "'rng' should be"),
        (_put("settings", [1, 2]), "model", "'settings' should be a dict of settings, not list [1, 2]"),
        (_put("num_gloss", "15"), "model", "'num_gloss' should be a positive integer, not str '15'"),
        (_put("input_dim", 0), "model", "'input_dim' should be a positive integer"),
        (_put("model", "foo"), "model", "unknown model 'foo'"),
        (_put("version", "1"), "weights", "'version' should be an integer"),
    ],
)
def test_missing_or_mistyped_entries_are_named(tmp_path, edit, need, message):
    state = _training_state()
    edit(state)
    path = tmp_path / "SignTransformer_last.pt"
    ckpt.save_checkpoint(state, path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path, need=need)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_inference_needs_fewer_entries_than_resume(tmp_path):
    """predict/evaluate/export read the model's entries only: a checkpoint without its training
    history still builds its model, and resume refuses it."""
    state = _training_state()
    for key in ("epoch", "history", "rng", "optimizer_state"):
        del state[key]
    path = tmp_path / "SignTransformer_best.pt"
    ckpt.save_checkpoint(state, path)
    model, _ = ckpt.load_trained_model(path)
    assert isinstance(model, torch.nn.Module)
    with pytest.raises(CheckpointError, match="no 'optimizer_state', 'epoch', 'history', 'rng' entry"):
        ckpt.load_checkpoint(path, need="resume")


def test_load_trained_model_names_a_missing_entry(tmp_path):
    state = _training_state()
    del state["settings"]
    path = tmp_path / "SignTransformer_best.pt"
    ckpt.save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="no 'settings' entry"):
        ckpt.load_trained_model(path)


def _model_of(state: dict, **sizes) -> tuple[torch.nn.Module, TrainSettings]:
    settings = TrainSettings.model_validate({**state["settings"], **sizes})
    return build_model("transformer", settings, state["input_dim"], 5, 2), settings


def test_weight_mismatch_names_the_weights_and_the_setting(tmp_path):
    """torch's message was cut at its first line ("Error(s) in loading state_dict for SignTransformer:")."""
    state = _training_state(d_model=32)
    path = tmp_path / "SignTransformer_last.pt"
    ckpt.save_checkpoint(state, path)
    state = ckpt.load_checkpoint(path, need="resume")
    model, settings = _model_of(state, d_model=16)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_model_state(model, state, path, settings=settings, input_dim=12)
    text = shown(info.value)
    assert text.startswith(f"{path}: weights do not fit")
    assert "sizes (checkpoint vs this model): input_proj.weight [32, 12] vs [16, 12]; " in text
    assert "--d-model 16 here, --d-model 32 in the checkpoint" in text
    assert "more" in text and len(text.splitlines()) <= 5  # a few names, the rest counted


def test_weight_mismatch_without_the_runs_settings_shows_the_checkpoints(tmp_path):
    state = _training_state(pooling="cls")
    path = tmp_path / "SignTransformer_last.pt"
    ckpt.save_checkpoint(state, path)
    model, _ = _model_of(state, pooling="mean")
    with pytest.raises(CheckpointError) as info:
        ckpt.load_model_state(model, state, path)
    text = shown(info.value)
    assert "not in this model: " in text and "--pooling cls" in text and "--d-model 16" in text
    assert "dropout" not in text  # settings that size nothing are left out


def test_weights_that_do_not_fit_their_own_stored_settings(tmp_path):
    state = _training_state()
    state["input_dim"] = 30  # an edited checkpoint: its model would read 30 values, its weights read 12
    path = tmp_path / "SignTransformer_best.pt"
    ckpt.save_checkpoint(state, path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_trained_model(path)
    assert "input_proj.weight [16, 12] vs [16, 30]" in str(info.value)
    assert "edited or damaged" in str(info.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_put("best_metric", float("nan")), "'best_metric' is float nan but the history's best val_gloss_acc is 0.5"),
        (_put("best_metric", 1e300), "'best_metric' is float 1e+300"),
        (_put("best_epoch", 7), "'best_epoch' is 7 but the history's best is epoch 1"),
        (_put("epoch", 3), "'history' holds epochs [1] but 'epoch' says 3 were done"),
        (_put("history", [{"epoch": 1, "val_gloss_acc": float("nan")}]), "epoch 1 has val_gloss_acc float nan"),
        (_put("history", [{"epoch": 2, "val_gloss_acc": 0.5}]), "'history' holds epochs [2]"),
    ],
)
def test_values_a_resume_trusts_are_checked(tmp_path, edit, message):
    """Before: a NaN best metric was resumed (and the best checkpoint never written again), a history
    that disagreed with its epoch was trusted."""
    state = _training_state()
    edit(state)
    path = tmp_path / "SignTransformer_last.pt"
    with pytest.raises(CheckpointError) as info:
        check_resume_values(state, path)
    assert str(info.value).startswith(f"{path}: damaged checkpoint: ") and message in str(info.value)


def test_the_best_epoch_and_stale_epochs_come_from_the_history():
    history = [{"epoch": e, "val_gloss_acc": a} for e, a in enumerate([0.2, 0.6, 0.6, 0.4], 1)]
    progress = derive_progress(history)
    assert (progress.best_metric, progress.best_epoch, progress.stale_epochs) == (0.6, 2, 2)
    assert derive_progress([]).best_epoch == 0


def test_make_checkpoint_refuses_unknown_and_missing_entries():
    with pytest.raises(ValueError, match="unknown \\['epochs'\\]"):
        make_checkpoint("weights", model_state={}, epochs=1)
    with pytest.raises(ValueError, match="missing .*'rng'"):
        make_checkpoint("resume", **{k: v for k, v in _training_state().items() if k != "rng"})
