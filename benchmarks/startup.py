"""How long `slr --help` takes to start, against a bare `python -c pass` (and `import torch` for scale).

Each command runs in a fresh process, several times, alternating; the figure is the median wall
time. The ratio printed last is median(slr --help) / median(python -c pass).

    python benchmarks/startup.py            # 10 repeats
    python benchmarks/startup.py --quick    # 3 repeats
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def slr_command() -> list[str]:
    beside = Path(sys.executable).parent / "slr"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("slr")
    return [found] if found else [sys.executable, "-m", "slr"]


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 10)
    slr = slr_command()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "slr --help": [*slr, "--help"],
        "slr train --help": [*slr, "train", "--help"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    env_note = f"{sys.executable}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
    print(f"interpreter: {env_note}")
    for cmd in commands.values():  # warm the page cache once
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c pass"])
    print(f"\nwall time, median of {repeats} (min - max):")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:26s} {med * 1000:7.0f} ms  ({min(values) * 1000:.0f} - {max(values) * 1000:.0f})  x{med / base:.1f}")
    ratio = statistics.median(times["slr --help"]) / base
    print(f"\nRATIO slr --help / python -c pass = {ratio:.2f}  "
          f"(slr --help: {statistics.median(times['slr --help']) * 1000:.0f} ms, python -c pass: {base * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
