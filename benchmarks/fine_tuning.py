"""Fine-tuning from a checkpoint (`slr train --init-from`) against training from scratch, on asl-words.

asl-words has 15 words. A model is trained on 9 of them (gloss ids 0-8, their whole official
training split, validated on their official validation block); then the other 6 words (ids 9-14,
renumbered 0-5) are learnt from few clips, the first recording block of each word (30 clips a
word, 180 in all), and scored on their official validation block (the last recording block of
each word, never trained on): once starting from the 9-word model's weights (the gloss head, 9
classes there and 6 here, starts afresh; the category head and the encoder come over), once from
scratch, each with the same seeds and slr's defaults otherwise. The accuracy after 1, 3 and 10
epochs is read from one 10-epoch run per seed (the schedule is the 10-epoch one throughout).

Every run goes through slr's own `slr.engine.run.train`. docs/results.md quotes the output of

    python benchmarks/fine_tuning.py --asl-words ../shared/data/asl-words --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIRST_WORDS = 9  # gloss ids below this: the pretraining words; the rest: the new words
BLOCK = 30  # clips per recording block of a word, in clip-number order
READ_AT = (1, 3, 10)  # epochs after which the accuracy is read


def write_split(root: Path, split: str, keep, renumber: int, target: Path, first_block_only: bool) -> int:
    """Labels of `root/split` whose gloss `keep` accepts, renumbered by `- renumber`, clips linked."""
    with open(root / split / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["file"])
    seen: dict[int, int] = {}
    target.mkdir(parents=True)
    written = 0
    with open(target / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat"])
        for row in rows:
            gloss = int(row["gloss"])
            if not keep(gloss):
                continue
            seen[gloss] = seen.get(gloss, 0) + 1
            if first_block_only and seen[gloss] > BLOCK:
                continue
            (target / f"{row['file']}.npz").symlink_to((root / split / f"{row['file']}.npz").resolve())
            writer.writerow([row["file"], gloss - renumber, row["cat"]])
            written += 1
    return written


def train(values: dict[str, Any]) -> list[float]:
    from slr.engine.run import train as run_train
    from slr.settings import TrainSettings

    outcome = run_train(TrainSettings(model="transformer", plots=False, device="cpu", **values))
    return [row["val_gloss_acc"] for row in outcome.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asl-words", type=Path, default=Path("../shared/data/asl-words"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--freeze", type=int, default=0, help="also run --init-from with --freeze-encoder-epochs N")
    args = parser.parse_args()
    root = args.asl_words
    with tempfile.TemporaryDirectory(prefix="slr-finetune-") as tmp:
        work = Path(tmp)
        old = lambda g: g < FIRST_WORDS  # noqa: E731
        new = lambda g: g >= FIRST_WORDS  # noqa: E731
        n_pre = write_split(root, "train", old, 0, work / "pre_train", False)
        n_pre_val = write_split(root, "val", old, 0, work / "pre_val", False)
        n_new = write_split(root, "train", new, FIRST_WORDS, work / "new_train", True)
        n_new_val = write_split(root, "val", new, FIRST_WORDS, work / "new_val", False)
        print(f"pretraining: {n_pre} / {n_pre_val} clips of {FIRST_WORDS} words; new words: {n_new} training "
              f"(first block) / {n_new_val} validation clips of {15 - FIRST_WORDS} words", flush=True)
        started = time.perf_counter()
        curve = train({"keypoints_train": work / "pre_train", "keypoints_val": work / "pre_val",
                       "num_gloss": FIRST_WORDS, "num_cat": 4, "epochs": args.pretrain_epochs, "seed": 0,
                       "output_dir": work / "pre"})
        print(f"9-word model: best val {max(curve):.3f}, last {curve[-1]:.3f} ({time.perf_counter() - started:.0f} s)",
              flush=True)
        init = work / "pre" / "SignTransformer_best.pt"
        recipes = {"scratch": {}, "init-from": {"init_from": init}}
        if args.freeze:
            recipes[f"init-from, freeze {args.freeze}"] = {"init_from": init, "freeze_encoder_epochs": args.freeze}
        results: dict[str, list[list[float]]] = {name: [] for name in recipes}
        for seed in range(1, args.seeds + 1):
            for name, extra in recipes.items():  # alternating inside each seed: the load falls on all alike
                started = time.perf_counter()
                curve = train({"keypoints_train": work / "new_train", "keypoints_val": work / "new_val",
                               "num_gloss": 15 - FIRST_WORDS, "num_cat": 4, "epochs": args.epochs, "seed": seed,
                               "output_dir": work / f"{name}-{seed}", **extra})
                results[name].append(curve)
                at = ", ".join(f"epoch {e}: {curve[e - 1]:.3f}" for e in READ_AT if e <= len(curve))
                print(f"seed {seed} {name}: {at} ({time.perf_counter() - started:.0f} s)", flush=True)
        print("\n| start | " + " | ".join(f"after {e} epoch{'s' if e > 1 else ''}" for e in READ_AT) + " |")
        print("| --- |" + " --- |" * len(READ_AT))
        for name, curves in results.items():
            cells = []
            for e in READ_AT:
                values = [c[e - 1] for c in curves if e <= len(c)]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f} ({', '.join(f'{v:.3f}' for v in values)})")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
