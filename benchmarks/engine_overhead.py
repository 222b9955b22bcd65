"""Training throughput of `slr train` against a bare PyTorch loop on the same model and data.

Both sides train the same SignTransformer (slr.models.registry.build_model, same seed) with AdamW
(lr 1e-4), batch 32 and the same loss (0.5 CE(gloss) + 0.5 CE(cat)) on the same clips:

- engine: `slr.engine.run.train` with the `slr train` defaults (per-clip normalisation and
  the default augmentations, 0 DataLoader workers on CPU, a validation pass after each epoch);
  its throughput is the `samples_per_s` the engine writes to log.csv (training samples / training
  time of the epoch, validation excluded), as a user sees it. Measured twice: with the plain
  one-line-per-epoch output (a log file, a pipe) and with the live progress display of a terminal
  (rendered, then discarded);
- bare: the clips normalised once, padded into one tensor, then a plain loop over shuffled index
  batches: forward, loss, backward, AdamW step. No DataLoader, no bookkeeping, no display.

Engine and bare epochs are paired: right after each engine epoch (its checkpoints written and
flushed to disk with os.sync, outside both timings) one bare epoch runs, inside the same process,
from the display's end-of-epoch hook. A machine shared with other work then slows both sides of
a pair alike. The first pair is a warm-up. The ratio is the median over pairs of engine / bare.
The components (data pipeline, per-step bookkeeping, display) are then timed on their own, and
the cost of the checkpoint writes themselves is reported from the log (epoch time not spent in
training or validation).

    python benchmarks/engine_overhead.py            # asl-words train split, ~10 min on 2 cores
    python benchmarks/engine_overhead.py --quick    # examples/asl-words-mini, ~1 min
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slr.data.augment import build_transform  # noqa: E402
from slr.data.dataset import ClipDataset, collate_clips  # noqa: E402
from slr.engine.run import train  # noqa: E402
from slr.models.registry import build_model  # noqa: E402
from slr.settings import TrainSettings  # noqa: E402
from slr.ui.training_view import TrainingView  # noqa: E402

ASL_WORDS = Path(os.environ.get("SLR_ASL_WORDS", ROOT.parent / "shared" / "data" / "asl-words"))
MINI = ROOT / "examples" / "asl-words-mini"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"load average {load:.2f} at start")


def small_val_dir(train_dir: Path, tmp: Path, n: int = 32) -> Path:
    """A validation directory of the first n training clips: the engine needs one, the benchmark does not."""
    out = tmp / "val"
    out.mkdir()
    with open(train_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    for row in rows:
        name = row["file"] if row["file"].endswith(".npz") else row["file"] + ".npz"
        shutil.copy(train_dir / name, out / name)
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def settings_for(train_dir: Path, val_dir: Path, out: Path, num_gloss: int, num_cat: int, epochs: int, **extra) -> TrainSettings:
    return TrainSettings(
        model="transformer", keypoints_train=train_dir, keypoints_val=val_dir, num_gloss=num_gloss,
        num_cat=num_cat, epochs=epochs, output_dir=out, plots=False, device="cpu", **extra,
    )


def quiet_view(live: bool) -> TrainingView:
    """The engine's display, rendering fully (as on a terminal when live) into a buffer that is thrown away."""
    view = TrainingView(enabled=True, live=live)
    view.console = Console(file=io.StringIO(), force_terminal=live, width=120)
    return view


class PairedView(TrainingView):
    """The engine's own display; after each epoch it flushes the checkpoints and runs one bare epoch."""

    def __init__(self, bare: "Bare", live: bool):
        super().__init__(enabled=True, live=live)
        self.console = Console(file=io.StringIO(), force_terminal=live, width=120)
        self.bare = bare
        self.bare_rates: list[float] = []
        self.walls: list[float] = []  # engine wall time per epoch: training, validation, checkpoints, log
        self._left = time.perf_counter()

    def epoch_end(self, row, total_epochs, improved, snapshot) -> None:
        self.walls.append(time.perf_counter() - self._left)
        super().epoch_end(row, total_epochs, improved, snapshot)
        os.sync()  # the engine's checkpoint writes must not slow the bare epoch down
        live = self._live
        if live is not None:
            live.stop()  # nor may the display's refresh thread
        self.bare_rates.append(self.bare.epoch())
        if live is not None:
            live.start()
        self._left = time.perf_counter()


