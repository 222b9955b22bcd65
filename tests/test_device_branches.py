"""Every branch only a GPU takes, driven on the CPU: the run is handed a GPU's capabilities
(`hardware.Capabilities`) for the CPU device, so that the code CUDA runs runs here. What only a GPU
can show (speed, CUDA kernels, real out-of-memory errors) is in benchmarks/gpu_checks.py.

docs/architecture.md lists each device-only branch and its test; the last test fails when a branch
appears in slr/ without an entry there."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from slr.engine import autobatch, hardware
from slr.engine import checkpoint as ckpt
from slr.engine.autobatch import choose_batch_size, probe_step
from slr.engine.distributed import DistInfo
from slr.engine.run import hardware_notices, train, wrap_model
from slr.errors import ConfigError
from slr.settings import TrainSettings
from slr.ui.training_view import memory_text
from shown import shown

from test_amp_paths import gpu_like
from test_training import settings

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="transformer", num_gloss=4, num_cat=2, d_model=16, num_heads=2, num_layers=1, ff_dim=32)
DATA = type("Data", (), {"input_dim": 32, "longest_clip": 40})


def _probe(budget: int, given=None, accumulation=1):
    step = probe_step(TrainSettings(**TINY), DATA, CPU, None)
    return choose_batch_size(given, accumulation, CPU, step=step, bytes_per_sample=lambda: 1, frames=40,
                             memory=hardware.ResidentMemory(budget=budget))


def test_the_probe_measures_real_steps_on_the_cpu_within_a_budget(one_thread):
    roomy = _probe(budget=2**40)
    assert (roomy.batch_size, roomy.method) == (autobatch.MAX_AUTO_BATCH, "measured")
    assert "measured (peak resident memory): 64: peak" in roomy.reason


def test_out_of_memory_in_the_probe_tries_every_smaller_size_then_the_floor(one_thread):
    """A budget no step fits: each size runs, runs out of memory (raised as on a full GPU), is
    released, and the next smaller one runs; with no size given the guide's floor is kept."""
    none_fits = _probe(budget=1)
    assert none_fits.batch_size == autobatch.MIN_AUTO_BATCH
    assert [part.split(":")[0].strip() for part in none_fits.reason.split(";")[1:]] == ["64", "32", "16", "8"]
    assert none_fits.reason.count("out of memory") == 4


def test_a_given_size_that_never_fits_is_refused_naming_the_flag(one_thread):
    with pytest.raises(ConfigError) as info:
        _probe(budget=1, given=6)  # the divisor search: 6, 3, 2, 1
    assert "--auto-batch-size: not even a batch of 1 fits" in shown(info.value)
    assert shown(info.value).count("out of memory") == 4


def test_a_run_with_auto_batch_size_probes_when_the_device_can(clips, tmp_path, one_thread):
    """Before the fix this path built a Trainer without a run folder and crashed on every GPU."""
    caps = gpu_like(probe=True, memory=hardware.ResidentMemory(budget=2**40))
    run = train(settings(clips, tmp_path, epochs=1, auto_batch_size=True), capabilities=caps)
    record = ckpt.load_checkpoint(run.paths.last)["runtime"]["batch_size"]
    assert record["method"] == "measured" and record["value"] == 16  # the given 16 fits: kept


def test_data_parallel_wraps_and_checkpoints_hold_the_plain_model(clips, tmp_path, one_thread):
    caps = gpu_like(gpus=2)
    run_settings = settings(clips, tmp_path, epochs=1, enable_parallel=True)
    wrapped = wrap_model(torch.nn.Linear(2, 2), run_settings, CPU, DistInfo(), caps)
    assert isinstance(wrapped, torch.nn.DataParallel)
    run = train(run_settings, capabilities=caps)
    keys = ckpt.load_checkpoint(run.paths.last)["model_state"]
    assert not any(k.startswith("module.") for k in keys) and not isinstance(run.model, torch.nn.DataParallel)
    model, _ = ckpt.load_trained_model(run.paths.last)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in run.model.parameters())


def test_the_gpu_option_notices_follow_the_capabilities():
    s = TrainSettings(**TINY, amp=True, compile_model=True, enable_parallel=True, pin_memory=True)
    plain_cpu = dataclasses.replace(hardware.capabilities(CPU), amp=False, bf16=False)  # no native bfloat16
    on_cpu = hardware_notices(s, CPU, DistInfo(), plain_cpu)
    assert len(on_cpu) == 4 and all("--" in shown_text for shown_text in map(shown, on_cpu))
    two_gpus = hardware_notices(s, CPU, DistInfo(), gpu_like(amp=True, compile=True, pin_memory=True, gpus=2))
    assert len(two_gpus) == 1 and "not combined with DataParallel" in shown(two_gpus[0])


def test_pinned_memory_reaches_the_loaders_only_where_the_device_takes_it(clips, tmp_path):
    from slr.engine.data_setup import build_data

    s = settings(clips, tmp_path, pin_memory=True)
    data = build_data(s, DistInfo(), CPU)
    assert [loader.pin_memory for loader in data.loaders(s, DistInfo(), CPU, 0, pin=True)] == [True, True]
    assert [loader.pin_memory for loader in data.loaders(s, DistInfo(), CPU, 0)] == [False, False]


class _GpuFigures(hardware.DeviceMemory):
    """A stand-in for a GPU's allocator counters (the panel's figures on a machine without one)."""

    kind = "cuda"

    def figures(self):
        return 300 * 2**20, 512 * 2**20, 400 * 2**20


