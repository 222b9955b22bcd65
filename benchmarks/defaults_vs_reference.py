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
  The clips also carry the features of their frames mirrored (`X2048_mirror`), as `slr extract
  --features` writes them; the reference reads `X2048` only. With `--model iv3_gru` the kinect
  task's training clips carry their skeletons mirrored (`X_mirror`) likewise.

For every configuration: accuracy per fold and seed, the mean over folds for each seed, and the
mean ± sd of that over seeds; then each configuration's paired difference from the reference
(per seed, folds averaged; mean ± sd over seeds). `best` is the best validation accuracy of the
run (what slr reports as the run's best: chosen on the held-out people it reports, so it flatters),
`last` the final epoch's.

`--via-cv` (kinect, asl-words, signers) measures without choosing on the held-out people at all:
slr's defaults go through `slr cv` itself (leave one signer out; group 4-fold over recording blocks;
group 4-fold over one pool of 56 synthetic signers),
which trains each fold on all but an inner validation group, chooses the checkpoint there and
scores the held-out group once (`chosen`). The reference trains on the same fold's training clips
and is scored on the same held-out clips at its last epoch (`last`: it chooses nothing) and at the
epoch its score on the same inner validation group chose (`chosen`). Each seed's `slr cv` folder
is kept under --cv-root (a rerun continues it; nothing is trained twice).

    python benchmarks/defaults_vs_reference.py --task kinect --seeds 3
    python benchmarks/defaults_vs_reference.py --task kinect --seeds 1 --only-folds 0,3 --epochs 20 \
        --set "conv:conv_kernel=17" --configs defaults,reference
    python benchmarks/defaults_vs_reference.py --summarise a.json b.json   # runs split over processes
    python benchmarks/defaults_vs_reference.py --task kinect --via-cv --cv-root cv-kinect --seeds 3 --json-out cv.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from signer_shift import (NAMED, REFERENCE, asl_words_blocks, asl_words_split, link_clips, parse_set,  # noqa: E402
                          signer_split, train_once)

from slr.crossval.folds import fold_label_files  # noqa: E402
from slr.crossval.runner import PLAN_FILE  # noqa: E402
from slr.data.synthetic import make_signer_shift_clips, write_clips  # noqa: E402

#: The shared data folder beside the checkout (as tests/conftest.py finds asl-words); SLR_DATA overrides it.
DATA = Path(os.environ.get("SLR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KINECT_SIGNERS_FIELD = "signer"


def kinect_signers(root: Path) -> list[str]:
    return sorted({row[KINECT_SIGNERS_FIELD] for row in _rows(root / "clips" / "labels.csv")})


def kinect_split(root: Path, held_out: str, work: Path, mirrored: bool = False) -> tuple[Path, Path, int, int]:
    """Leave one signer out: every clip of `held_out` for validation, the others' for training.
    The clips are linked, not copied; labels.csv keeps file, gloss and cat. `mirrored`: the
    training clips are written instead, each with its skeleton mirrored left to right beside it
    (`X_mirror`: x turned over, the layout's left/right joints swapped), what iv3_gru reading
    the skeletons as features trains on as it would on a flipped video's features."""
    rows = _rows(root / "clips" / "labels.csv")
    glosses = 1 + max(int(r["gloss"]) for r in rows)
    for side in ("train", "val"):
        link_clips(work / side, [(root / "clips" / f"{r['file']}.npz", r["gloss"], r["cat"]) for r in rows
                                 if (r[KINECT_SIGNERS_FIELD] == held_out) == (side == "val")])
    if mirrored:
        pairs = json.loads((root / "layout.json").read_text())["mirror_pairs"]
        order = list(range(20))
        for a, b in pairs:
            order[a], order[b] = b, a
        for link in sorted((work / "train").glob("*.npz")):
            with np.load(link) as stored:
                x = stored["X"]
            points = x.reshape(len(x), 20, 2)[:, order].copy()
            points[..., 0] = -points[..., 0]  # camera space, origin at the sensor: a flip turns x over
            link.unlink()  # write a file where the link was, never through it into the data set
            np.savez(link, X=x, X_mirror=points.reshape(x.shape))
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
        return kinect_split(args.kinect, fold, work, mirrored=getattr(args, "model", None) == "iv3_gru")
    if args.task == "asl-words":
        return asl_words_split(args.asl_words, fold, args.folds, 1, work)
    # the signers drawn depend on fold and seed: a fold is a new set of people
    features = args.task == "features"
    return signer_split(1000 * seed + int(fold), work, features, args.frames or FRAMES[args.task], 30, 0.12,
                        "hands" if features else "image")


# -- through `slr cv` -------------------------------------------------------------------------


def cv_data(args: argparse.Namespace, work: Path) -> tuple[Path, str, str, int]:
    """The clip folder `slr cv` splits, its grouping column, folds, and the gloss count. asl-words:
    its train and val clips in one folder whose labels.csv gains a `block` column
    (`asl_words_blocks`, as the fold loop's `asl_words_split` groups them)."""
    if args.task == "kinect":
        return args.kinect / "clips", KINECT_SIGNERS_FIELD, "loo", 1 + max(int(r["gloss"]) for r in _rows(
            args.kinect / "clips" / "labels.csv"))
    if args.task == "signers":
        # one pool of 26 + 30 synthetic signers (drawn with seed 0, the same for every seed), group
        # k-fold over them: each fold holds out a quarter of the people
        folder = work / "signers-pool"
        if not (folder / "labels.csv").exists():
            low, _, high = (args.frames or FRAMES["signers"]).partition("-")
            clips = make_signer_shift_clips(seed=0, min_frames=int(low), max_frames=int(high), num_signers=26 + 30)
            write_clips(folder, clips)
        return folder, "signer", str(args.folds), 11
    folder = work / "asl-words-blocks"
    if not (folder / "labels.csv").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "gloss", "cat", "block"])
            for path, row, block in asl_words_blocks(args.asl_words):
                (folder / path.name).symlink_to(path.resolve())
                writer.writerow([row["file"], row["gloss"], row["cat"], block])
    return folder, "block", str(args.folds), 15


