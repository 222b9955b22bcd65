"""Ranks under torchrun: they agree on sizes that set the number of steps, and notice a peer that left."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

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


pytestmark = pytest.mark.slow  # real gloo process groups in child processes


def test_ranks_take_the_smallest_auto_batch_size(tmp_path):
    script = tmp_path / "agree.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "rank 0 agreed 16" in proc.stdout and "rank 1 agreed 16" in proc.stdout


PEER_GONE = textwrap.dedent(
    """
    import datetime, os, sys, torch, torch.distributed as dist
    from slr.engine.distributed import peer_failed
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=20))
    if dist.get_rank() == 1:
        os._exit(0)  # a rank that went away without joining the collective below
    try:
        dist.all_reduce(torch.ones(1))
    except Exception as exc:
        print(f"peer_failed={peer_failed(exc)}", flush=True)
        sys.exit(0 if peer_failed(exc) else 5)
    sys.exit(4)
    """
)


def test_a_vanished_peer_is_recognised_from_the_gloo_error(tmp_path):
    """What the surviving rank sees when another leaves: the run reports it as "another rank
    failed" (its own error is printed by that rank), not as an internal error."""
    script = tmp_path / "peer.py"
    script.write_text(PEER_GONE)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert "peer_failed=True" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