def paired_rates(settings: TrainSettings, bare: "Bare", live: bool) -> tuple[list[float], list[float], list[float]]:
    """(engine samples_per_s, bare samples/s, seconds per epoch outside training and validation), warm-up left out."""
    shutil.rmtree(settings.output_dir, ignore_errors=True)
    view = PairedView(bare, live)
    with contextlib.redirect_stderr(io.StringIO()):
        outcome = train(settings, view)
    engine = [row["samples_per_s"] for row in outcome.history]
    other = [wall - row["epoch_time"] for row, wall in zip(outcome.history, view.walls)]
    return engine[1:], view.bare_rates[1:], other[1:]


class Bare:
    """The same clips, normalised once and padded into tensors, trained by a plain loop."""

    def __init__(self, settings: TrainSettings, num_gloss: int, num_cat: int):
        ds = ClipDataset(settings.keypoints_train, seed=settings.seed)
        ds.transform = build_transform(settings, "keypoints", ds.input_dim, train=False)  # normalisation only
        batch = collate_clips([ds[i] for i in range(len(ds))])
        self.x, self.mask, self.gloss, self.cat = batch.x, batch.mask, batch.gloss, batch.cat
        torch.manual_seed(settings.seed)
        self.model = build_model("transformer", settings, ds.input_dim, num_gloss, num_cat)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.batch_size = settings.batch_size
        self.alpha, self.beta = settings.alpha, settings.beta
        self.generator = torch.Generator().manual_seed(settings.seed)

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        gloss_logits, cat_logits = self.model(self.x[idx], self.mask[idx])
        loss = self.alpha * F.cross_entropy(gloss_logits, self.gloss[idx]) + self.beta * F.cross_entropy(
            cat_logits, self.cat[idx]
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self) -> float:
        self.model.train()
        order = torch.randperm(len(self.x), generator=self.generator)
        started = time.perf_counter()
        for i in range(0, len(order), self.batch_size):
            self.step(order[i : i + self.batch_size])
        return len(order) / (time.perf_counter() - started)


