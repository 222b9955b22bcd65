"""What the transformer's convolution blocks (--conv-kernel, --conv-blocks) cost: parameters, and
CPU seconds per epoch of `slr train` (training, validation and the checkpoint writes) on the
small real example set, against the plain transformer measured in the same run.

The variants take turns, round after round (plain, conv, ..., plain, conv, ...), so a machine
shared with other work slows them alike; each run's first epoch is a warm-up and left out. Time is
the process's CPU time (time.process_time) between the trainer's epoch_start and epoch_end, which
a busy machine inflates less than wall time; wall seconds are shown beside it. The ratios are of
medians over every measured epoch of a variant. No accuracy is measured here (too few epochs).

    nice -n 10 python benchmarks/conv_blocks_cost.py                  # 3 rounds x 4 epochs, ~3 min
    nice -n 10 python benchmarks/conv_blocks_cost.py --rounds 1 --epochs 2   # a check of the script
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from slr.engine.observer import SilentObserver  # noqa: E402
from slr.engine.run import train  # noqa: E402
from slr.models.registry import build_model, count_parameters  # noqa: E402
from slr.settings import TrainSettings  # noqa: E402

MINI = ROOT / "examples" / "asl-words-mini"
#: name -> settings over slr's defaults; "winner" is the 2023 Kaggle ISLR winner's 3 blocks of 17 frames.
VARIANTS = {
    "plain": {},
    "conv k5 x1": {"conv_kernel": 5, "conv_blocks": 1},
    "conv k17 x3": {"conv_kernel": 17, "conv_blocks": 3},
}


class EpochClock(SilentObserver):
    def __init__(self):
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self._start = (0.0, 0.0)

    def epoch_start(self, *args, **kwargs) -> None:
        self._start = (time.process_time(), time.perf_counter())

    def epoch_end(self, *args, **kwargs) -> None:
        self.cpu.append(time.process_time() - self._start[0])
        self.wall.append(time.perf_counter() - self._start[1])


def settings_for(extra: dict, out: Path, epochs: int) -> TrainSettings:
    return TrainSettings(
        model="transformer", keypoints_train=MINI / "train", keypoints_val=MINI / "val",
        classes_csv=MINI / "classes.csv", num_gloss=6, num_cat=3, epochs=epochs, output_dir=out,
        plots=False, tensorboard=False, threads=1, **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first is a warm-up")
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, extra in VARIANTS.items():
                clock = EpochClock()
                train(settings_for(extra, Path(tmp) / f"{round_}-{name.replace(' ', '_')}", args.epochs), clock)
                cpu[name] += clock.cpu[1:]
                wall[name] += clock.wall[1:]
    base = statistics.median(cpu["plain"])
    print(f"examples/asl-words-mini (240 train / 179 val clips of 20 frames), slr defaults (d_model 128, "
          f"2 layers, batch 32), 1 thread; {args.rounds} rounds x {args.epochs - 1} measured epochs")
    print(f"{'variant':<14} {'parameters':>11} {'CPU s/epoch':>12} {'x plain':>8} {'wall s/epoch':>13}")
    for name, extra in VARIANTS.items():
        params = count_parameters(build_model("transformer", settings_for(extra, Path("."), 1), 156, 6, 3))[0]
        median = statistics.median(cpu[name])
        print(f"{name:<14} {params:>11,} {median:>12.2f} {median / base:>8.2f} {statistics.median(wall[name]):>13.2f}")


if __name__ == "__main__":
    main()
