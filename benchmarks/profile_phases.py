"""Where the time of `slr train` goes, phase by phase, at the guide's settings or at slr's defaults.

    python benchmarks/profile_phases.py DATA                       # the guide's settings
    python benchmarks/profile_phases.py DATA --settings defaults
    python benchmarks/profile_phases.py DATA --threads 2           # a fixed thread count

DATA is a clip folder with train/ and val/ (asl-words, for instance). The phases, each timed on
its own with slr's own code: start-up and imports (torch, slr's engine, a fresh interpreter),
reading and checking the clips (`build_data`), batching (one epoch of the training DataLoader
alone: sampler, cache, normalisation, collate), the training step split into forward (model and
loss), backward and optimizer, the validation pass, one checkpoint write (`save_checkpoint`, the
size a run writes: model and optimizer) and the log write, and the training curves (`slr.analysis.plots`).
Per-epoch phases are scaled to `--epochs` (3) epochs, so the table reads as a 3-epoch run; the
share column is of their sum. Steps are timed over `--steps` (all of an epoch by default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GUIDE = {"d_model": 256, "num_heads": 8, "num_layers": 4, "ff_dim": 1024, "attention_dropout": 0.1, "lr": 1e-4,
         "scheduler": None, "weight_decay": 0.0, "label_smoothing": 0.0}


def startup_seconds(repo: Path) -> dict[str, float]:
    """Fresh interpreters: bare python, `import torch`, and what `slr train` imports before training."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = {}
    for name, code in (("python", "pass"), ("torch", "import torch"),
                       ("slr train's imports", "import slr.cli, slr.engine.run, slr.engine.data_setup, "
                                               "slr.models.registry, slr.ui.training_view")):
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            best = min(best, time.perf_counter() - started)
        out[name] = best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--settings", choices=["guide", "defaults"], default="guide")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="training steps to time (0: one epoch)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    print(f"settings: {args.settings}; load average before: {os.getloadavg()}", flush=True)
    startup = startup_seconds(repo)

    import torch

    from slr.data.synthetic import write_synthetic_dataset  # noqa: F401  (imports as slr train does)
    from slr.engine import checkpoint as ckpt
    from slr.engine.data_setup import build_data
    from slr.engine import hardware
    from slr.engine.distributed import DistInfo
    from slr.engine.run_folder import write_log_csv
    from slr.engine.training import gloss_and_category_loss
    from slr.engine.threads import apply_threads
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    from vs_original import class_counts  # benchmarks/ is on the path of a script run from it

    gloss, cat = class_counts(args.data)
    extra = GUIDE if args.settings == "guide" else {}
    with tempfile.TemporaryDirectory(prefix="slr-profile-") as tmp:
        settings = TrainSettings(model="transformer", keypoints_train=args.data / "train",
                                 keypoints_val=args.data / "val", num_gloss=gloss, num_cat=cat,
                                 output_dir=Path(tmp), epochs=args.epochs, **extra)
        choice = apply_threads(args.threads)
        print(f"threads: {choice.threads} ({choice.reason})", flush=True)
        device, dist = torch.device("cpu"), DistInfo()
        t = {}
        started = time.perf_counter()
        torch.manual_seed(settings.seed)
        data = build_data(settings, dist, device)
        t["reading and checking the clips (once)"] = time.perf_counter() - started
        train_loader, val_loader = data.loaders(settings, dist, device, 0)
        train_loader.sampler.set_epoch(1)
        started = time.perf_counter()
        batches = list(train_loader)
        first_epoch_batching = time.perf_counter() - started
        train_loader.sampler.set_epoch(2)
        started = time.perf_counter()
        batches = list(train_loader)
        t["batching (per epoch, cache warm)"] = time.perf_counter() - started
        model = build_model("transformer", settings, data.input_dim, gloss, cat)
        amp = hardware.autocast_dtype(settings.amp, device, settings.amp_dtype)  # as slr train: auto, --amp, --no-amp
        print(f"autocast: {amp}", flush=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        model.train()
        steps = batches[: args.steps] if args.steps else batches
        fwd = bwd = opt = 0.0
        for i, batch in enumerate(steps):
            a = time.perf_counter()
            with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
                g, c = model(batch.x, batch.mask)
                loss = gloss_and_category_loss(g, c, batch.gloss, batch.cat, settings.alpha, settings.beta,
                                               settings.label_smoothing)
            b = time.perf_counter()
            loss.backward()
            d = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            e = time.perf_counter()
            loss.item()
            if i:  # the first step allocates: left out, and the rest scaled to the epoch
                fwd, bwd, opt = fwd + b - a, bwd + d - b, opt + e - d
        scale = len(batches) / max(len(steps) - 1, 1)
        t["forward (per epoch)"], t["backward (per epoch)"], t["optimizer (per epoch)"] = fwd * scale, bwd * scale, opt * scale
        model.eval()
        started = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            for batch in val_loader:
                g, c = model(batch.x, batch.mask)
                gloss_and_category_loss(g, c, batch.gloss, batch.cat, settings.alpha, settings.beta).item()
        t["validation pass (per epoch)"] = time.perf_counter() - started
        state = {"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}
        started = time.perf_counter()
        ckpt.save_checkpoint(state, Path(tmp) / "last.pt")
        ckpt.save_checkpoint(state, Path(tmp) / "best.pt")
        history = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "val_gloss_acc": 0.5, "val_cat_acc": 0.5,
                    "lr": 1e-3, "epoch_time": 1.0} for e in range(1, args.epochs + 1)]
        write_log_csv(Path(tmp) / "log.csv", history)
        t["checkpoints (last + best) and log (per epoch)"] = time.perf_counter() - started
        started = time.perf_counter()
        from slr.analysis.plots import plot_training_curves

        plot_training_curves(Path(tmp) / "log.csv")
        t["training curves (once, with their imports)"] = time.perf_counter() - started

    rows = [("start-up: python itself", startup["python"]),
            ("start-up: import torch", startup["torch"] - startup["python"]),
            ("start-up: slr's imports beyond torch", startup["slr train's imports"] - startup["torch"]),
            ("reading and checking the clips (once)", t["reading and checking the clips (once)"]),
            ("batching: first epoch (reads the clips into the cache)", first_epoch_batching),
            ("batching: later epochs", t["batching (per epoch, cache warm)"] * (args.epochs - 1))]
    for name in ("forward", "backward", "optimizer", "validation pass", "checkpoints (last + best) and log"):
        key = next(k for k in t if k.startswith(name))
        rows.append((f"{name} x {args.epochs} epochs", t[key] * args.epochs))
    rows.append(("training curves (once)", t["training curves (once, with their imports)"]))
    total = sum(s for _, s in rows)
    print(f"\n{'phase':58} {'seconds':>8} {'share':>6}")
    for name, seconds in sorted(rows, key=lambda r: -r[1]):
        print(f"{name:58} {seconds:8.2f} {seconds / total:6.1%}")
    print(f"{'sum':58} {total:8.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
