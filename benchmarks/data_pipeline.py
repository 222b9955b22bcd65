"""The share of each training step `slr train` spends waiting for its data, with and without the cache.

The real engine runs (`slr.engine.run.train`, the `slr train` defaults: normalisation and
the default augmentations, 0 workers on CPU); only the training DataLoader is wrapped so that the
time spent in `next(batch)` is recorded. Wait share = time waiting for batches / training time
of the epoch (validation excluded), per epoch after the first (which also warms the caches).

- cache: clips are read once (by the data check before training) and kept in memory;
- --no-cache: every sample is read from its .npz file again, every epoch.

The ratio printed last is the wait share without the cache over the wait share with it.

    python benchmarks/data_pipeline.py            # asl-words train split
    python benchmarks/data_pipeline.py --quick    # examples/asl-words-mini
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slr.engine import data_setup  # noqa: E402
from slr.engine.run import train  # noqa: E402
from slr.settings import TrainSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_overhead import ASL_WORDS, MINI, machine, quiet_view, small_val_dir  # noqa: E402


class TimedLoader:
    """A DataLoader stand-in for the trainer that records how long each `next()` took."""

    def __init__(self, loader, waits: list[list[float]]):
        self._loader = loader
        self._waits = waits
        self.sampler = loader.sampler
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        epoch_waits: list[float] = []
        self._waits.append(epoch_waits)
        it = iter(self._loader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            epoch_waits.append(time.perf_counter() - started)
            yield batch


def measure(settings: TrainSettings) -> list[dict[str, float]]:
    waits: list[list[float]] = []
    original = data_setup.RunData.loaders

    def timed_loaders(self, *args, **kwargs):
        train, val = original(self, *args, **kwargs)
        return TimedLoader(train, waits), val

    data_setup.RunData.loaders = timed_loaders
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            outcome = train(settings, quiet_view(live=False))
    finally:
        data_setup.RunData.loaders = original
    rows = []
    for row, epoch_waits in zip(outcome.history, waits):
        train_time = row["epoch_time"] - row["val_time"]
        rows.append({
            "epoch": row["epoch"],
            "train_s": train_time,
            "wait_s": sum(epoch_waits),
            "share": sum(epoch_waits) / train_time,
            "per_batch_ms": 1000 * sum(epoch_waits) / max(1, len(epoch_waits)),
            "samples_per_s": row["samples_per_s"],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 240-clip example set")
    parser.add_argument("--train", type=Path, help="training clip directory (default: asl-words train, else the example)")
    parser.add_argument("--epochs", type=int, help="epochs per run, the first not counted (default 3)")
    parser.add_argument("--rounds", type=int, help="alternating cache / --no-cache rounds (default 2, quick 1)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0: what slr picks on CPU)")
    args = parser.parse_args()
    train_dir = args.train or (MINI / "train" if args.quick or not (ASL_WORDS / "train").is_dir() else ASL_WORDS / "train")
    epochs = args.epochs or 3
    rounds = args.rounds or (1 if args.quick else 2)
    with open(train_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    num_gloss = max(2, max(int(r["gloss"]) for r in rows) + 1)
    num_cat = max(1, max(int(r["cat"]) for r in rows) + 1)
    print(f"machine: {machine()}")
    print(f"data: {train_dir} ({len(rows)} clips), batch 32, {rounds} round(s) of {epochs} epochs per variant "
          f"(the first epoch of each run not counted), {args.workers} workers")
    results: dict[str, list[dict[str, float]]] = {"cache": [], "--no-cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        val_dir = small_val_dir(train_dir, tmp)
        for r in range(rounds):
            for name, cache in (("cache", True), ("--no-cache", False)):
                s = TrainSettings(
                    model="transformer", keypoints_train=train_dir, keypoints_val=val_dir, num_gloss=num_gloss,
                    num_cat=num_cat, epochs=epochs, output_dir=tmp / name.strip("-"), plots=False, device="cpu",
                    cache=cache, num_workers=args.workers, auto_workers=False,
                )
                shutil.rmtree(s.output_dir, ignore_errors=True)
                per_epoch = measure(s)
                results[name] += per_epoch[1:] or per_epoch
                for e in per_epoch:
                    print(f"  round {r + 1} {name:10s} epoch {e['epoch']}: waiting {e['wait_s']:.2f} s of "
                          f"{e['train_s']:.2f} s training = {100 * e['share']:.1f}%  ({e['per_batch_ms']:.1f} ms per "
                          f"batch, {e['samples_per_s']:.0f} samples/s)", flush=True)
    share = {k: statistics.median(r["share"] for r in v) for k, v in results.items()}
    per_batch = {k: statistics.median(r["per_batch_ms"] for r in v) for k, v in results.items()}
    print("\nshare of each training step spent waiting for data (median over counted epochs):")
    for k in results:
        print(f"  {k:10s} {100 * share[k]:5.1f}%   {per_batch[k]:.1f} ms per batch of 32")
    print(f"\nRATIO wait share --no-cache / cache = {share['--no-cache'] / max(share['cache'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
