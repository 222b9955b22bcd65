"""Optimizer steps per second of a 2-process gloo run (torchrun on the CPU), for two source trees.

Under DDP the ranks agree on stopping (a Ctrl-C on one rank, a non-finite loss) through an
all-reduce. Before issue 21 two of them ran at every optimizer step (the stop agreement and the
loss check, with its ``.item()``); after it, one per sync window (20 micro-batches, and at the
epoch's end). This times the same 2-process run of `slr train` from each tree, in alternating
pairs (A B, B A, A B, ...), so that a busy shared machine slows both alike.

Steps per second come from the log each run writes: ``samples_per_s`` (every rank's training
clips / rank 0's training time, validation excluded) / the global batch, per epoch; the first
epoch is a warm-up and left out. The ratio is the median over pairs of B / A.

    git archive <before-commit> | tar -x -C /tmp/before
    python benchmarks/ddp_agreement.py --tree-a /tmp/before --tree-b . --pairs 3
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH_PER_PROCESS, PROCESSES = 4, 2
MODEL = ["--d-model", "32", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "64"]


def write_clips(folder: Path, tree: Path) -> None:
    code = ("from slr.data.synthetic import write_synthetic_dataset as w; import sys; "
            "w(sys.argv[1] + '/train', 256, num_gloss=4, num_cat=2, feature_dim=32, min_frames=6, max_frames=18, seed=1); "
            "w(sys.argv[1] + '/val', 16, num_gloss=4, num_cat=2, feature_dim=32, min_frames=6, max_frames=18, seed=2)")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env={**os.environ, "PYTHONPATH": str(tree)})


def steps_per_s(tree: Path, clips: Path, out: Path, epochs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(PROCESSES),
               "-m", "slr", "train", "transformer", "--keypoints-train", str(clips / "train"),
               "--keypoints-val", str(clips / "val"), "--num-gloss", "4", "--num-cat", "2", "--epochs", str(epochs),
               "--batch-size", str(BATCH_PER_PROCESS), "--output-dir", str(out), "--no-plots", "--no-augment",
               "--threads", "1", *MODEL]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: the run failed\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))[1:]  # the first epoch warms up
    return statistics.median(float(r["samples_per_s"]) for r in rows) / (BATCH_PER_PROCESS * PROCESSES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree-a", type=Path, required=True, help="source tree A (before)")
    parser.add_argument("--tree-b", type=Path, default=ROOT, help="source tree B (after); default: this one")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    trees = {"A": args.tree_a.resolve(), "B": args.tree_b.resolve()}
    print(f"load before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="slr-ddp-") as tmp:
        clips = Path(tmp) / "clips"
        write_clips(clips, trees["B"])
        results: dict[str, list[float]] = {"A": [], "B": []}
        for n in range(args.pairs):
            for name in ("A", "B") if n % 2 == 0 else ("B", "A"):
                rate = steps_per_s(trees[name], clips, Path(tmp) / f"{name}{n}", args.epochs)
                results[name].append(rate)
                print(f"pair {n + 1} {name}: {rate:.1f} optimizer steps/s")
    ratios = [b / a for a, b in zip(results["A"], results["B"])]
    print(f"A (before): {', '.join(f'{r:.1f}' for r in results['A'])} steps/s")
    print(f"B (after):  {', '.join(f'{r:.1f}' for r in results['B'])} steps/s")
    print(f"B / A, median over {args.pairs} pairs: {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
