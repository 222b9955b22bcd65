"""AdamW's update alone: torch's for-loop implementation (its CPU default) against the fused one that
slr's training step uses (slr.engine.training.fused_adamw), on the transformer's real parameters.

Rounds alternate the two (the order rotating), each round timing `--steps` updates after one
warm-up update; the ratio is the median over rounds of fused / for-loop. Gradients are random
and fixed: the update's cost does not depend on their values.

    python benchmarks/optimizer_step.py                      # the guide's sizes (3.2 M parameters)
    python benchmarks/optimizer_step.py --settings defaults  # slr's default sizes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GUIDE_SIZES = dict(d_model=256, num_heads=8, num_layers=4, ff_dim=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", choices=["guide", "defaults"], default="guide")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    import torch

    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    torch.set_num_threads(args.threads)
    sizes = GUIDE_SIZES if args.settings == "guide" else {}
    model = build_model("transformer", TrainSettings(num_gloss=105, num_cat=10, **sizes), 156, 105, 10)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    print(f"{args.settings} sizes: {sum(p.numel() for p in params):,} parameters; {args.threads} thread(s); "
          f"load average before {os.getloadavg()[0]:.2f}")
    kinds = {"for-loop": dict(foreach=False), "fused": dict(fused=True)}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for round_ in range(args.rounds):
        order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
        for kind in order:
            optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, **kinds[kind])
            optimizer.step()  # allocates the moments
            started = time.perf_counter()
            for _ in range(args.steps):
                optimizer.step()
            times[kind].append((time.perf_counter() - started) / args.steps * 1000)
    for kind, values in times.items():
        print(f"{kind:9} {statistics.median(values):6.2f} ms per update (rounds: "
              + " ".join(f"{v:.2f}" for v in values) + ")")
    ratios = [f / s for f, s in zip(times["fused"], times["for-loop"])]
    print(f"fused / for-loop: {statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f}); "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
