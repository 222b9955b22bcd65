"""Training throughput on the CPU with 1 thread, 2 threads, torch's default and the `--threads`
auto pick, alternated on the same training steps inside one process.

Each round runs the same number of training steps (SignTransformer with slr's default sizes,
AdamW, batch 32, clips of 20-60 frames like the asl-words keypoints) once per thread count, in
an order that rotates every round, so that the load of a shared machine falls on every choice
alike. The figure per choice is the median samples/s over rounds (the first round is a warm-up);
ratios are printed against 1 thread and against torch's default. The load average is printed
before and after (the auto rule reads it).

    python benchmarks/cpu_threads.py            # 7 rounds of 12 steps
    python benchmarks/cpu_threads.py --quick    # 3 rounds of 6 steps

Run it without OMP_NUM_THREADS set, so that torch's default is its own (one per core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (6 if args.quick else 12)

    import torch
    import torch.nn.functional as F

    from slr.engine import threads as th
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    default = torch.get_num_threads()
    th._torch_default(torch)  # remember torch's own default before anything changes it
    auto = th.choose_threads(None, environ={})
    print(f"load average before: {os.getloadavg()}; usable cores {th.usable_cores()}; torch default {default} "
          f"thread(s); auto pick {auto.threads} ({auto.reason})")
    if "OMP_NUM_THREADS" in os.environ:
        print(f"note: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} is set; torch's default follows it")

    torch.manual_seed(0)
    settings = TrainSettings(num_gloss=15, num_cat=4)
    model = build_model("transformer", settings, 156, 15, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 61, (32,), generator=gen)
    x = torch.randn(32, int(lengths.max()), 156, generator=gen)
    mask = torch.arange(x.shape[1])[None] < lengths[:, None]
    gloss, cat = torch.randint(0, 15, (32,), generator=gen), torch.randint(0, 4, (32,), generator=gen)

    def run(n: int) -> tuple[float, float]:
        torch.set_num_threads(n)
        started = time.perf_counter()
        for _ in range(steps):
            g, c = model(x, mask)
            loss = 0.5 * F.cross_entropy(g, gloss) + 0.5 * F.cross_entropy(c, cat)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return steps * 32 / (time.perf_counter() - started), loss.item()

    choices = sorted({1, 2, default, auto.threads})
    speeds: dict[int, list[float]] = {n: [] for n in choices}
    for r in range(rounds + 1):
        order = choices[r % len(choices):] + choices[: r % len(choices)]
        line = []
        for n in order:
            speed, _ = run(n)
            if r:  # round 0 warms up allocator and kernels
                speeds[n].append(speed)
            line.append(f"{n} thread(s) {speed:6.1f}")
        print(f"round {r}{' (warm-up)' if r == 0 else ''}: " + ", ".join(line) + " samples/s", flush=True)
    print(f"load average after: {os.getloadavg()}")
    median = {n: statistics.median(v) for n, v in speeds.items()}
    for n in choices:
        tags = [t for t, m in (("torch default", default), ("auto pick", auto.threads)) if m == n]
        print(f"{n} thread(s){' (' + ', '.join(tags) + ')' if tags else ''}: median {median[n]:.1f} samples/s, "
              f"{median[n] / median[1]:.2f}x of 1 thread, {median[n] / median[default]:.2f}x of torch's default")


if __name__ == "__main__":
    main()
