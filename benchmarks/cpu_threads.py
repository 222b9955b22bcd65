"""`--threads` auto against every fixed thread count, with 0, 1 or 4 busy processes beside it.

One command per condition (each bounded to about 4 minutes):

    python benchmarks/cpu_threads.py --busy 0     # the machine as it is (quiet, ideally)
    python benchmarks/cpu_threads.py --busy 1     # one process spinning beside the training
    python benchmarks/cpu_threads.py --busy 4     # four

What runs: the SignTransformer (slr's default sizes, or the guide's with `--model guide`), AdamW,
batch 32 of 20-frame clips of 156 values (the asl-words shape), forward + backward + step. A "run"
is `--steps` training steps, cut at `--max-run-s` seconds (a fixed count that stalls under load
would otherwise take minutes); its figure is steps per second over the whole run. The variants:
each fixed count from 1 to torch's default, and auto: a fresh `slr.engine.threads.ThreadTuner`
started where `choose_threads` starts a run (from the CPU time other processes take now), fed
every step as the trainer feeds it, so its measuring windows are inside the figure. Every round
runs every variant once, in an order that rotates, so the load falls on all alike; the first
round warms up and is left out. Printed: the load average before and after, each variant's median
steps/s, and auto / best fixed count (the target: at least 0.90).

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

from machine_load import busy_processes, load_average  # noqa: E402 - beside this file

SIZES = {
    "default": {},
    "guide": {"d_model": 256, "num_heads": 8, "num_layers": 4, "ff_dim": 1024, "attention_dropout": 0.1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside the training")
    parser.add_argument("--model", choices=sorted(SIZES), default="default")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds after the warm-up round")
    parser.add_argument("--steps", type=int, default=600, help="training steps per run")
    parser.add_argument("--max-run-s", type=float, default=25.0, help="a run stops after this many seconds")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from slr.engine import threads as th
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    default = th._torch_default(torch)  # torch's own default, before anything changes it
    if "OMP_NUM_THREADS" in os.environ:
        print(f"note: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} is set; torch's default follows it")
    with busy_processes(args.busy):
        time.sleep(1.0 if args.busy else 0.0)
        print(f"busy processes: {args.busy}; load average before: {load_average()}; usable cores {th.usable_cores()}; "
              f"torch default {default} thread(s); model: {args.model} sizes", flush=True)
        torch.manual_seed(0)
        settings = TrainSettings(num_gloss=15, num_cat=4, **SIZES[args.model])
        model = build_model("transformer", settings, 156, 15, 4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(32, 20, 156, generator=gen)
        mask = torch.ones(32, 20, dtype=torch.bool)
        gloss, cat = torch.randint(0, 15, (32,), generator=gen), torch.randint(0, 4, (32,), generator=gen)

        def step() -> None:
            g, c = model(x, mask)
            loss = 0.5 * F.cross_entropy(g, gloss) + 0.5 * F.cross_entropy(c, cat)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def run(variant: str) -> tuple[float, str]:
            tuner = None
            if variant == "auto":
                choice = th.choose_threads(None, environ={})
                torch.set_num_threads(choice.threads)
                tuner = th.tuner_for(choice.as_dict())  # as `slr train` makes it
            else:
                torch.set_num_threads(int(variant))
            started = time.perf_counter()
            done = 0
            while done < args.steps and time.perf_counter() - started < args.max_run_s:
                step()
                done += 1
                if tuner is not None:
                    tuner.step_done()
            speed = done / (time.perf_counter() - started)
            picked = ""
            if tuner is not None and tuner.decisions:  # the choice, and the counts its first probe timed
                timed = "/".join(tuner.decisions[0]["steps_per_s"]) or "none"
                picked = f" -> {tuner.chosen} (timed: {timed})"
            return speed, picked

        variants = [str(n) for n in range(1, default + 1)] + ["auto"]
        speeds: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds + 1):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            line = []
            for v in order:
                speed, picked = run(v)
                if r:
                    speeds[v].append(speed)
                line.append(f"{v}{picked} {speed:.2f}")
            print(f"round {r}{' (warm-up)' if r == 0 else ''}: " + ", ".join(line) + " steps/s", flush=True)
        print(f"load average after: {load_average()}")
    median = {v: statistics.median(s) for v, s in speeds.items()}
    best = max((v for v in variants if v != "auto"), key=lambda v: median[v])
    for v in variants:
        print(f"{v:>4} thread(s): median {median[v]:.2f} steps/s ({median[v] / median[best]:.2f}x of the best fixed)")
    print(f"RESULT busy={args.busy}: auto / best fixed ({best} thread(s)) = {median['auto'] / median[best]:.2f} "
          f"(target >= 0.90)")



if __name__ == "__main__":
    main()
