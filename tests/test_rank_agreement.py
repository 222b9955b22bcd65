"""Ranks under torchrun agree on the sizes that set how many steps an epoch has."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from slr.engine.distributed import init_distributed, min_across_ranks, shutdown_distributed
    info = init_distributed("cpu")
    # Each rank "picks" a different batch size, as --auto-batch-size may on unequal GPUs or RAM.
    picked = 64 if info.rank == 0 else 16
    agreed = min_across_ranks(picked, info, torch.device("cpu"))
    print(f"rank {info.rank} agreed {agreed}", flush=True)
    shutdown_distributed()
    sys.exit(0 if agreed == 16 else 3)
    """
)


def test_ranks_take_the_smallest_auto_batch_size(tmp_path):
    script = tmp_path / "agree.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "rank 0 agreed 16" in proc.stdout and "rank 1 agreed 16" in proc.stdout
