"""Re-decide slr's defaults with one command: the recipes of docs/results.md through `slr cv`.

Each recipe is written as a train config file and every one runs through `slr cv` (the command a user
runs) on the same group folds; the report pairs them (per-fold differences, an exact sign-flip test
over folds, McNemar on the pooled held-out clips). This script only prepares the data and the recipe
files, runs the command, and prints its numbers as a markdown table for docs/results.md.

Tasks:

- `asl-words`: the real asl-words clips, train + val pooled (symlinks in a temporary folder). The
  clips of each word come in recording blocks of 30, in clip-number order (shared/data/README.md,
  benchmarks/signer_shift.py); a `block` column holds the block's number, and `slr cv` groups by it:
  block 3 of every word is held out together, no block is on both sides of a fold or of its inner
  validation split. --subsample keeps every n-th clip of each word, for a quicker check.
- `signers`: synthetic fingerspelling by 36 signers (slr.data.synthetic.make_signer_shift_clips,
  style 0.12, hands-only layout), grouped by the `signer` column.

Recipes (`--recipes`, comma separated; `--set NAME:key=value,...` adds one over slr's defaults):
`defaults` (slr as it ships: no recipe file), `guide` (the old training guide's values,
benchmarks/signer_shift.py's GUIDE), `aug` (the augmentations docs/results.md says to try first on
other people's data).

Examples (docs/results.md quotes their output):

    python benchmarks/cv_recipes.py --task signers --folds 5 --epochs 10 --frames 12-45
    python benchmarks/cv_recipes.py --task asl-words --asl-words ../shared/data/asl-words --folds 4 --epochs 4 --subsample 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from signer_shift import GUIDE, parse_set  # noqa: E402

from slr.data.synthetic import make_signer_shift_clips, write_clips  # noqa: E402

AUG = {"mirror_prob": 0.5, "rotate_deg": 15, "scale_jitter": 0.2, "shift": 0.1, "shear": 0.2, "noise_std": 0.01,
       "hand_drop_prob": 0.2, "point_drop_prob": 0.05, "speed_jitter": 0.2}
NAMED: dict[str, dict[str, Any]] = {"defaults": {}, "guide": GUIDE, "aug": AUG}


def asl_words_pool(root: Path, work: Path, subsample: int) -> Path:
    """train + val of asl-words in one folder, with a `block` column (recording block of 30 per word)."""
    rows = []
    for split in ("train", "val"):
        with open(root / split / "labels.csv", newline="", encoding="utf-8") as handle:
            rows += [(root / split / f"{r['file']}.npz", r) for r in csv.DictReader(handle)]
    rows.sort(key=lambda item: item[1]["file"])  # clip_0001_... : clip-number order
    folder = work / "asl-words"
    folder.mkdir(parents=True)
    rank: dict[str, int] = {}
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat", "block"])
        for path, row in rows:
            k = rank.get(row["gloss"], 0)
            rank[row["gloss"]] = k + 1
            if k % subsample:
                continue
            (folder / path.name).symlink_to(path.resolve())
            writer.writerow([row["file"], row["gloss"], row["cat"], f"b{k // 30}"])
    return folder


def signers_data(work: Path, frames: str, seed: int) -> Path:
    low, _, high = frames.partition("-")
    clips = make_signer_shift_clips(seed=seed, min_frames=int(low), max_frames=int(high), style=0.12)
    return write_clips(work / "signers", clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["asl-words", "signers"], default="signers")
    parser.add_argument("--recipes", default="defaults,guide", help="named recipes, comma separated (the first is "
                        "the baseline of the table)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="an extra recipe: settings over slr's defaults (base=guide to start from the guide's)")
    parser.add_argument("--folds", default="5", help="K, or loo")
    parser.add_argument("--epochs", type=int, default=None, help="every recipe's epochs (default: each recipe's own)")
    parser.add_argument("--seed", type=int, default=42, help="training seed (slr's default 42)")
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=1, help="signers: which synthetic signers")
    parser.add_argument("--frames", default="12-45", help="signers: clip lengths MIN-MAX")
    parser.add_argument("--asl-words", type=Path, default=ROOT.parent / "shared" / "data" / "asl-words")
    parser.add_argument("--subsample", type=int, default=1, help="asl-words: keep every n-th clip of each word")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="write the cv folder here and keep it")
    args = parser.parse_args()

    recipes = {name: NAMED[name] for name in filter(None, args.recipes.split(","))}
    recipes.update(parse_set(text) for text in args.set)
    work = Path(tempfile.mkdtemp(prefix="slr-cv-recipes-"))
    try:
        if args.task == "asl-words":
            data, group = asl_words_pool(args.asl_words, work, args.subsample), "block"
        else:
            data, group = signers_data(work, args.frames, args.data_seed), "signer"
        command = [sys.executable, "-m", "slr", "cv", "transformer", str(data), "--group-by", group,
                   "--folds", args.folds, "--fold-seed", str(args.fold_seed), "--seed", str(args.seed),
                   "--jobs", str(args.jobs), "--no-tensorboard", "--no-plots",
                   "--output-dir", str(args.keep or work / "cv")]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        for name, values in recipes.items():
            path = work / "recipes" / f"{name}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(yaml.safe_dump(values) if values else "{}\n")
            command += ["--recipe", str(path)]
        started = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run(command, stdout=sys.stderr, env=env)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.returncode)
        report = json.loads(((args.keep or work / "cv") / "cv.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(report, args, seconds)


def print_table(report: dict[str, Any], args: argparse.Namespace, seconds: float) -> None:
    what = {"asl-words": f"asl-words by recording block (one clip in {args.subsample} of each word)" if args.subsample > 1
            else "asl-words by recording block", "signers": f"36 synthetic signers ({args.frames} frames)"}[args.task]
    epochs = f"{args.epochs} epochs" if args.epochs else "each recipe's epochs"
    print(f"\n`slr cv` on {what}, {len(report['folds'])} folds (fold seed {args.fold_seed}), training seed "
          f"{args.seed}, {epochs}; held-out gloss accuracy per fold, mean ± sd over folds; {seconds:.0f} s in all\n")
    folds = len(report["folds"])
    print("| recipe | " + " | ".join(f"fold {k + 1}" for k in range(folds)) + " | mean ± sd | inner val best |")
    print("|---" * (folds + 3) + "|")
    for recipe in report["recipes"]:
        cells = [format(f["gloss_top1"], ".3f") for f in recipe["folds"]]
        s, inner = recipe["scores"]["gloss_top1"], recipe["scores"]["inner_best"]
        print(f"| {recipe['name']} | " + " | ".join(cells) + f" | {s['mean']:.3f} ± {s['sd']:.3f} | "
              f"{inner['mean']:.3f} ± {inner['sd']:.3f} |")
    for pair in report["pairs"]:
        print(f"\n- {pair['meaning']}; McNemar on the pooled held-out clips: p = {pair['mcnemar_pooled']['p_value']:.3g} "
              f"(only {pair['first']} right {pair['mcnemar_pooled']['only_first']}, only {pair['second']} right "
              f"{pair['mcnemar_pooled']['only_second']})")


if __name__ == "__main__":
    main()
