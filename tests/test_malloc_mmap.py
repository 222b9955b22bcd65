"""--malloc-mmap-mib: glibc's mmap threshold fixed for the run (slr/engine/hardware.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slr.data.synthetic import write_synthetic_dataset
from slr.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]

# A training step's pattern in miniature: after one large block is freed (glibc's own rule then
# serves everything up to that size from the heap), steps of large blocks of varying size, each
# step keeping one small tensor that lands between them. Prints the growth of the resident memory.
STEPS = """
import sys
import torch
from slr.engine.hardware import process_rss
from slr.engine.hardware import fix_mmap_threshold
refused = fix_mmap_threshold(int(sys.argv[1]))
torch.ones(7 * 2**20)
before = process_rss()
keep, g = [], torch.Generator().manual_seed(0)
for step in range(60):
    blocks = [torch.ones(int(n)) for n in torch.randint(2**18, 6 * 2**20, (8,), generator=g)]  # 1-24 MB
    keep.append(torch.ones(64))
    del blocks
print(refused, (process_rss() - before) // 2**20)
"""
BOUND_MIB = 64  # what the kept tensors and the sub-threshold blocks may take


def _growth(mib: int) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", STEPS, str(mib)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    refused, growth = done.stdout.rsplit(maxsplit=1)
    return refused, int(growth)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_fixed_mmap_threshold_gives_freed_blocks_back():
    refused, growth = _growth(4)
    if refused != "None":
        pytest.skip(f"not applied here: {refused}")
    assert growth < BOUND_MIB, growth
    _, kept = _growth(0)  # glibc's own rule, for the record of what the setting prevents
    if kept < BOUND_MIB:
        pytest.skip(f"this glibc keeps only {kept} MiB in this pattern without the setting; the bound proves nothing")


@pytest.mark.slow
def test_a_run_records_the_threshold_it_set(tmp_path, one_thread):
    from slr.engine.hardware import fix_mmap_threshold
    from slr.engine.run import train

    write_synthetic_dataset(tmp_path / "clips", 12, num_gloss=3, num_cat=2, min_frames=6, max_frames=12)
    settings = TrainSettings(model="transformer", keypoints_train=tmp_path / "clips", keypoints_val=tmp_path / "clips",
                             num_gloss=3, num_cat=2, epochs=1, batch_size=8, output_dir=tmp_path / "run", plots=False,
                             tensorboard=False, d_model=16, num_heads=2, num_layers=1, ff_dim=32, malloc_mmap_mib=4)
    train(settings)
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())["runtime"]["malloc_mmap_mib"]
    assert recorded == (4 if fix_mmap_threshold(4) is None else 0)
