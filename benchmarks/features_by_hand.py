"""Where the plain GRU reference's errors fall on the features task of `defaults_vs_reference.py`:
held-out signers who sign with the left hand against those who sign with the right (the clips'
`hand` column), per draw. The question it answered (docs/results.md, eighth round): is what
iv3_gru and the reference miss on new signers mostly left-handed people, whom 26 training
signers show only a few times?

    python benchmarks/features_by_hand.py --seed 3

Each draw is the benchmark's fold of the same number (seed S, draw F: signer set 1000 * S + F).
The reference is scored on the two halves as two sets (`train_reference_on`), so its training
noise draws differ from a run scored on all held-out clips at once: the per-hand split is the
point here, not the overall number.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults_vs_reference import make_split  # noqa: E402
from iv3_gru_screen import FEATURES_TASK  # noqa: E402
from reference_gru import train_reference_on  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--draws", default="0,1,2,3")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    for draw in map(int, args.draws.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            train_dir, val_dir, gloss, _ = make_split(FEATURES_TASK, draw, args.seed, work)
            with open(val_dir / "labels.csv", newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            with open(train_dir / "labels.csv", newline="", encoding="utf-8") as handle:
                seen_left = sum(row["hand"] == "left" for row in csv.DictReader(handle))
            halves = {}
            for hand in ("left", "right"):
                labels = work / f"val-{hand}.csv"
                with open(labels, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(row for row in rows if row["hand"] == hand)
                halves[hand] = (val_dir, labels)
            curves = train_reference_on(train_dir, halves, gloss, epochs=args.epochs, seed=args.seed,
                                        key="X2048", dims=1)
            held_left = sum(row["hand"] == "left" for row in rows)
            print(f"seed {args.seed} draw {draw}: left-handed clips {seen_left} in training, {held_left} of "
                  f"{len(rows)} held out; last epoch: left-handed {curves['left'][-1]:.3f}, right-handed "
                  f"{curves['right'][-1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
