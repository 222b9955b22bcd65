"""Choose the default of `--uncertain-below` (slr/settings.py): the top probability under which
`slr predict`, `slr evaluate` and `slr live` call an answer uncertain.

On real asl-words clips, with words the model has never seen standing in for signs outside its
vocabulary: each seed holds out --held-out words (drawn at random), trains the transformer with
slr's defaults on the other words' training clips (`slr train`, nothing else set), and reads the
top probability `slr predict` gives on

- the validation clips of the words it was trained on (another recording block than training:
  the session split), split into right and wrong answers, and
- the validation clips of the held-out words (every answer is wrong: the sign is not in the
  vocabulary).

It prints, per candidate threshold, the share of each group that would be called uncertain, per
seed and as mean and spread. A good threshold calls few right answers uncertain and many
out-of-vocabulary ones.

    python benchmarks/uncertainty_threshold.py --asl-words ../shared/data/asl-words --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slr.analysis.predict import predict_clips  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def read_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def subset(source: Path, target: Path, rows: list[dict[str, str]], new_id: dict[int, int], every: int) -> None:
    """Links to the kept words' clips (every n-th) with a labels.csv of the new gloss ids."""
    target.mkdir(parents=True)
    kept = [r for r in rows if int(r["gloss"]) in new_id][::every]
    with open(target / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat"])
        for row in kept:
            name = row["file"] if row["file"].endswith(".npz") else row["file"] + ".npz"
            (target / name).symlink_to((source / name).resolve())
            writer.writerow([name, new_id[int(row["gloss"])], row["cat"]])


def run_seed(data: Path, seed: int, held_out: int, epochs: int, every: int, work: Path) -> dict[str, list[float]]:
    train_rows, val_rows = read_labels(data / "train" / "labels.csv"), read_labels(data / "val" / "labels.csv")
    words = sorted({int(r["gloss"]) for r in train_rows})
    outside = set(np.random.default_rng(seed).choice(words, size=held_out, replace=False).tolist())
    inside = [w for w in words if w not in outside]
    new_id = {old: new for new, old in enumerate(inside)}
    subset(data / "train", work / "train", train_rows, new_id, every)
    subset(data / "val", work / "val", val_rows, new_id, 1)
    num_cat = len({r["cat"] for r in train_rows})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slr", "train", "transformer", "--keypoints-train", str(work / "train"),
                    "--keypoints-val", str(work / "val"), "--num-gloss", str(len(inside)), "--num-cat", str(num_cat),
                    "--epochs", str(epochs), "--seed", str(seed), "--no-plots", "--output-dir", str(work / "run")],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"seed {seed}: held out {sorted(outside)}, trained {time.perf_counter() - started:.0f} s", flush=True)
    ckpt = work / "run" / "SignTransformer_best.pt"
    val_in = read_labels(work / "val" / "labels.csv")
    paths = [work / "val" / r["file"] for r in val_in]
    right, wrong = [], []
    for row, p in zip(val_in, predict_clips(ckpt, paths, top_k=1)):
        (right if p.glosses[0][0] == int(row["gloss"]) else wrong).append(p.glosses[0][2])
    oov_paths = [data / "val" / (r["file"] if r["file"].endswith(".npz") else r["file"] + ".npz")
                 for r in val_rows if int(r["gloss"]) in outside]
    outside_probs = [p.glosses[0][2] for p in predict_clips(ckpt, oov_paths, top_k=1)]
    return {"right": right, "wrong": wrong, "outside": outside_probs}


def share_below(values: list[float], threshold: float) -> float:
    return sum(v < threshold for v in values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asl-words", type=Path, default=Path("../shared/data/asl-words"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--held-out", type=int, default=3, help="words per seed kept out of training")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--every", type=int, default=2, help="keep every n-th training clip (quicker)")
    args = parser.parse_args()
    results = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="slr-threshold-") as tmp:
            results.append(run_seed(args.asl_words, seed, args.held_out, args.epochs, args.every, Path(tmp)))
        r = results[-1]
        print(f"  right {len(r['right'])}, wrong {len(r['wrong'])}, outside the vocabulary {len(r['outside'])}; "
              f"median top probability: right {statistics.median(r['right']):.3f}, outside "
              f"{statistics.median(r['outside']):.3f}", flush=True)
    print("\nshare called uncertain (top probability below the threshold), mean ± sd over seeds [per seed]")
    print(f"{'threshold':>9} | {'right answers':>28} | {'wrong answers':>28} | {'outside the vocabulary':>28}")
    for t in THRESHOLDS:
        cells = []
        for group in ("right", "wrong", "outside"):
            shares = [share_below(r[group], t) for r in results]
            known = [s for s in shares if s == s]
            mean = statistics.mean(known) if known else float("nan")
            sd = statistics.stdev(known) if len(known) > 1 else 0.0
            cells.append(f"{mean:6.1%} ± {sd:5.1%} [{' '.join(f'{s:.0%}' for s in shares)}]")
        print(f"{t:>9.2f} | " + " | ".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
