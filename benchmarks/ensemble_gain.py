"""What an ensemble of fold models gains over one model, on people or recording sessions never seen.

A test part is held out first and used by nothing but the final scores. The rest is split into
K group folds; fold k's model trains on the other folds' groups and chooses its checkpoint on
fold k's (as `slr cv` does). Then each fold model alone, and the ensemble of all K
(`slr evaluate CKPT CKPT...`: their probabilities averaged), are scored on the test part.

Tasks:

- `asl-words`: the real asl-words clips, train + val pooled; the clips of each word come in
  recording blocks of 30 in clip-number order. Test: the official validation split (the last
  block of every word). Folds: the other blocks, block number modulo K. `--subsample n` trains on
  every n-th clip of a fold's training part.
- `signers`: synthetic fingerspelling signers (`slr.data.synthetic.make_signer_shift_clips`, the
  hands-only layout of docs/results.md's signer-shift rounds, clips of 12-45 frames): 26 signers
  split into K folds, 30 other signers as the test part. Each seed draws new signers.

Every model is trained through `slr.engine.run.train` and scored through `slr.analysis.evaluate`,
the code behind `slr train` and `slr evaluate`. docs/results.md quotes the output of

    python benchmarks/ensemble_gain.py --task asl-words --asl-words ../shared/data/asl-words --seeds 2
    python benchmarks/ensemble_gain.py --task signers --seeds 2
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLOCK = 30


def link_rows(items, folder: Path) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat"])
        for path, row in items:
            (folder / path.name).symlink_to(path.resolve())
            writer.writerow([row["file"], row["gloss"], row["cat"]])
    return folder


def asl_words_parts(root: Path, folds: int, subsample: int, work: Path) -> tuple[list[tuple[Path, Path]], Path, int, int]:
    """[(train, inner val) per fold], test: the official validation split."""
    rows = []
    with open(root / "train" / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = [(root / "train" / f"{r['file']}.npz", r) for r in csv.DictReader(handle)]
    rows.sort(key=lambda item: item[1]["file"])  # clip_0001_... : clip-number order
    rank: dict[str, int] = {}
    block = []
    for _, row in rows:
        k = rank.get(row["gloss"], 0)
        rank[row["gloss"]] = k + 1
        block.append(k // BLOCK)
    parts = []
    for fold in range(folds):
        train = [item for item, b in zip(rows, block) if b % folds != fold][::subsample]
        val = [item for item, b in zip(rows, block) if b % folds == fold]
        parts.append((link_rows(train, work / f"fold{fold}" / "train"), link_rows(val, work / f"fold{fold}" / "val")))
    return parts, root / "val", 15, 4


def signer_parts(seed: int, folds: int, work: Path) -> tuple[list[tuple[Path, Path]], Path, int, int]:
    from slr.data.synthetic import make_signer_shift_clips, split_by_signer, write_clips

    clips = make_signer_shift_clips(seed=seed, min_frames=12, max_frames=45, num_signers=56, style=0.04)
    order = np.random.default_rng([seed, 5]).permutation(56)
    test_signers, fold_signers = order[:30], order[30:]
    rest, test = split_by_signer(clips, test_signers)
    write_clips(work / "test", test)
    parts = []
    for fold in range(folds):
        held = fold_signers[fold::folds]
        train, val = split_by_signer(rest, held)
        parts.append((write_clips(work / f"fold{fold}" / "train", train),
                      write_clips(work / f"fold{fold}" / "val", val)))
    return parts, work / "test", 11, 2


def train_fold(train_dir: Path, val_dir: Path, gloss: int, cat: int, seed: int, epochs: int, out: Path) -> Path:
    from slr.engine.run import train
    from slr.settings import TrainSettings

    train(TrainSettings(model="transformer", keypoints_train=train_dir, keypoints_val=val_dir, num_gloss=gloss,
                        num_cat=cat, seed=seed, epochs=epochs, output_dir=out, plots=False, device="cpu"))
    return out / "SignTransformer_best.pt"


def accuracy(checkpoints: list[Path], test: Path, out: Path) -> float:
    from slr.analysis.evaluate import evaluate
    from slr.settings import EvaluateSettings

    report = evaluate(EvaluateSettings(checkpoint=checkpoints[0], ensemble=checkpoints[1:], keypoints=test,
                                       output_dir=out, device="cpu"))
    return report.gloss.top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["asl-words", "signers"], required=True)
    parser.add_argument("--asl-words", type=Path, default=Path("../shared/data/asl-words"))
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--subsample", type=int, default=6)
    args = parser.parse_args()
    gains, singles_all, ensembles = [], [], []
    for seed in range(1, args.seeds + 1):
        with tempfile.TemporaryDirectory(prefix="slr-ensemble-") as tmp:
            work = Path(tmp)
            if args.task == "asl-words":
                parts, test, gloss, cat = asl_words_parts(args.asl_words, args.folds, args.subsample, work)
            else:
                parts, test, gloss, cat = signer_parts(seed, args.folds, work)
            best = []
            for fold, (train_dir, val_dir) in enumerate(parts):
                started = time.perf_counter()
                best.append(train_fold(train_dir, val_dir, gloss, cat, seed, args.epochs, work / f"run{fold}"))
                print(f"seed {seed} fold {fold}: trained ({time.perf_counter() - started:.0f} s)", flush=True)
            singles = [accuracy([b], test, work / f"eval{i}") for i, b in enumerate(best)]
            together = accuracy(best, test, work / "eval-ensemble")
            gain = together - statistics.mean(singles)
            print(f"seed {seed}: single models {', '.join(f'{s:.3f}' for s in singles)} (mean "
                  f"{statistics.mean(singles):.3f}); ensemble of {len(best)}: {together:.3f}; gain {gain:+.3f} "
                  f"(over the best single: {together - max(singles):+.3f})", flush=True)
            gains.append(gain)
            singles_all.append(statistics.mean(singles))
            ensembles.append(together)
    sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"\n{args.task}: mean single {statistics.mean(singles_all):.3f}, ensemble {statistics.mean(ensembles):.3f}, "
          f"gain {statistics.mean(gains):+.3f} ± {sd:.3f} over {len(gains)} seed(s)")


if __name__ == "__main__":
    main()
