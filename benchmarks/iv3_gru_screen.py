"""Screen iv3_gru recipes that slr's settings cannot express yet, on the synthetic signer-shift
features of `defaults_vs_reference.py --task features` (the same draws: seed S, draw F is signer
set 1000 * S + F; 26 training signers, 30 held out, 12-45 frames, hand-crop features).

A recipe is slr's training (`slr train iv3_gru` with the given settings) plus at most one of:

- `--transform clip`: every clip's features rewritten in its file, standardised by one mean and one
  sd of its values (the plain GRU reference's own normalisation, benchmarks/reference_gru.py);
- `--transform frame`: every frame standardised over its own values;
- `--mixup ALPHA`: each training batch mixed with a shuffled copy of itself, inputs and both losses,
  with a weight drawn from Beta(ALPHA, ALPHA) (frames aligned from the start, the union of the two
  masks). This patches slr's training step in this process only (one process, no DDP: the patch
  leaves out the step's gradient-sync handling); slr has no mixup.

What `--transform clip` screened became `--feature-norm clip` (in the model; docs/results.md,
seventh round); run with `--set "none:feature_norm='none'"`-style values through
`defaults_vs_reference.py` to measure the setting itself.

    python benchmarks/iv3_gru_screen.py --seed 3 --name clip --transform clip --values '{"feature_norm": "none"}'
    python benchmarks/iv3_gru_screen.py --seed 3 --name mixup04 --mixup 0.4

Prints best and last validation gloss accuracy per draw; `--json-out` keeps the records (a rerun
appends to it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults_vs_reference import make_split  # noqa: E402
from reference_gru import normalise_clip  # noqa: E402
from signer_shift import train_once  # noqa: E402

#: defaults_vs_reference's features task, so a draw here is the same signers as a fold there
FEATURES_TASK = argparse.Namespace(task="features", frames=None)


def rewrite_features(directory: Path, how: str) -> None:
    for path in sorted(directory.glob("*.npz")):
        with np.load(path) as stored:
            arrays = dict(stored)
        for key in ("X2048", "X2048_mirror"):  # the mirrored frames' features alike, where there
            if key not in arrays:
                continue
            x = arrays[key].astype(np.float64)
            if how == "clip":
                x = normalise_clip(x, dims=1)[0]
            else:  # frame: each frame over its own values
                x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)
            arrays[key] = x.astype(np.float32)
        np.savez(path, **arrays)


def patch_mixup(alpha: float) -> None:
    from slr.engine import training

    def forward_backward(self, batch, window: int = 1, sync_gradients: bool = True):
        weight = float(torch.distributions.Beta(alpha, alpha).sample())
        order = torch.randperm(batch.x.shape[0])
        x = weight * batch.x + (1 - weight) * batch.x[order]
        mask = batch.mask | batch.mask[order]
        with self.autocast():
            gloss_logits, cat_logits = self.model(x, mask)
            loss = (weight * self.loss(gloss_logits, cat_logits, batch.gloss, batch.cat, self.s.label_smoothing)
                    + (1 - weight) * self.loss(gloss_logits, cat_logits, batch.gloss[order], batch.cat[order],
                                               self.s.label_smoothing))
        self.scaler.scale(loss / window).backward()
        return loss, gloss_logits, cat_logits

    training.TrainStep.forward_backward = forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3, help="the seed of the draws (3: used by no other table)")
    parser.add_argument("--draws", default="0,1,2,3")
    parser.add_argument("--name", required=True)
    parser.add_argument("--transform", choices=["clip", "frame"], default=None)
    parser.add_argument("--mixup", type=float, default=None, metavar="ALPHA")
    parser.add_argument("--values", default="{}", help="slr settings as JSON, over its defaults")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    if args.mixup is not None:
        patch_mixup(args.mixup)
    values = json.loads(args.values)
    records = json.loads(args.json_out.read_text()) if args.json_out and args.json_out.exists() else []
    for draw in map(int, args.draws.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            train_dir, val_dir, gloss, cat = make_split(FEATURES_TASK, draw, args.seed, work)
            if args.transform:
                rewrite_features(train_dir, args.transform)
                rewrite_features(val_dir, args.transform)
            run = train_once("iv3_gru", values, train_dir, val_dir, gloss, cat, args.seed, None, work / "run")
        records.append({"config": args.name, "seed": args.seed, "fold": draw, **run})
        print(f"seed {args.seed} draw {draw} {args.name}: best {run['best']:.3f} last {run['last']:.3f} "
              f"({run['seconds']:.0f} s)", flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
