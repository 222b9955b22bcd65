"""--amp on a CPU: bfloat16 autocast where the CPU multiplies bfloat16 natively, a notice and float32
elsewhere (slr/engine/hardware.py)."""

from __future__ import annotations

import pytest
import torch

from slr.engine import hardware
from slr.engine.checkpoint import load_checkpoint
from slr.engine.run import train

from test_training import settings


@pytest.mark.parametrize("fast", [True, False])
def test_amp_dtype_on_the_cpu_follows_native_bfloat16(monkeypatch, fast):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: fast)
    cpu = torch.device("cpu")
    assert hardware.amp_dtype(cpu, "auto") == (torch.bfloat16 if fast else None)
    assert hardware.amp_dtype(cpu, "bfloat16") == (torch.bfloat16 if fast else None)
    assert hardware.amp_dtype(cpu, "float16") is None  # float16 on a CPU is neither fast nor safe without scaling


def test_cpu_flags_are_read(tmp_path):
    flags = open("/proc/cpuinfo", encoding="ascii", errors="replace").read() if hardware.os.path.exists("/proc/cpuinfo") else ""
    expected = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    assert hardware.cpu_has_fast_bf16() == expected


class Notes:
    wants_memory = False

    def __init__(self):
        self.lines, self.notices = [], []

    def note(self, text):
        self.lines.append(text)

    def notice(self, text):
        self.notices.append(text)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def autocasts_seen(monkeypatch) -> list:
    """(device type, dtype) of every torch.autocast the run enters, the real autocast still run."""
    seen = []
    real_autocast = torch.autocast

    def watching(device_type, dtype=None, **kwargs):
        seen.append((device_type, dtype))
        return real_autocast(device_type, dtype=dtype, **kwargs)

    monkeypatch.setattr(torch, "autocast", watching)
    return seen


@pytest.mark.parametrize("fast", [True, False])
def test_a_cpu_run_with_amp_uses_bfloat16_only_where_it_is_native(clips, tmp_path, monkeypatch, one_thread, fast):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: fast)
    seen = autocasts_seen(monkeypatch)
    notes = Notes()
    outcome = train(settings(clips, tmp_path / "run", epochs=1, amp=True, device="cpu"), notes)
    header = next(line for line in notes.lines if "CPU thread(s)" in line)
    amp_notices = [n for n in notes.notices if "{{amp}}" in n]
    if fast:
        assert "AMP bfloat16" in header and not amp_notices and ("cpu", torch.bfloat16) in seen
    else:
        assert "AMP" not in header and len(amp_notices) == 1 and "float32" in amp_notices[0] and not seen
    assert outcome.history[0]["train_loss"] > 0
    assert not load_checkpoint(tmp_path / "run" / "SignTransformer_last.pt", need="resume")["scaler_state"]


@pytest.mark.parametrize("fast", [True, False])
def test_amp_left_out_is_bfloat16_exactly_where_the_cpu_has_it(clips, tmp_path, monkeypatch, one_thread, fast):
    """--amp not given: bfloat16 autocast on a CPU with native bfloat16, said so in the header; plain
    float32 without a notice elsewhere; --no-amp keeps float32 on any CPU."""
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: fast)
    seen = autocasts_seen(monkeypatch)
    notes = Notes()
    train(settings(clips, tmp_path / "auto", epochs=1, device="cpu"), notes)
    header = next(line for line in notes.lines if "CPU thread(s)" in line)
    assert not [n for n in notes.notices if "{{amp}}" in n]
    if fast:
        assert "AMP bfloat16 (auto" in header and "{{amp=False}}" in header  # the flag that turns it off
        assert ("cpu", torch.bfloat16) in seen
    else:
        assert "AMP" not in header and not seen
    seen.clear()
    off = Notes()
    train(settings(clips, tmp_path / "off", epochs=1, device="cpu", amp=False), off)
    assert "AMP" not in next(line for line in off.lines if "CPU thread(s)" in line) and not seen


def test_autocast_dtype_resolves_auto_on_and_off():
    cpu = torch.device("cpu")
    fast = hardware.Capabilities(amp=True, compile=False, pin_memory=False, gpus=0, probe=False, bf16=True,
                                 memory=None, float16=False)
    slow = hardware.Capabilities(amp=False, compile=False, pin_memory=False, gpus=0, probe=False, bf16=False,
                                 memory=None, float16=False)
    assert hardware.autocast_dtype(None, cpu, "auto", fast) == torch.bfloat16
    assert hardware.autocast_dtype(None, cpu, "float16", fast) is None  # auto never picks float16 on a CPU
    assert hardware.autocast_dtype(None, cpu, "auto", slow) is None
    assert hardware.autocast_dtype(False, cpu, "auto", fast) is None
    assert hardware.autocast_dtype(True, cpu, "auto", fast) == torch.bfloat16
    gpu = hardware.Capabilities(amp=True, compile=True, pin_memory=True, gpus=1, probe=True, bf16=True,
                                memory=None)
    # on a GPU --amp stays opt-in: auto leaves it off
    assert hardware.autocast_dtype(None, torch.device("cuda"), "auto", gpu) is None
    assert hardware.autocast_dtype(True, torch.device("cuda"), "auto", gpu) == torch.bfloat16