def _rows(labels: Path) -> list[dict[str, str]]:
    with open(labels, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_via_cv(args: argparse.Namespace, configs: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """Per seed: `slr cv` with slr's defaults (the command, in a child process), then the reference
    on each of its folds. Records carry `chosen` (and the reference's `last`)."""
    from reference_gru import train_reference_on

    unknown = sorted(set(configs) - {"defaults", REFERENCE})
    if unknown:
        raise SystemExit(f"--via-cv runs slr's defaults and the reference only, not {', '.join(unknown)}")
    if args.task not in ("kinect", "asl-words", "signers"):
        raise SystemExit("--via-cv: --task kinect, asl-words or signers")
    args.cv_root.mkdir(parents=True, exist_ok=True)
    data, group, folds, gloss = cv_data(args, args.cv_root)
    records: list[dict[str, Any]] = []

    def save() -> None:
        if args.json_out:
            args.json_out.write_text(json.dumps({"title": title, "records": records}, indent=1))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        out = args.cv_root / f"{args.task}_s{seed}"
        command = [sys.executable, "-m", "slr", "cv", "transformer", str(data), "--group-by", group,
                   "--folds", folds, "--seed", str(seed), "--threads", "1", "--jobs", str(args.jobs),
                   "--no-tensorboard", "--no-plots", "--output-dir", str(out)]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        if "defaults" in configs:
            print(f"  seed {seed}: {' '.join(command)}", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            report = json.loads((out / "cv.json").read_text())
            names = held_out_names(out)
            for fold in report["recipes"][0]["folds"]:
                records.append({"config": "defaults", "fold": names[fold["fold"]], "seed": seed,
                                "chosen": fold["gloss_top1"], "inner_best": fold["inner_best"],
                                "best_epoch": fold["best_epoch"]})
            save()
        if REFERENCE in configs:
            if not (out / PLAN_FILE).is_file():
                raise SystemExit(f"{out}: no folds yet; run the defaults first (they make the folds)")
            for number, held_out in held_out_names(out).items():
                files = fold_label_files(out / "folds" / f"fold-{number}")
                started = time.perf_counter()
                curves = train_reference_on(data, {"inner": (data, files["val"]), "held_out": (data, files["test"])},
                                            gloss, epochs=args.reference_epochs, seed=seed, train_labels=files["train"])
                pick = curves["inner"].index(max(curves["inner"]))
                records.append({"config": REFERENCE, "fold": held_out, "seed": seed,
                                "chosen": curves["held_out"][pick], "last": curves["held_out"][-1],
                                "best_epoch": pick + 1, "curves": curves,
                                "seconds": time.perf_counter() - started})
                print(f"  seed {seed} fold {number} ({held_out}) reference: chosen {records[-1]['chosen']:.3f} "
                      f"last {records[-1]['last']:.3f} ({records[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
                save()
    return records


def held_out_names(out: Path) -> dict[int, str]:
    """Fold number -> its held-out groups, as `slr cv`'s plan names them (the records' fold key)."""
    plan = json.loads((out / PLAN_FILE).read_text())
    return {fold["fold"]: ",".join(map(str, fold["held_out"])) for fold in plan["fold_groups"]}


# -- tables -----------------------------------------------------------------------------------


def summarise(records: list[dict[str, Any]], metric: str) -> list[str]:
    """Markdown rows: per configuration, the mean over folds for each seed, mean ± sd over seeds,
    and the paired difference from the reference (per seed, over the folds both have: a run split
    over processes may be summarised before the reference has every fold)."""
    configs = list(dict.fromkeys(r["config"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    scores = {(r["config"], r["seed"], r["fold"]): r[metric] for r in records if metric in r}

    def per_seed(config: str) -> dict[int, float]:
        out = {}
        for seed in seeds:
            values = [v for (c, s, _), v in scores.items() if c == config and s == seed]
            if values:
                out[seed] = statistics.mean(values)
        return out

    def paired_with_reference(config: str) -> list[float]:
        out = []
        for seed in seeds:
            both = [(v, scores[(REFERENCE, seed, f)]) for (c, s, f), v in scores.items()
                    if c == config and s == seed and (REFERENCE, seed, f) in scores]
            if both:
                out.append(statistics.mean(mine - theirs for mine, theirs in both))
        return out

    def mean_sd(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    lines = [f"| config ({metric}) | mean ± sd over seeds | per seed | minus reference (paired) | folds |",
             "|---|---|---|---|---|"]
    for config in configs:
        mine = per_seed(config)
        if not mine:
            continue
        paired = paired_with_reference(config)
        folds = len({f for (c, _, f) in scores if c == config})
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
            values = [r[metric] for r in records if r["config"] == config and r["fold"] == fold and metric in r]
            cells.append(f"{statistics.mean(values):.3f}" if values else "–")
        lines.append(f"| {fold} | " + " | ".join(cells) + " |")
    return lines


def report(records: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}\n")
    metrics = [m for m in ("chosen", "best", "last") if any(m in r for r in records)]
    for metric in metrics:
        print("\n".join(summarise(records, metric)))
        print()
    print(f"per fold ({metrics[0]}, mean over seeds):\n")
    print("\n".join(per_fold(records, metrics[0])))


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
    parser.add_argument("--via-cv", action="store_true", help="kinect, asl-words, signers: slr's defaults through `slr cv`, "
                        "the reference on its folds, both scored at a checkpoint chosen on an inner validation group")
    parser.add_argument("--cv-root", type=Path, default=Path("cv-defaults-vs-reference"),
                        help="--via-cv: where each seed's `slr cv` folder is kept (a rerun continues it)")
    parser.add_argument("--model", choices=["transformer", "iv3_gru"], default=None,
                        help="slr's model (default: iv3_gru for --task features, else transformer); iv3_gru on "
                        "kinect or asl-words reads the keypoints as its features: a real signer-shift check of "
                        "its recipe (e.g. --feature-norm), not of CNN features")
    parser.add_argument("--jobs", type=int, default=2, help="--via-cv: folds `slr cv` trains at once, one thread each")
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
    model = args.model = args.model or ("iv3_gru" if args.task == "features" else "transformer")
    if model == "iv3_gru" and args.task != "features" and REFERENCE in configs:
        parser.error("--model iv3_gru outside --task features reads keypoints as features; the reference "
                     "there is the keypoint one: run it without --model")
    title = (f"{args.task} ({model}): folds {folds}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
             f"slr epochs {args.epochs or 'default'}, reference epochs {args.reference_epochs}")
    if args.via_cv:  # the folds are slr cv's (leave one signer out; group k-fold over blocks)
        title = (f"{args.task} (transformer) through slr cv, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
                 f"slr epochs {args.epochs or 'default'}, reference epochs {args.reference_epochs}")
        report(run_via_cv(args, configs, title), title)
        return
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
