"""`slr train` against the original `training/train.py`, whole process, in alternating pairs.

    python benchmarks/vs_original.py ORIGINAL_DIR DATA                      # the guide's settings
    python benchmarks/vs_original.py ORIGINAL_DIR DATA --settings defaults  # each at its own defaults
    python benchmarks/vs_original.py ORIGINAL_DIR DATA --busy 1             # one busy process beside

ORIGINAL_DIR is a checkout of the original project (github.com/jeipab/fslr-transformer-vs-iv3gru,
MIT), which you fetch yourself: slr does not ship it. It needs torch, numpy and psutil. DATA is a
clip folder with train/ and val/, each holding .npz clips and a labels.csv (file,gloss,cat), as the
guide lays them out (asl-words is such a folder); the class counts are read from the labels.

Both commands train the transformer on the same clips for `--epochs` (3), batch 32, writing their
checkpoints into a temporary folder; each is timed from start to exit (imports, data, training,
validation, checkpoints, and slr's curves). A pair runs both, the order alternating from pair to
pair, so that a change in the machine's load falls on both alike. `--settings guide` gives slr the
guide's model and optimiser (d-model 256, 8 heads, 4 layers, ff 1024, attention dropout 0.1, lr
1e-4, no scheduler, no weight decay, no label smoothing), the original's own defaults; `defaults`
runs slr with none of them. Neither gets thread or worker flags: each decides as it does for a
user. Printed: the load average before and after, each pair's times and ratio, and the median
ratio slr / original (the target: at most 0.67). About 4 minutes on a quiet 2-core machine.
`--slr-flags=--amp` adds flags to slr's command only (bfloat16 autocast on a CPU with native
bfloat16, as the guide's own basic command asks for with --amp).
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_load import busy_processes, load_average  # beside this file

GUIDE = ["--d-model", "256", "--num-heads", "8", "--num-layers", "4", "--ff-dim", "1024",
         "--attention-dropout", "0.1", "--lr", "1e-4", "--scheduler", "none", "--weight-decay", "0",
         "--label-smoothing", "0"]


def class_counts(data: Path) -> tuple[int, int]:
    gloss = cat = 0
    for split in ("train", "val"):
        with open(data / split / "labels.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                gloss, cat = max(gloss, int(row["gloss"]) + 1), max(cat, int(row["cat"]) + 1)
    return gloss, cat


def commands(original: Path, data: Path, out: Path, settings: str, epochs: int,
             slr_flags: list[str]) -> dict[str, list[str]]:
    gloss, cat = class_counts(data)
    tr, va = data / "train", data / "val"
    common = ["--num-gloss", str(gloss), "--num-cat", str(cat), "--epochs", str(epochs), "--batch-size", "32"]
    orig = [sys.executable, str(original / "training" / "train.py"), "--model", "transformer",
            "--keypoints-train", str(tr), "--keypoints-val", str(va),
            "--labels-train-csv", str(tr / "labels.csv"), "--labels-val-csv", str(va / "labels.csv"),
            *common, "--output-dir", str(out / "original")]
    slr = [sys.executable, "-m", "slr", "train", "transformer", "--keypoints-train", str(tr), "--keypoints-val",
           str(va), "--labels-train-csv", str(tr / "labels.csv"), "--labels-val-csv", str(va / "labels.csv"),
           *common, *(GUIDE if settings == "guide" else []), *slr_flags, "--output-dir", str(out / "slr")]
    return {"original": orig, "slr": slr}


def timed(name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "ab") as f:
        done = subprocess.run(command, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{name} failed (exit {done.returncode}); its output is in {log}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original_dir", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--settings", choices=["guide", "defaults"], default="guide")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside both")
    parser.add_argument("--slr-flags", default="", help="more flags for slr only, e.g. --slr-flags=--amp (bfloat16 on a CPU "
                        "with native bfloat16)")
    args = parser.parse_args()
    # killed (a timeout, Ctrl-C): subprocess.run kills the running command on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    original, data = args.original_dir.resolve(), args.data.resolve()
    if not (original / "training" / "train.py").is_file():
        sys.exit(f"{original}: no training/train.py (pass the original project's folder)")
    if not (data / "train" / "labels.csv").is_file() or not (data / "val" / "labels.csv").is_file():
        sys.exit(f"{data}: expected train/labels.csv and val/labels.csv")

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    base = {**env, "PYTHONPATH": os.pathsep.join([str(repo), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    envs = {"slr": base, "original": {**env, "PYTHONPATH": str(original)}}  # the original imports `models`
    times: dict[str, list[float]] = {"original": [], "slr": []}
    with busy_processes(args.busy):
        with tempfile.TemporaryDirectory(prefix="slr-vs-original-") as tmp:
            work = Path(tmp)
            log = work / "output.log"
            print(f"settings: {args.settings}{' + ' + args.slr_flags if args.slr_flags else ''}; {args.epochs} epochs; data {data}; busy processes: {args.busy}; "
                  f"load average before: {load_average()}", flush=True)
            for i in range(args.pairs):
                order = ["original", "slr"] if i % 2 == 0 else ["slr", "original"]
                cmds = commands(original, data, work / f"pair{i + 1}", args.settings, args.epochs,
                                shlex.split(args.slr_flags))  # fresh folders each pair
                for name in order:
                    times[name].append(timed(name, cmds[name], envs[name], work, log))
                ratio = times["slr"][-1] / times["original"][-1]
                print(f"pair {i + 1} ({' then '.join(order)}): original {times['original'][-1]:.1f} s, "
                      f"slr {times['slr'][-1]:.1f} s, ratio {ratio:.2f}", flush=True)
            threads = [line for line in log.read_text(errors="replace").splitlines() if "threads:" in line
                       or "CPU thread(s)" in line]
            for line in threads[-2:]:
                print(f"slr said: {line.strip()[:300]}")
    print(f"load average after: {load_average()}")
    ratios = [s / o for s, o in zip(times["slr"], times["original"])]
    print(f"median: original {statistics.median(times['original']):.1f} s, slr {statistics.median(times['slr']):.1f} s")
    print(f"RESULT {args.settings}{' ' + args.slr_flags if args.slr_flags else ''} busy={args.busy}: slr / original = {statistics.median(ratios):.2f} "
          f"(pairs {min(ratios):.2f}-{max(ratios):.2f}; target <= 0.67)")



if __name__ == "__main__":
    main()
