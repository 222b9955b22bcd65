"""Resident memory and throughput of `slr train` with and without length buckets (and with
`release_memory`, glibc's malloc_trim at each epoch's end), on clips of varying length with
speed augmentation.

Data: synthetic keypoint clips of 20-180 frames (156 values per frame, like FSL-105), written
once to a temporary folder; training uses slr's defaults (SignTransformer d_model 256, batch 32,
AdamW) plus --speed-jitter 0.2, so every epoch brings new lengths. Each configuration trains in
a fresh child process, and the children alternate (A, B, C, A, B, C, ...), so the load of a
shared machine falls on all alike. Per child: the peak resident memory (ru_maxrss), the RSS the
engine logs after each epoch (log.csv's rss column) and the samples/s of the epochs after the
first. Printed last: per configuration the median over its children, and the ratios against
the unbucketed run.

    python benchmarks/memory_buckets.py             # 224 clips (about 14 MB), 12 epochs, 2 rounds
    python benchmarks/memory_buckets.py --quick     # 96 clips, 5 epochs, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "no buckets": {"length_buckets": 0, "release_memory": False},
    "buckets": {"length_buckets": 8, "release_memory": False},
    "buckets + release": {"length_buckets": 8, "release_memory": True},
}


def child(data: Path, out: Path, epochs: int, config: dict) -> None:
    from slr.engine.run import train
    from slr.settings import TrainSettings

    fields = {k: v for k, v in config.items() if k in TrainSettings.model_fields}
    settings = TrainSettings(model="transformer", keypoints_train=data / "train", keypoints_val=data / "val",
                             num_gloss=10, num_cat=3, epochs=epochs, speed_jitter=0.2, output_dir=out,
                             plots=False, tensorboard=False, log_every_s=0, **fields)
    with open(os.devnull, "w") as quiet:  # the epoch lines are not the measurement
        stdout, sys.stdout = sys.stdout, quiet
        try:
            outcome = train(settings)
        finally:
            sys.stdout = stdout
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "peak_mib": peak / 2**20,
        "rss_mib": [row["rss"] for row in outcome.history],
        "samples_per_s": [row["samples_per_s"] for row in outcome.history[1:]],
        "losses": [row["train_loss"] for row in outcome.history],
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clips", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = args.clips or (96 if args.quick else 224)
    epochs = args.epochs or (5 if args.quick else 12)
    rounds = args.rounds or (1 if args.quick else 2)
    if args.child:
        child(args.data, args.out, epochs, CONFIGS[args.child])
        return

    from slr.data.synthetic import write_synthetic_dataset

    names = [n.strip() for n in args.configs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        options = dict(num_gloss=10, num_cat=3, min_frames=20, max_frames=180, feature_dim=8)
        write_synthetic_dataset(data / "train", clips, seed=1, **options)
        write_synthetic_dataset(data / "val", max(16, clips // 6), seed=2, **options)
        size = sum(p.stat().st_size for p in data.rglob("*.npz")) / 1e6
        print(f"{clips} training clips ({size:.1f} MB of .npz), {epochs} epochs, load {os.getloadavg()[0]:.1f}",
              flush=True)
        results: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(rounds):
            for name in names:
                cmd = [sys.executable, __file__, "--child", name, "--data", str(data), "--out",
                       str(Path(tmp) / f"run-{r}-{name.replace(' ', '_')}"), "--epochs", str(epochs)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if done.returncode:
                    sys.exit(f"{name}: failed\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[name].append(result)
                print(f"round {r + 1} {name:>18}: peak {result['peak_mib']:6.0f} MiB; RSS by epoch "
                      f"{', '.join(f'{v:.0f}' for v in result['rss_mib'])}; "
                      f"{statistics.median(result['samples_per_s']):.1f} samples/s", flush=True)
        print(f"load after: {os.getloadavg()[0]:.1f}")
        base = names[0]
        summary = {}
        for name in names:
            summary[name] = (statistics.median(r["peak_mib"] for r in results[name]),
                             statistics.median(r["rss_mib"][-1] for r in results[name]),
                             statistics.median(statistics.median(r["samples_per_s"]) for r in results[name]))
        for name, (peak, last, speed) in summary.items():
            b = summary[base]
            print(f"{name:>18}: peak RSS {peak:6.0f} MiB ({peak / b[0]:.2f}x), last-epoch RSS {last:6.0f} MiB "
                  f"({last / b[1]:.2f}x), {speed:.1f} samples/s ({speed / b[2]:.2f}x of {base})")
        gap = max(abs(a - b) for n in names for a, b in zip(results[n][0]["losses"], results[base][0]["losses"]))
        print(f"largest difference of an epoch's training loss from {base}: {gap:.2e} (padding is masked; "
              "only the order of float sums changes)")


if __name__ == "__main__":
    main()
