"""slr's defaults against the plain GRU of issue 24 (benchmarks/reference_gru.py) on people or
recording sessions never seen: the same folds, the same seeds, in the same run.

Each fold is trained by every configuration in turn (alternating, so a change in the machine's
load falls on all alike). slr's configurations go through slr's own training
(`slr.engine.run.train`, defaults plus the data paths, class counts and seed, as `slr train
transformer` with nothing else given); `reference` is the plain GRU.

Tasks (folds are groups: nobody, or no recording block, is on both sides):

- `kinect`: leave-one-signer-out over the 7 signers of isl-kinect-7 (real Kinect v1 skeletons, 20
  joints x (x, y), 30 words; --kinect DIR). Real data for benchmarks only: it is read where it lies.
- `asl-words`: the real asl-words clips, group k-fold over recording blocks of 30 (--folds, 4).
- `signers`: synthetic fingerspelling signers (slr/data/synthetic.py), 48-180 frames, style 0.12,
  26 seen and 30 held out (270 clips), new signers for each fold.
- `features`: the same signers as 2048-d frame features of hand crops (`features_from="hands"`),
  12-45 frames by default (iv3_gru reads every frame), for `slr train iv3_gru` against the same
  reference GRU on the features (point 6 of issue 24). There are no real frame features here.

For every configuration: accuracy per fold and seed, the mean over folds for each seed, and the
mean ± sd of that over seeds; then each configuration's paired difference from the reference
(per seed, folds averaged; mean ± sd over seeds). `best` is the best validation accuracy of the
run (what slr reports as the run's best), `last` the final epoch's.

    python benchmarks/defaults_vs_reference.py --task kinect --seeds 3
    python benchmarks/defaults_vs_reference.py --task kinect --seeds 1 --only-folds 0,3 --epochs 20 \
        --set "conv:conv_kernel=17" --configs defaults,reference
    python benchmarks/defaults_vs_reference.py --summarise a.json b.json   # runs split over processes
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from signer_shift import NAMED, REFERENCE, asl_words_split, parse_set, signer_split, train_once  # noqa: E402

#: The shared data folder beside the checkout (as tests/conftest.py finds asl-words); SLR_DATA overrides it.
DATA = Path(os.environ.get("SLR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KINECT_SIGNERS_FIELD = "signer"


def kinect_signers(root: Path) -> list[str]:
    with open(root / "clips" / "labels.csv", newline="", encoding="utf-8") as handle:
        return sorted({row[KINECT_SIGNERS_FIELD] for row in csv.DictReader(handle)})


def kinect_split(root: Path, held_out: str, work: Path) -> tuple[Path, Path, int, int]:
    """Leave one signer out: every clip of `held_out` for validation, the others' for training.
    The clips are linked, not copied; labels.csv keeps file, gloss and cat."""
    with open(root / "clips" / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    glosses = 1 + max(int(r["gloss"]) for r in rows)
    for side in ("train", "val"):
        folder = work / side
        folder.mkdir(parents=True)
        chosen = [r for r in rows if (r[KINECT_SIGNERS_FIELD] == held_out) == (side == "val")]
        with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "gloss", "cat"])
            for r in chosen:
                (folder / f"{r['file']}.npz").symlink_to((root / "clips" / f"{r['file']}.npz").resolve())
                writer.writerow([r["file"], r["gloss"], r["cat"]])
    return work / "train", work / "val", glosses, 1


def folds_of(args: argparse.Namespace) -> list[Any]:
    if args.task == "kinect":
        return kinect_signers(args.kinect)
    if args.task == "asl-words":
        return list(range(args.folds))
    return list(range(args.folds))  # signers, features: each fold draws new synthetic signers


#: clip lengths of the synthetic tasks, where --frames is not given
FRAMES = {"signers": "48-180", "features": "12-45"}


def make_split(args: argparse.Namespace, fold: Any, seed: int, work: Path) -> tuple[Path, Path, int, int]:
    if args.task == "kinect":
        return kinect_split(args.kinect, fold, work)
    if args.task == "asl-words":
        return asl_words_split(args.asl_words, fold, args.folds, 1, work)
    # the signers drawn depend on fold and seed: a fold is a new set of people
    features = args.task == "features"
    return signer_split(1000 * seed + int(fold), work, features, args.frames or FRAMES[args.task], 30, 0.12,
                        "hands" if features else "image")


def summarise(records: list[dict[str, Any]], metric: str) -> list[str]:
    """Markdown rows: per configuration, the mean over folds for each seed, mean ± sd over seeds,
    and the paired difference from the reference."""
    configs = list(dict.fromkeys(r["config"] for r in records))
    seeds = sorted({r["seed"] for r in records})

    def per_seed(config: str) -> dict[int, float]:
        out = {}
        for seed in seeds:
            values = [r[metric] for r in records if r["config"] == config and r["seed"] == seed]
            if values:
                out[seed] = statistics.mean(values)
        return out

    def mean_sd(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    base = per_seed(REFERENCE) if REFERENCE in configs else {}
    lines = [f"| config ({metric}) | mean ± sd over seeds | per seed | minus reference (paired) | folds |",
             "|---|---|---|---|---|"]
    for config in configs:
        mine = per_seed(config)
        paired = [mine[s] - base[s] for s in mine if s in base]
        folds = len({r["fold"] for r in records if r["config"] == config})
        lines.append(f"| {config} | {mean_sd(list(mine.values()))} | {' '.join(f'{v:.3f}' for v in mine.values())} | "
                     f"{mean_sd(paired) if paired and config != REFERENCE else '–'} | {folds} |")
    return lines


def per_fold(records: list[dict[str, Any]], metric: str) -> list[str]:
    configs = list(dict.fromkeys(r["config"] for r in records))
    folds = list(dict.fromkeys(r["fold"] for r in records))
    lines = ["| fold | " + " | ".join(configs) + " |", "|---" * (len(configs) + 1) + "|"]
    for fold in folds:
        cells = []
        for config in configs:
            values = [r[metric] for r in records if r["config"] == config and r["fold"] == fold]
            cells.append(f"{statistics.mean(values):.3f}" if values else "–")
        lines.append(f"| {fold} | " + " | ".join(cells) + " |")
    return lines


def report(records: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}\n")
    for metric in ("best", "last"):
        print("\n".join(summarise(records, metric)))
        print()
    print("per fold (best, mean over seeds):\n")
    print("\n".join(per_fold(records, "best")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["kinect", "asl-words", "signers", "features"], default="kinect")
    parser.add_argument("--configs", default="defaults,reference", help="named configurations, comma separated")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="an extra slr configuration: settings over slr's defaults")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="every slr configuration's epochs (default: slr's default, 40); the reference keeps 30 "
                        "unless --reference-epochs")
    parser.add_argument("--reference-epochs", type=int, default=30)
    parser.add_argument("--only-folds", default=None, help="comma-separated fold indices (a quicker screen)")
    parser.add_argument("--kinect", type=Path, default=DATA / "isl-kinect-7")
    parser.add_argument("--asl-words", type=Path, default=DATA / "asl-words")
    parser.add_argument("--folds", type=int, default=4, help="asl-words blocks / synthetic signer draws")
    parser.add_argument("--frames", default=None, help="signers/features: clip lengths MIN-MAX "
                        "(default: 48-180 for signers, 12-45 for features)")
    parser.add_argument("--json-out", type=Path, help="write every run here as it finishes")
    parser.add_argument("--summarise", nargs="+", type=Path, help="only print the tables of these --json-out files")
    args = parser.parse_args()
    if args.summarise:
        loaded = [json.loads(p.read_text()) for p in args.summarise]
        report([r for d in loaded for r in d["records"]], ", ".join(str(d["title"]) for d in loaded))
        return
    named = {**NAMED, REFERENCE: {REFERENCE: True}}
    configs = {name: named[name] for name in filter(None, args.configs.split(","))}
    configs.update(parse_set(text) for text in args.set)
    folds = folds_of(args)
    if args.only_folds:
        folds = [folds[int(i)] for i in args.only_folds.split(",")]
    model = "iv3_gru" if args.task == "features" else "transformer"
    title = (f"{args.task} ({model}): folds {folds}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
             f"slr epochs {args.epochs or 'default'}, reference epochs {args.reference_epochs}")
    records: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="slr-defaults-vs-reference-"))
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for fold in folds:
                split = make_split(args, fold, seed, work / f"data-{seed}-{fold}")
                for name, values in configs.items():
                    epochs = args.reference_epochs if values.get(REFERENCE) else args.epochs
                    run = train_once(model, values, *split, seed, epochs, work / f"run-{name}-{seed}-{fold}")
                    records.append({"config": name, "values": values, "fold": fold, "seed": seed,
                                    **{k: run[k] for k in ("best", "last", "curve", "seconds")}})
                    print(f"  seed {seed} fold {fold} {name}: best {run['best']:.3f} last {run['last']:.3f} "
                          f"({run['seconds']:.0f} s)", file=sys.stderr, flush=True)
                    if args.json_out:
                        args.json_out.write_text(json.dumps({"title": title, "records": records}, indent=1, default=str))
                shutil.rmtree(work / f"data-{seed}-{fold}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(records, title)


if __name__ == "__main__":
    main()