def components(settings: TrainSettings, bare: Bare, steps: int) -> dict[str, float]:
    """Seconds per training step of each part the engine adds to the bare step."""
    from slr.engine.data_setup import build_data
    from slr.engine.distributed import DistInfo
    from slr.engine.training import RunningTotals

    dist = DistInfo()
    device = torch.device("cpu")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        data = build_data(settings, dist, device)
    train_loader, _ = data.loaders(settings, dist, device, 0)
    train_loader.sampler.set_epoch(1)
    data.train.set_epoch(1)
    n_batches = 0
    started = time.perf_counter()
    for _ in train_loader:
        n_batches += 1
    data_s = (time.perf_counter() - started) / n_batches

    # the same loader without the transform: reading from the cache + collate only
    transform, data.train.transform = data.train.transform, None
    started = time.perf_counter()
    for _ in train_loader:
        pass
    collate_s = (time.perf_counter() - started) / n_batches
    data.train.transform = transform

    idx = torch.arange(min(settings.batch_size, len(bare.x)))
    gloss_logits, cat_logits = bare.model(bare.x[idx], bare.mask[idx])
    loss = F.cross_entropy(gloss_logits, bare.gloss[idx])
    totals = RunningTotals(device)
    reps = 2000
    started = time.perf_counter()
    for _ in range(reps):
        totals.add(loss, gloss_logits, cat_logits, bare.gloss[idx], bare.cat[idx])
    add_s = (time.perf_counter() - started) / reps
    started = time.perf_counter()
    for _ in range(reps):
        totals.loss_is_finite()
        float(totals.values[0] / totals.values[3])
    sync_s = (time.perf_counter() - started) / reps

    view = quiet_view(live=True)
    view.start(1, 0)
    view.epoch_start(1, 1, reps, 0)
    started = time.perf_counter()
    for i in range(reps):
        view.step(i + 1, 100.0, 1.0)
    view_s = (time.perf_counter() - started) / reps
    view.close()

    step_times = []
    order = torch.randperm(len(bare.x), generator=torch.Generator().manual_seed(0))
    for i in range(steps):
        j = (i * settings.batch_size) % max(1, len(order) - settings.batch_size)
        started = time.perf_counter()
        bare.step(order[j : j + settings.batch_size])
        step_times.append(time.perf_counter() - started)
    return {
        "bare model step": statistics.median(step_times),
        "data: DataLoader + normalise + augment + collate": data_s,
        "data: DataLoader + collate only (no transform)": collate_s,
        "bookkeeping: RunningTotals.add": add_s,
        "bookkeeping: per-step .item() reads (sync_every=1 on CPU)": sync_s,
        "display: live progress bar update per step": view_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 240-clip example set, fewer epochs")
    parser.add_argument("--train", type=Path, help="training clip directory (default: asl-words train, else the example)")
    parser.add_argument("--epochs", type=int, help="measured epoch pairs per variant (after one warm-up pair)")
    args = parser.parse_args()
    train_dir = args.train or (MINI / "train" if args.quick or not (ASL_WORDS / "train").is_dir() else ASL_WORDS / "train")
    epochs = args.epochs or (4 if args.quick else 6)
    with open(train_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    num_gloss = max(2, max(int(r["gloss"]) for r in rows) + 1)
    num_cat = max(1, max(int(r["cat"]) for r in rows) + 1)

    print(f"machine: {machine()}")
    print(f"data: {train_dir} ({len(rows)} clips), batch 32, AdamW lr 1e-4, {epochs} measured engine/bare epoch pairs per variant")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        val_dir = small_val_dir(train_dir, tmp)
        s = settings_for(train_dir, val_dir, tmp / "run", num_gloss, num_cat, epochs + 1)
        bare = Bare(s, num_gloss, num_cat)
        results = {}
        for name, live in (("engine (log-file output)", False), ("engine (live terminal display)", True)):
            results[name] = paired_rates(s, bare, live)
            engine, bare_rates, _ = results[name]
            print(f"{name}: engine {statistics.median(engine):.1f}, bare {statistics.median(bare_rates):.1f} samples/s", flush=True)
        parts = components(s, bare, steps=10 if args.quick else 30)

    print("\nthroughput (training samples/s, median over epochs; warm-up pair left out):")
    ratios = {}
    for name, (engine, bare_rates, other) in results.items():
        pair_ratios = [e / b for e, b in zip(engine, bare_rates)]
        ratios[name] = statistics.median(pair_ratios)
        print(f"  {name:32s} engine {statistics.median(engine):7.1f}  bare {statistics.median(bare_rates):7.1f}  "
              f"ratio (median of {len(pair_ratios)} pairs) {ratios[name]:.3f}  "
              f"[pairs {min(pair_ratios):.3f} - {max(pair_ratios):.3f}]")
        print(f"  {'':32s} checkpoint writes + log + memory snapshot per epoch (not in samples_per_s): "
              f"{statistics.median(other):.2f} s")
    step = parts["bare model step"]
    print(f"\nper training step (batch 32), measured apart; share of the bare step of {step * 1000:.1f} ms:")
    for name, seconds in parts.items():
        print(f"  {name:58s} {seconds * 1000:8.3f} ms  {100 * seconds / step:6.2f}%")
    ratio = ratios["engine (log-file output)"]
    live_ratio = ratios["engine (live terminal display)"]
    print(f"\nRATIO engine/bare = {ratio:.3f} (live display: {live_ratio:.3f}; target >= 0.95)")


if __name__ == "__main__":
    main()
