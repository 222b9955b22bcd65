"""The README example's recipe measured on recording blocks the example never shows.

`examples/asl-words-mini` is 40 training clips per word of 6 asl-words words and, for validation,
every clip of each word's last recording block. Choosing the example's settings by its own
validation clips would report a number chosen on the clips it is measured on; this benchmark
rebuilds the same kind of set from the *other* blocks of the same 6 words (asl-words' training
split only, so the example's validation clips are never read): for each held-out block (30 clips
a word, a block being a clip's rank among its word's clips // 30), 40 clips a word drawn at random
from the remaining blocks train (WATER, with 2 blocks there, trains on the other's 30), the held-out
block validates. Each configuration trains through
slr's own training (`slr train transformer` with the given settings), in turn on the same sets.

    python benchmarks/example_blocks.py --set e20:epochs=20 --set e40:epochs=40 --seeds 3

Printed: per configuration, last-epoch validation gloss accuracy per block and seed, its mean, and
how many runs end below 99% (the example's failure mode is one word read as another for a whole
block).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from signer_shift import link_clips, parse_set, train_once  # noqa: E402

DATA = Path(os.environ.get("SLR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: the example's words: asl-words gloss id -> the example's (examples/asl-words-mini/classes.csv)
EXAMPLE_GLOSS = {4: 0, 13: 1, 2: 2, 14: 3, 6: 4, 11: 5}  # HELLO, THANK YOU, COFFEE, WATER, LARGE, SMALL
EXAMPLE_CAT = {0: 0, 1: 1, 3: 2}  # courtesy, food_drink, size
PER_WORD = 40
BLOCK = 30


def example_like_split(asl_words: Path, held_out: int, seed: int, work: Path) -> tuple[Path, Path, int, int]:
    """Block `held_out` of each word validates; 40 clips a word from its other blocks train."""
    with open(asl_words / "train" / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["gloss"]) in EXAMPLE_GLOSS]
    rows.sort(key=lambda r: r["file"])  # clip_0001_... : recording order
    by_word: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        by_word.setdefault(int(row["gloss"]), []).append(row)
    sides: dict[str, list[dict[str, str]]] = {"train": [], "val": []}
    draw = random.Random(seed)
    for gloss, clips in sorted(by_word.items()):
        sides["val"] += [r for k, r in enumerate(clips) if k // BLOCK == held_out]
        rest = [r for k, r in enumerate(clips) if k // BLOCK != held_out]
        sides["train"] += draw.sample(rest, min(PER_WORD, len(rest)))  # WATER has 2 blocks: 30 clips
    for side, chosen in sides.items():
        link_clips(work / side, [(asl_words / "train" / f"{r['file']}.npz", EXAMPLE_GLOSS[int(r["gloss"])],
                                  EXAMPLE_CAT[int(r["cat"])]) for r in chosen])
    return work / "train", work / "val", len(EXAMPLE_GLOSS), len(EXAMPLE_CAT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE,...", required=True,
                        help="a configuration: settings over slr's defaults")
    parser.add_argument("--blocks", default="0,1", help="held-out blocks (WATER has only 2 in the training split, "
                        "the other words 5-9)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--asl-words", type=Path, default=DATA / "asl-words")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    configs = dict(parse_set(text) for text in args.set)
    blocks = [int(b) for b in args.blocks.split(",")]
    records: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="slr-example-blocks-"))
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for block in blocks:
                split = example_like_split(args.asl_words, block, seed, work / f"data-{seed}-{block}")
                for name, values in configs.items():
                    epochs = values.get("epochs")
                    run = train_once("transformer", {k: v for k, v in values.items() if k != "epochs"}, *split, seed,
                                     epochs, work / f"run-{name}-{seed}-{block}")
                    records.append({"config": name, "block": block, "seed": seed, "best": run["best"],
                                    "last": run["last"], "seconds": run["seconds"]})
                    print(f"  seed {seed} block {block} {name}: best {run['best']:.3f} last {run['last']:.3f} "
                          f"({run['seconds']:.0f} s)", file=sys.stderr, flush=True)
                    if args.json_out:
                        args.json_out.write_text(json.dumps(records, indent=1))
                shutil.rmtree(work / f"data-{seed}-{block}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| config | last, mean | sd | runs below 0.99 | per block and seed (last) |\n|---|---|---|---|---|")
    for name in configs:
        last = [r["last"] for r in records if r["config"] == name]
        print(f"| {name} | {statistics.mean(last):.3f} | {statistics.stdev(last) if len(last) > 1 else 0:.3f} | "
              f"{sum(v < 0.99 for v in last)} of {len(last)} | {' '.join(f'{v:.3f}' for v in last)} |")


if __name__ == "__main__":
    main()
