"""Resident memory and throughput of `slr train` on clips of varying length with speed
augmentation, for the memory settings paired in one run: the attention weights' dropout
(--attention-dropout: at 0, slr's default, the fused attention kernel keeps no T x T maps), length
buckets, the release of freed memory after each epoch (glibc's malloc_trim), and a fixed mmap
threshold (--malloc-mmap-mib).

Data: synthetic keypoint clips of 20-180 frames (156 values per frame, like FSL-105), written
once to a temporary folder; training uses slr's defaults (the shipped SignTransformer, batch 32,
AdamW, buckets and release on) plus --speed-jitter 0.2, so every epoch brings new lengths, on one
CPU thread. Each configuration trains in a fresh child process, and the children alternate
(A, B, C, A, B, C, ...), so the load of a shared machine falls on all alike. Per child: the peak
resident memory (ru_maxrss of the process itself; it has no DataLoader workers on the CPU), the
RSS the engine logs after each epoch (log.csv's rss column) and the median samples/s of the
epochs after the first. Printed last: per configuration the median over its children, the ratios
against the first configuration, and the spread of samples/s between the rounds of each one
(the noise of this machine at the time). Run it under `nice -n 10` on a shared machine.

    python benchmarks/memory_buckets.py             # 224 clips (about 17 MB), 4 epochs, 3 rounds
    python benchmarks/memory_buckets.py --clips 1280 --epochs 3 --rounds 2   # 98 MB
    python benchmarks/memory_buckets.py --quick     # 96 clips, 3 epochs, 2 rounds
    python benchmarks/memory_buckets.py --configs "default,mmap 4 MiB" --guide-model
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
    "default": {},  # slr's defaults as shipped; the baseline of the ratios
    "no buckets": {"length_buckets": 0},
    "no release": {"release_memory": False},
    "mmap 4 MiB": {"malloc_mmap_mib": 4},
    "mmap 8 MiB": {"malloc_mmap_mib": 8},
    "mmap 16 MiB": {"malloc_mmap_mib": 16},
    # slr before --attention-dropout's default became 0: attention weights dropped at --dropout,
    # which on a CPU runs the plain attention path and keeps every layer's T x T maps.
    "attention dropout 0.1": {"attention_dropout": 0.1},
}
DEFAULT_CONFIGS = "default,attention dropout 0.1,mmap 16 MiB"


#: --guide-model: the old training guide's transformer (slr.settings.GUIDE_VALUES), 4x the activations.
GUIDE_MODEL = ("d_model", "num_heads", "num_layers", "ff_dim")


def child(data: Path, out: Path, epochs: int, config: dict, guide_model: bool) -> None:
    from slr.engine.run import train
    from slr.settings import GUIDE_VALUES, TrainSettings

    if guide_model:
        config = {**{k: GUIDE_VALUES[k] for k in GUIDE_MODEL}, **config}
    settings = TrainSettings(model="transformer", keypoints_train=data / "train", keypoints_val=data / "val",
                             num_gloss=10, num_cat=3, epochs=epochs, speed_jitter=0.2, output_dir=out,
                             plots=False, tensorboard=False, log_every_s=0, threads=1, **config)
    with open(os.devnull, "w") as quiet:  # the epoch lines are not the measurement
        stdout, sys.stdout = sys.stdout, quiet
        try:
            outcome = train(settings)
        finally:
            sys.stdout = stdout
    print(json.dumps({
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": [row["rss"] for row in outcome.history],
        "samples_per_s": [row["samples_per_s"] for row in outcome.history[1:]],
        "losses": [row["train_loss"] for row in outcome.history],
        "runtime_mmap": json.loads((out / "settings.json").read_text())["runtime"].get("malloc_mmap_mib"),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clips", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--guide-model", action="store_true", help="the old guide's transformer sizes "
                        "(d_model 256, 8 heads, 4 layers, ff 1024) instead of slr's defaults")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated names of {', '.join(CONFIGS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = args.clips or (96 if args.quick else 224)
    epochs = args.epochs or (3 if args.quick else 4)
    rounds = args.rounds or (2 if args.quick else 3)
    if args.child:
        child(args.data, args.out, epochs, CONFIGS[args.child], args.guide_model)
        return

    from slr.data.synthetic import write_synthetic_dataset

    names = [n.strip() for n in args.configs.split(",")]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        options = dict(num_gloss=10, num_cat=3, min_frames=20, max_frames=180, feature_dim=8)
        write_synthetic_dataset(data / "train", clips, seed=1, **options)
        write_synthetic_dataset(data / "val", max(16, clips // 6), seed=2, **options)
        size = sum(p.stat().st_size for p in data.rglob("*.npz")) / 1e6
        model = "the old guide's transformer (256/8/4/1024)" if args.guide_model else "slr's default transformer"
        print(f"{model}; {clips} training clips ({size:.1f} MB of .npz), {epochs} epochs, {rounds} rounds, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        results: dict[str, list[dict]] = {n: [] for n in names}
        loads = []
        for r in range(rounds):
            for name in names:
                cmd = [sys.executable, __file__, "--child", name, "--data", str(data), "--out",
                       str(Path(tmp) / f"run-{r}-{name.replace(' ', '_')}"), "--epochs", str(epochs)]
                cmd += ["--guide-model"] if args.guide_model else []
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
                if done.returncode:
                    sys.exit(f"{name}: failed\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[name].append(result)
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1} {name:>12}: peak {result['peak_mib']:5.0f} MiB; RSS by epoch "
                      f"{', '.join(f'{v:.0f}' for v in result['rss_mib'])}; "
                      f"{statistics.median(result['samples_per_s']):5.1f} samples/s; load {loads[-1]:.1f}; "
                      f"runtime.malloc_mmap_mib {result['runtime_mmap']}", flush=True)
        print(f"load average after each child: {min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})")
        base = names[0]
        summary = {}
        for name in names:
            speeds = [statistics.median(r["samples_per_s"]) for r in results[name]]
            summary[name] = (statistics.median(r["peak_mib"] for r in results[name]),
                             max(r["peak_mib"] for r in results[name]),
                             statistics.median(r["rss_mib"][-1] for r in results[name]),
                             statistics.median(speeds), min(speeds), max(speeds))
        b = summary[base]
        for name, (peak, top, last, speed, low, high) in summary.items():
            print(f"{name:>12}: peak RSS {peak:5.0f} MiB median, {top:5.0f} max ({peak / b[0]:.2f}x); "
                  f"last-epoch RSS {last:5.0f} MiB; {speed:5.1f} samples/s ({speed / b[3]:.2f}x of {base}; "
                  f"rounds {low:.1f}-{high:.1f})")
        # Pairs: each round's child against the baseline child of the same round.
        for name in names[1:]:
            ratios = [statistics.median(a["samples_per_s"]) / statistics.median(z["samples_per_s"])
                      for a, z in zip(results[name], results[base])]
            print(f"{name:>12}: samples/s / {base}'s in the same round: "
                  f"{', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f})")
        gap = max(abs(a - b) for n in names for a, b in zip(results[n][0]["losses"], results[base][0]["losses"]))
        print(f"largest difference of an epoch's training loss from {base}: {gap:.2e}")


if __name__ == "__main__":
    main()
