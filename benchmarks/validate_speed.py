"""How long `slr validate` takes on a folder of real clips, against reading every clip with numpy.

Both run in fresh processes, alternating, several times; the ratio is median(slr validate) /
median(bare read). The bare read is the floor: opening each .npz and its arrays, nothing checked.

    python benchmarks/validate_speed.py ../shared/data/asl-words/train --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BARE = """
import sys, pathlib, numpy as np
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.npz")):
    with np.load(p, allow_pickle=False) as z:
        for k in z.files:
            z[k]
"""


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    slr = [sys.executable, "-m", "slr", "validate", args.directory]
    bare = [sys.executable, "-c", BARE, args.directory]
    times: dict[str, list[float]] = {"slr validate": [], "bare numpy read": []}
    for _ in range(args.repeats):  # alternate, so that a change in machine load hits both alike
        times["slr validate"].append(wall(slr))
        times["bare numpy read"].append(wall(bare))
    for name, values in times.items():
        print(f"{name:16s} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(times["slr validate"]) / statistics.median(times["bare numpy read"])
    print(f"ratio slr validate / bare read: {ratio:.2f}")


if __name__ == "__main__":
    main()
