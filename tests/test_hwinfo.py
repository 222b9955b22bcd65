"""`slr hwinfo` on this CPU machine: what it reports, as text and as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from slr.engine import autobatch, hardware


pytestmark = pytest.mark.slow  # each test starts slr in a child process that imports torch


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slr", "hwinfo", *args], capture_output=True, text=True)


def test_json_schema_on_cpu():
    proc = _run("--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) >= {"device", "gpus", "cpu", "memory", "versions", "auto_workers", "auto_batch_size"}
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert report["device"]["selected"].startswith(expected)
    assert report["device"]["reason"]
    assert report["cpu"]["usable_cores"] == len(os.sched_getaffinity(0))
    assert 0 < report["memory"]["available_gib"] <= report["memory"]["total_gib"]
    assert report["versions"]["torch"] == torch.__version__
    for gpu in report["gpus"]:
        assert {"name", "total_memory_gib", "free_memory_gib", "compute_capability", "bf16"} <= set(gpu)
    assert 0 <= report["auto_workers"]["workers"] <= 8 and report["auto_workers"]["reason"]
    for model in ("transformer", "iv3_gru"):
        pick = report["auto_batch_size"][model]
        assert 8 <= pick["batch_size"] <= 64 and pick["reason"]
        assert pick["method"] in ("measured", "memory rule")


def test_plain_text_when_not_a_terminal():
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout  # no colour codes in a log file
    assert "--auto-workers" in proc.stdout and "--auto-batch-size transformer" in proc.stdout
    assert "usable CPU cores" in proc.stdout


def test_cpu_device_when_asked():
    choice = hardware.select_device("cpu")
    assert choice.kind == "cpu" and "asked" in choice.reason


def test_unavailable_cuda_falls_back_with_reason():
    if torch.cuda.is_available():
        return
    choice = hardware.select_device("cuda")
    assert choice.kind == "cpu" and "no CUDA" in choice.reason


def test_auto_workers_rule():
    assert hardware.auto_workers("cpu", 16)[0] == 0
    assert hardware.auto_workers("cuda", 2)[0] == 1
    assert hardware.auto_workers("cuda", 64)[0] == 8


def test_memory_rule_clamps_to_the_guide_range():
    assert autobatch.batch_size_from_memory(10**12, 10**6)[0] == 64
    assert autobatch.batch_size_from_memory(10**6, 10**9)[0] == 8
    assert autobatch.batch_size_from_memory(24 * 4 * 2**20, 2**20)[0] == 16  # 24 fits -> power of two below


def test_process_rss_is_plausible():
    rss = hardware.process_rss()
    assert 10 * 2**20 < rss < 20 * 2**30


def _device_with(budget: int, per_sample: int, fixed: int = 0):
    """The probe's view of a GPU with ``budget`` bytes: a step's peak grows with the batch, and past
    the budget the allocator raises CUDA's out-of-memory error. (No GPU here to run real steps on.)"""
    calls = []

    def peak_of(size: int) -> int:
        calls.append(size)
        peak = fixed + size * per_sample
        if peak > budget:
            raise torch.OutOfMemoryError(f"CUDA out of memory: tried {peak} bytes")
        return peak

    return peak_of, calls


def test_batch_probe_halves_past_out_of_memory_and_keeps_the_first_fit():
    peak_of, calls = _device_with(budget=100 * 2**20, per_sample=3 * 2**20)  # 33 samples fit
    size, tried = autobatch.largest_fitting_batch(peak_of, total=100 * 2**20, safety=1.0)
    assert size == 32 and calls == [64, 32]
    assert tried[0] == "64: out of memory" and tried[1].startswith("32: peak")


def test_batch_probe_leaves_headroom_below_the_safety_share():
    # 32 samples fit in memory but peak at 96% of it: over the 85% share, so 16 is chosen.
    peak_of, calls = _device_with(budget=100 * 2**20, per_sample=3 * 2**20)
    size, tried = autobatch.largest_fitting_batch(peak_of, total=100 * 2**20, safety=0.85)
    assert size == 16 and calls == [64, 32, 16]
    assert "over 85%" in tried[1]


def test_batch_probe_reports_when_nothing_fits():
    peak_of, calls = _device_with(budget=2**20, per_sample=2**20, fixed=2**20)
    size, tried = autobatch.largest_fitting_batch(peak_of, total=2**20, safety=0.85)
    assert size is None and calls == [64, 32, 16, 8] and len(tried) == 4


def test_the_precision_a_run_would_use_follows_native_bfloat16(monkeypatch):
    """The preview says what a run given neither --amp nor --no-amp computes in, on this CPU."""
    from slr.engine import hardware
    from slr.engine.hwinfo import precision

    cpu = torch.device("cpu")
    for fast, expected in ((True, "bfloat16"), (False, "none (float32)")):
        monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda fast=fast: fast)
        chosen = precision(cpu, hardware.capabilities(cpu))
        assert chosen["autocast"] == expected and chosen["reason"].startswith("auto: ")
    monkeypatch.undo()  # the command itself reads this CPU's flags
    proc = _run("--json")
    assert proc.returncode == 0, proc.stderr
    real = json.loads(proc.stdout)["precision"]["autocast"]
    assert real == ("bfloat16" if hardware.cpu_has_fast_bf16() else "none (float32)")
