"""The plain-PyTorch reference of issue 24, the yardstick slr's defaults are measured against on
people never seen (benchmarks/defaults_vs_reference.py):

- each clip on its own: centred on the mean of its detected points and divided by their standard
  deviation (one number per clip); points never detected (all coordinates 0) stay 0;
- Gaussian noise of sd 0.02 on the detected points while training;
- a 2-layer bidirectional GRU of width 128, masked mean pooling over the real frames, one linear head;
- AdamW lr 1e-3 with a one-cycle schedule, weight decay 1e-2, label smoothing 0.1, batch 32, 30 epochs.

Nothing of slr is used: the clips are read with numpy and padded per batch. Frames are read as
points of --dims coordinates (2: x, y), whatever the layout; a point is detected where any of its
coordinates is non-zero.

    python benchmarks/reference_gru.py TRAIN_DIR VAL_DIR [--epochs 30] [--seed 0]
    python benchmarks/reference_gru.py CLIP_DIR --val-labels VAL.csv --train-labels TRAIN.csv
    python benchmarks/reference_gru.py TRAIN_DIR VAL_DIR --key X2048 --dims 1   # on frame features (iv3_gru's input)
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Optional

import numpy as np


def load(directory: Path, key: str = "X", labels: Optional[Path] = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The clips named by `labels` (default: labels.csv in `directory`) and their gloss ids."""
    with open(labels or directory / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    clips = [np.load(directory / f"{row['file']}.npz")[key].astype(np.float32) for row in rows]
    return clips, np.array([int(row["gloss"]) for row in rows])


def normalise_clip(clip: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The clip centred on the mean of its detected points and divided by their standard deviation
    (all detected coordinates, one number), and the [T, P] mask of detected points."""
    pts = clip.reshape(len(clip), -1, dims).astype(np.float64)
    detected = (pts != 0).any(-1)
    if not detected.any():
        return clip.astype(np.float32), detected
    seen = pts[detected]
    centred = seen - seen.mean(0)
    std = float(centred.std()) or 1.0
    out = (pts - seen.mean(0)) / std * detected[..., None]
    return out.reshape(clip.shape).astype(np.float32), detected


def train_reference(train_dir: Path, val_dir: Path, num_gloss: int, *, epochs: int = 30, seed: int = 0,
                    batch_size: int = 32, dims: int = 2, train_labels: Optional[Path] = None,
                    val_labels: Optional[Path] = None, key: str = "X") -> list[float]:
    """Validation gloss accuracy after each epoch. `key` X2048 with `dims` 1: the same network on
    frame features, each value a "point" (centre and scale one number each over the clip's
    non-zero values; zeros, a ReLU's or a missing frame's, stay 0)."""
    curves = train_reference_on(train_dir, {"val": (val_dir, val_labels)}, num_gloss, epochs=epochs, seed=seed,
                                batch_size=batch_size, dims=dims, train_labels=train_labels, key=key)
    return curves["val"]


def train_reference_on(train_dir: Path, evaluate: dict[str, tuple[Path, Optional[Path]]], num_gloss: int, *,
                       epochs: int = 30, seed: int = 0, batch_size: int = 32, dims: int = 2,
                       train_labels: Optional[Path] = None, key: str = "X") -> dict[str, list[float]]:
    """The same training, scored after each epoch on every named (directory, labels CSV) set: e.g. an
    inner validation split that chooses the epoch and the held-out signers it is reported on
    (benchmarks/defaults_vs_reference.py --via-cv). Scoring draws from the same generator as the
    training noise (a draw scaled by 0, as this reference always did), so what a seed trains depends
    on the sets scored, in order; with the one validation set it is the reference as it always ran."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    raw_train, train_y = load(train_dir, key, labels=train_labels)
    train_x = [normalise_clip(c, dims) for c in raw_train]
    scored = {}
    for name, (directory, labels) in evaluate.items():
        raw, y = load(directory, key, labels=labels)
        scored[name] = ([normalise_clip(c, dims) for c in raw], y)

    def batch(clips: list[tuple[np.ndarray, np.ndarray]], noise: float) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(c) for c, _ in clips)
        x = np.zeros((len(clips), longest, clips[0][0].shape[1]), np.float32)
        mask = np.zeros((len(clips), longest), np.float32)
        for i, (clip, detected) in enumerate(clips):
            jitter = noise * rng.standard_normal(clip.shape).reshape(len(clip), -1, dims) * detected[..., None]
            x[i, : len(clip)] = clip + jitter.reshape(clip.shape) if noise else clip
            mask[i, : len(clip)] = 1
        return torch.from_numpy(x), torch.from_numpy(mask)

    class Net(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.gru = nn.GRU(width, 128, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(256, num_gloss)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out, _ = self.gru(x)
            pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled)

    net = Net(train_x[0][0].shape[1])
    steps = epochs * ((len(train_x) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    curves: dict[str, list[float]] = {name: [] for name in scored}
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(train_x))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            x, mask = batch([train_x[i] for i in rows], 0.02)
            loss = loss_fn(net(x, mask), torch.from_numpy(train_y[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            for name, (val_x, val_y) in scored.items():
                correct = 0
                for start in range(0, len(val_x), 64):
                    x, mask = batch(val_x[start : start + 64], 0.0)
                    correct += int((net(x, mask).argmax(1).numpy() == val_y[start : start + 64]).sum())
                curves[name].append(correct / len(val_x))
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("val_dir", type=Path, nargs="?", help="default: TRAIN_DIR (with --train/--val-labels)")
    parser.add_argument("--train-labels", type=Path, help="labels CSV of the training clips (default: labels.csv)")
    parser.add_argument("--val-labels", type=Path, help="labels CSV of the validation clips (default: labels.csv)")
    parser.add_argument("--num-gloss", type=int, default=None, help="default: the largest gloss id + 1")
    parser.add_argument("--dims", type=int, default=2, help="coordinates per point (2: x, y; 1 for --key X2048)")
    parser.add_argument("--key", default="X", help="the array read from each .npz: X (keypoints) or X2048 (features)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    val_dir = args.val_dir or args.train_dir
    num_gloss = args.num_gloss or int(max(load(args.train_dir, args.key, labels=args.train_labels)[1].max(),
                                          load(val_dir, args.key, labels=args.val_labels)[1].max())) + 1
    curve = train_reference(args.train_dir, val_dir, num_gloss, epochs=args.epochs, seed=args.seed, dims=args.dims,
                            train_labels=args.train_labels, val_labels=args.val_labels, key=args.key)
    print(f"best {max(curve):.3f} last {curve[-1]:.3f}")


if __name__ == "__main__":
    main()
