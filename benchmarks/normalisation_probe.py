"""Which per-clip normalisation leaves the least of the signer in a clip: a probe in seconds,
not a training run.

Every clip is normalised one way, resampled to --frames frames (evenly spread, nearest frame) and
flattened; a ridge classifier (closed form, numpy) is trained on six signers of isl-kinect-7 and
scored on the seventh, for each of the seven (leave one signer out). A normalisation that leaves
less of who signed and where they stood scores higher. The probe is linear and sees a fixed
length, so its numbers are far below a trained model's; it ranks normalisations, it does not
predict accuracies. Also: the same with each clip's own length kept (no resampling is possible for
a linear probe, so `--frames` is the only temporal choice here).

    python benchmarks/normalisation_probe.py [--kinect DIR] [--frames 16]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slr.data.augment import declared_layout, keypoint_layout, normalize_clip  # noqa: E402
from slr.data.layout_file import read_layout_file  # noqa: E402

DATA = Path(os.environ.get("SLR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def per_clip_std(x: np.ndarray) -> np.ndarray:
    """The reference GRU's: centred on the detected points' mean, divided by their one std."""
    pts = x.reshape(len(x), -1, 2)
    seen = pts[(pts != 0).any(-1)]
    return ((pts - seen.mean(0)) / (seen - seen.mean(0)).std()).reshape(x.shape)


def per_axis_std(x: np.ndarray) -> np.ndarray:
    """Centred, and x and y each divided by their own std."""
    pts = x.reshape(len(x), -1, 2)
    seen = pts[(pts != 0).any(-1)]
    return ((pts - seen.mean(0)) / seen.std(0)).reshape(x.shape)


def per_frame_centre(x: np.ndarray) -> np.ndarray:
    """Each frame centred on its own points' mean, one scale for the clip (body sway removed)."""
    pts = x.reshape(len(x), -1, 2)
    centred = pts - pts.mean(1, keepdims=True)
    return (centred / np.sqrt((centred**2).sum(-1).mean())).reshape(x.shape)


def moving_points(x: np.ndarray) -> np.ndarray:
    """Centred and scaled by the points that move (the body's still points, e.g. legs, only
    shift and stretch the statistics): weight each point by its spread over the clip."""
    pts = x.reshape(len(x), -1, 2)
    motion = pts.std(0).sum(-1)  # [P]
    w = motion / motion.sum()
    centre = (pts.mean(0) * w[:, None]).sum(0)
    scale = np.sqrt((((pts - centre) ** 2).sum(-1).mean(0) * w).sum())
    return ((pts - centre) / scale).reshape(x.shape)


def resample(x: np.ndarray, frames: int) -> np.ndarray:
    return x[np.linspace(0, len(x) - 1, frames).round().astype(int)]


def ridge_loso(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, lam: float = 10.0) -> list[float]:
    classes = labels.max() + 1
    accs = []
    for g in np.unique(groups):
        tr, te = groups != g, groups == g
        mu, sd = features[tr].mean(0), features[tr].std(0) + 1e-6
        a, b = (features[tr] - mu) / sd, (features[te] - mu) / sd
        y = np.eye(classes)[labels[tr]]
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y)
        accs.append(float(((b @ w).argmax(1) == labels[te]).mean()))
    return accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinect", type=Path, default=DATA / "isl-kinect-7")
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    with open(args.kinect / "clips" / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    clips = [np.load(args.kinect / "clips" / f"{r['file']}.npz")["X"].astype(np.float64) for r in rows]
    labels = np.array([int(r["gloss"]) for r in rows])
    groups = np.array([r["signer"] for r in rows])
    declared = declared_layout(read_layout_file(args.kinect / "layout.json"), clips[0].shape[1])
    undeclared = keypoint_layout(clips[0].shape[1])
    ways: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "none (raw camera coordinates)": lambda x: x,
        "slr, layout not declared (detected points' mean, RMS distance)": lambda x: normalize_clip(x, undeclared),
        "slr, layout declared (shoulders' midpoint, shoulder width)": lambda x: normalize_clip(x, declared),
        "reference GRU (detected points' mean, one std)": per_clip_std,
        "x and y each by its own std": per_axis_std,
        "each frame centred on its points": per_frame_centre,
        "weighted by how much each point moves": moving_points,
    }
    print(f"ridge probe, leave one signer out over {len(np.unique(groups))} signers, clips resampled to {args.frames} frames\n")
    print("| normalisation | mean | per signer |")
    print("|---|---|---|")
    for name, way in ways.items():
        features = np.stack([resample(way(c), args.frames).ravel() for c in clips])
        accs = ridge_loso(features, labels, groups)
        print(f"| {name} | {np.mean(accs):.3f} | {' '.join(f'{a:.2f}' for a in accs)} |", flush=True)


if __name__ == "__main__":
    main()
