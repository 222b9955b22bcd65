"""Measure the model defaults: SignTransformer pooling, and the InceptionV3GRU GRU size/direction/pooling.

Each candidate is trained from scratch on a synthetic, FSL-105-sized task (105 glosses in 10
categories, 16 training and 4 validation clips per gloss, 8-48 frames) and scored on validation
gloss accuracy: at a few early epochs (speed of convergence), at its best, and at the end.
Everything else is the training defaults: AdamW at lr 1e-4, batch 32, loss 0.5 CE(gloss) +
0.5 CE(cat), dropout 0.1.

The task, shared by both models: a sign is an ordered walk through three poses drawn from a small
shared pool, so glosses reuse the same poses in a different order (order matters, as in real
signs). Each clip plays its walk at a random length and speed, with a random hold before and
after, a per-clip offset (signer position) and per-frame noise.

- keypoints (transformer): the walk lives directly in 156-d keypoint space;
- features (iv3_gru): the walk lives in a 32-d latent space, mapped to 2048-d non-negative
  "CNN features" by a fixed random projection and a ReLU, plus feature noise.

Run (docs/models.md quotes the first two lines, run on one H200 GPU):

    python benchmarks/model_choices.py --device cuda --seeds 3 --json-out results.json
    python benchmarks/model_choices.py --device cuda --only gru --gru-configs 128bi,256uni,256bi --seeds 1
    python benchmarks/model_choices.py --device cuda --only gru-pooling --seeds 3   # not yet run
    python benchmarks/model_choices.py --quick            # a CPU-sized check of the script itself
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The model modules alone: the registry pulls in pydantic settings, which a bare GPU image may lack.
from slr.models.iv3_gru import InceptionV3GRU  # noqa: E402
from slr.models.transformer import SignTransformer  # noqa: E402

NUM_GLOSS, NUM_CAT = 105, 10
TRAIN_PER_CLASS, VAL_PER_CLASS = 16, 4
MIN_FRAMES, MAX_FRAMES = 8, 48
POSE_POOL, POSES_PER_SIGN = 12, 3


# ---------------------------------------------------------------------------------------------
# Synthetic clips
# ---------------------------------------------------------------------------------------------


@dataclass
class ClipSet:
    x: Tensor  # [N, MAX_FRAMES, D], zero past each clip's length
    mask: Tensor  # [N, MAX_FRAMES] bool, True on real frames
    gloss: Tensor  # [N]
    cat: Tensor  # [N]

    def to(self, device: torch.device) -> "ClipSet":
        return ClipSet(self.x.to(device), self.mask.to(device), self.gloss.to(device), self.cat.to(device))


def sign_walks(gen: torch.Generator) -> Tensor:
    """[NUM_GLOSS, POSES_PER_SIGN] pose indices: distinct ordered walks, many sharing their poses."""
    walks: list[tuple[int, ...]] = []
    while len(walks) < NUM_GLOSS:
        walk = tuple(torch.randperm(POSE_POOL, generator=gen)[:POSES_PER_SIGN].tolist())
        if walk not in walks:
            walks.append(walk)
    return torch.tensor(walks)


def play_walk(poses: Tensor, length: int, gen: torch.Generator) -> Tensor:
    """[length, dim]: hold, move through ``poses`` at a warped speed, hold; linear between poses."""
    hold_in, hold_out = (torch.rand(2, generator=gen) * 0.15).tolist()
    warp = float(torch.empty(1).uniform_(0.7, 1.4, generator=gen))
    t = torch.linspace(0, 1, length)
    t = ((t - hold_in) / (1 - hold_in - hold_out)).clamp(0, 1) ** warp
    scaled = t * (len(poses) - 1)
    left = scaled.floor().long().clamp(max=len(poses) - 2)
    frac = (scaled - left).unsqueeze(1)
    return poses[left] * (1 - frac) + poses[left + 1] * frac


def make_clips(
    dim: int, per_class: int, walk_noise: float, frame_noise: float, gen: torch.Generator, pool: Tensor, walks: Tensor
) -> tuple[list[Tensor], Tensor]:
    clips, labels = [], []
    for gloss in range(NUM_GLOSS):
        for _ in range(per_class):
            length = int(torch.randint(MIN_FRAMES, MAX_FRAMES + 1, (1,), generator=gen))
            path = play_walk(pool[walks[gloss]], length, gen)
            offset = torch.randn(1, dim, generator=gen) * walk_noise
            clips.append(path + offset + torch.randn(length, dim, generator=gen) * frame_noise)
            labels.append(gloss)
    return clips, torch.tensor(labels)


def pad(clips: list[Tensor], labels: Tensor) -> ClipSet:
    x = torch.zeros(len(clips), MAX_FRAMES, clips[0].shape[1])
    mask = torch.zeros(len(clips), MAX_FRAMES, dtype=torch.bool)
    for i, clip in enumerate(clips):
        x[i, : len(clip)] = clip
        mask[i, : len(clip)] = True
    return ClipSet(x, mask, labels, labels % NUM_CAT)


def keypoint_task(seed: int = 0) -> tuple[ClipSet, ClipSet]:
    gen = torch.Generator().manual_seed(seed)
    dim = 156
    pool = torch.randn(POSE_POOL, dim, generator=gen) * 0.5
    walks = sign_walks(gen)
    noise = dict(walk_noise=0.5, frame_noise=0.8)
    train = pad(*make_clips(dim, TRAIN_PER_CLASS, gen=gen, pool=pool, walks=walks, **noise))
    val = pad(*make_clips(dim, VAL_PER_CLASS, gen=gen, pool=pool, walks=walks, **noise))
    return train, val


def feature_task(seed: int = 0) -> tuple[ClipSet, ClipSet]:
    gen = torch.Generator().manual_seed(seed)
    latent, dim = 32, 2048
    pool = torch.randn(POSE_POOL, latent, generator=gen) * 0.5
    walks = sign_walks(gen)
    projection = torch.randn(latent, dim, generator=gen) / latent**0.5
    bias = torch.randn(dim, generator=gen) * 0.5

    def to_features(clips: list[Tensor]) -> list[Tensor]:
        return [F.relu(c @ projection + bias) + torch.randn(len(c), dim, generator=gen).abs() * 0.3 for c in clips]

    noise = dict(walk_noise=0.5, frame_noise=0.8)
    train_clips, train_labels = make_clips(latent, TRAIN_PER_CLASS, gen=gen, pool=pool, walks=walks, **noise)
    val_clips, val_labels = make_clips(latent, VAL_PER_CLASS, gen=gen, pool=pool, walks=walks, **noise)
    return pad(to_features(train_clips), train_labels), pad(to_features(val_clips), val_labels)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def accuracy(model: nn.Module, data: ClipSet, device: torch.device) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data.gloss), 256):
        part = slice(start, start + 256)
        gloss_logits, _ = model(data.x[part], data.mask[part])
        correct += int((gloss_logits.argmax(1) == data.gloss[part]).sum())
    return correct / len(data.gloss)


def train_run(
    make_model: Callable[[], nn.Module], train: ClipSet, val: ClipSet, epochs: int, seed: int, device: torch.device
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = make_model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    order_gen = torch.Generator().manual_seed(seed)
    lengths = train.mask.sum(1).cpu()
    curve = []
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(train.gloss), generator=order_gen).split(32):
            # Trim the batch to its longest clip, as collate_clips does.
            steps = int(lengths[batch].max())
            rows = batch.to(device)
            gloss_logits, cat_logits = model(train.x[rows, :steps], train.mask[rows, :steps])
            loss = 0.5 * F.cross_entropy(gloss_logits, train.gloss[rows]) + 0.5 * F.cross_entropy(
                cat_logits, train.cat[rows]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        curve.append(accuracy(model, val, device))
    return {
        "curve": curve,
        "seconds": time.perf_counter() - started,
        "params": sum(p.numel() for p in model.parameters()),
    }


def summarise(name: str, runs: list[dict[str, Any]], checkpoints: list[int]) -> dict[str, Any]:
    curves = [r["curve"] for r in runs]

    def mean_std(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"

    row = {"config": name, "params": runs[0]["params"]}
    for epoch in checkpoints:
        row[f"val@{epoch}"] = mean_std([c[epoch - 1] for c in curves])
    row["best"] = mean_std([max(c) for c in curves])
    row["final"] = mean_std([c[-1] for c in curves])
    row["s/run"] = f"{statistics.mean(r['seconds'] for r in runs):.0f}"
    return row


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    headers = list(rows[0])
    print(f"\n### {title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(f"{row[h]:,}" if isinstance(row[h], int) else str(row[h]) for h in headers) + " |")
    sys.stdout.flush()


def compare(
    title: str,
    candidates: dict[str, Callable[[], nn.Module]],
    task: tuple[ClipSet, ClipSet],
    args: argparse.Namespace,
    device: torch.device,
    raw: dict[str, Any],
) -> None:
    train, val = task[0].to(device), task[1].to(device)
    checkpoints = sorted({e for e in (max(1, args.epochs // 6), args.epochs // 3, args.epochs // 2) if e >= 1})
    rows = []
    for name, make_model in candidates.items():
        runs = [train_run(make_model, train, val, args.epochs, seed, device) for seed in range(args.seeds)]
        raw.setdefault(title, {})[name] = runs
        rows.append(summarise(name, runs, checkpoints))
        print(f"  {title} / {name}: {rows[-1]}", file=sys.stderr, flush=True)
        if args.json_out:  # after every candidate, so a run cut short still leaves its numbers
            args.json_out.write_text(json.dumps(raw, indent=1))
    spread = f"mean ± sd over {args.seeds} seeds, {args.epochs} epochs"
    print_table(f"{title} — validation gloss accuracy % ({spread})", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--only", choices=["pooling", "gru", "gru-pooling"], action="append")
    parser.add_argument("--quick", action="store_true", help="smaller models and fewer epochs, for a CPU")
    parser.add_argument(
        "--gru-configs",
        default="16uni,64uni,128uni,128bi,256uni,256bi",
        help="GRU sizes to compare: hidden size then uni or bi, comma separated",
    )
    parser.add_argument(
        "--pooling-hidden", type=int, default=256, help="GRU hidden size for the GRU pooling comparison"
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds = min(args.epochs, 12), min(args.seeds, 2)
    device = torch.device(args.device)
    only = set(args.only or ["pooling", "gru", "gru-pooling"])
    raw: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "device": str(device)}
    print(f"device {device}, torch {torch.__version__}", file=sys.stderr)

    if "pooling" in only:
        # Default sizes (256-d, 8 heads, 4 layers, ff 1024); --quick shrinks them.
        sizes = dict(d_model=64, num_heads=4, num_layers=2, ff_dim=128) if args.quick else {}
        compare(
            "SignTransformer pooling",
            {
                mode: (lambda mode=mode: SignTransformer(156, NUM_GLOSS, NUM_CAT, pooling=mode, **sizes))
                for mode in ("mean", "max", "cls")
            },
            keypoint_task(),
            args,
            device,
            raw,
        )

    features = feature_task() if only & {"gru", "gru-pooling"} else None
    if "gru" in only:
        configs = [(int(c.rstrip("biun")), c.endswith("bi")) for c in args.gru_configs.split(",")]
        if args.quick:
            configs = [(16, False), (64, False), (64, True)]
        compare(
            "InceptionV3GRU size (2 layers, mean+last pooling)",
            {
                f"hidden {h} {'bi' if bi else 'uni'}": (
                    lambda h=h, bi=bi: InceptionV3GRU(
                        2048, NUM_GLOSS, NUM_CAT, gru_hidden=h, gru_layers=2, gru_bidirectional=bi
                    )
                )
                for h, bi in configs
            },
            features,
            args,
            device,
            raw,
        )
    if "gru-pooling" in only:
        hidden = 64 if args.quick else args.pooling_hidden
        compare(
            f"InceptionV3GRU pooling (hidden {hidden}, 2 layers, bidirectional)",
            {
                mode: (
                    lambda mode=mode: InceptionV3GRU(
                        2048, NUM_GLOSS, NUM_CAT, gru_hidden=hidden, gru_layers=2, gru_bidirectional=True, pooling=mode
                    )
                )
                for mode in ("mean", "last", "mean_last")
            },
            features,
            args,
            device,
            raw,
        )



if __name__ == "__main__":
    main()