def test_the_memory_panel_and_log_show_a_gpus_figures_from_its_source(clips, tmp_path, one_thread):
    snapshot = hardware.memory_snapshot(CPU, _GpuFigures())
    assert snapshot.as_row()["gpu_memory_allocated"] == 300.0 and snapshot.as_row()["gpu_memory_peak"] == 400.0
    assert "CUDA allocated 300 MiB / reserved 512 / peak 400 MiB" in memory_text(snapshot)
    run = train(settings(clips, tmp_path, epochs=1), capabilities=gpu_like(memory=_GpuFigures()))
    assert run.history[0]["gpu_memory_reserved"] == 512.0


@pytest.mark.slow  # inductor compiles C++ for the CPU: a minute on a busy 2-core machine
def test_compile_runs_on_the_cpu_and_checkpoints_hold_the_plain_model(clips, tmp_path, one_thread):
    run = train(settings(clips, tmp_path, epochs=1, compile_model=True), capabilities=gpu_like(compile=True))
    keys = ckpt.load_checkpoint(run.paths.last)["model_state"]
    assert keys and not any("_orig_mod" in k for k in keys)


# -- the list of device-only branches ---------------------------------------------------------------

DEVICE_ONLY = re.compile(r"\.is_cuda\b|\.type\s*[!=]=\s*[\"'](cuda|mps)[\"']|torch\.cuda\.|torch\.mps\.")


def _device_branches() -> set[str]:
    """``path::function`` (``path::Class.method``) for every function in slr/ whose own code tests
    for a GPU or calls one."""
    found = set()
    for path in sorted((ROOT / "slr").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()

        def visit(node, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    nested = {n.lineno for n in ast.walk(child) if n is not child
                              and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
                    own = [line.split("#")[0] for n, line in enumerate(lines[child.lineno - 1:child.end_lineno],
                                                                       child.lineno) if n not in nested]
                    if DEVICE_ONLY.search("\n".join(own)):
                        found.add(f"{path.relative_to(ROOT).as_posix()}::{prefix}{child.name}")

        visit(ast.parse(source), "")
    return found


def _documented() -> dict[str, str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Device-only branches", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([^`]+::[^`]+)` \| [^|]* \| `([^`]+)` \|", section, flags=re.M))


def test_every_device_only_branch_is_listed_with_the_test_that_drives_it():
    documented = _documented()
    missing = sorted(_device_branches() - set(documented))
    assert not missing, f"device-only code without an entry in docs/architecture.md: {missing}"
    for branch, test in documented.items():
        file, _, name = test.partition("::")
        assert (ROOT / file).is_file() and f"def {name}(" in (ROOT / file).read_text(encoding="utf-8"), (branch, test)


# -- slr hwinfo --probe ---------------------------------------------------------------------------------


def test_hwinfo_probe_measures_on_the_cpu_with_the_clips_longest_length(synthetic_dir, one_thread):
    from slr.engine.hwinfo import probe
    from slr.settings import HwinfoSettings

    lengths = []
    for path in synthetic_dir.glob("*.npz"):
        with __import__("numpy").load(path) as clip:
            lengths.append(clip["X"].shape[0])
    result = probe(HwinfoSettings(probe="transformer", keypoints=synthetic_dir, device="cpu"),
                   memory=hardware.ResidentMemory(budget=2**40))
    assert (result["frames"], result["width"]) == (max(lengths), 156)
    assert result["measured"]["batch_size"] == 64 and result["measured"]["reason"].startswith("measured (peak")
    assert result["rule"]["reason"].startswith("25% of") and result["seconds_per_step"] > 0
    small = probe(HwinfoSettings(probe="transformer", frames=8, width=12, device="cpu"),
                  memory=hardware.ResidentMemory(budget=1))
    assert small["measured"]["batch_size"] == autobatch.MIN_AUTO_BATCH and "out of memory" in small["measured"]["reason"]


def test_hwinfo_probe_names_the_problem_with_its_input(tmp_path, synthetic_dir):
    from typer.testing import CliRunner

    from slr.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["hwinfo", "--probe", "transformer", "--keypoints", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "not a directory of clips" in missing.output and "Traceback" not in missing.output
    both = runner.invoke(app, ["hwinfo", "--probe", "transformer", "--keypoints", str(synthetic_dir), "--frames", "9"])
    assert both.exit_code == 2 and "not both" in both.output
    (tmp_path / "bad.npz").write_text("not a zip")
    bad = runner.invoke(app, ["hwinfo", "--probe", "transformer", "--keypoints", str(tmp_path)])
    assert bad.exit_code == 2 and "bad.npz" in bad.output and "not a readable clip file" in bad.output


def test_hwinfo_probe_on_the_command_line_prints_measured_beside_the_rule(one_thread):
    import json

    from typer.testing import CliRunner

    from slr.cli import app

    result = CliRunner().invoke(app, ["hwinfo", "--probe", "transformer", "--frames", "8", "--width", "12",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    probe = json.loads(result.output)["probe"]
    assert probe["model"] == "transformer" and probe["measured"]["batch_size"] >= autobatch.MIN_AUTO_BATCH
    assert probe["rule"]["batch_size"] >= autobatch.MIN_AUTO_BATCH and probe["shape_from"] == "--frames/--width"
