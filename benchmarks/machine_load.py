"""What the speed benchmarks share about the machine's load: processes that keep cores busy beside
the measurement (`--busy N`), and the load average they print before and after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Iterator


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[int]:
    """`count` Python processes spinning on a core each while the block runs; killed after it."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
