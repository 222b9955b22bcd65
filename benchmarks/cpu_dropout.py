"""CpuDropout (slr/models/cpu_dropout.py) against torch's nn.Dropout on this CPU: one dropout's
forward and backward, and the transformer's whole training step, in alternating rounds.

    python benchmarks/cpu_dropout.py                      # the guide's sizes, bfloat16 autocast where the CPU has it
    python benchmarks/cpu_dropout.py --settings defaults  # slr's default transformer
    python benchmarks/cpu_dropout.py --no-amp --threads 1

Both models have the same weights; only their dropout modules differ. Prints per round the
milliseconds of each and the ratio CpuDropout / nn.Dropout, then the median ratio, and the load
average seen before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from slr.engine.hardware import autocast_dtype  # noqa: E402
from slr.models.cpu_dropout import CpuDropout  # noqa: E402
from slr.models.transformer import SignTransformer  # noqa: E402

SIZES = {
    "guide": dict(d_model=256, num_heads=8, num_layers=4, ff_dim=1024, attention_dropout=0.1, conv_kernel=0),
    "defaults": dict(d_model=128, num_heads=4, num_layers=2, ff_dim=256, conv_kernel=7),
}


def with_torch_dropout(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, CpuDropout):
            setattr(model, name, nn.Dropout(child.p))
        else:
            with_torch_dropout(child)
    return model


def timed(fn, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", choices=sorted(SIZES), default="guide")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=20, help="asl-words' clip length")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast (default: as slr decides for this CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = autocast_dtype(args.amp, torch.device("cpu"))
    print(f"sizes: {args.settings}; threads {args.threads}; autocast {dtype}; load average before {os.getloadavg()}")

    torch.manual_seed(0)
    ours = SignTransformer(156, 105, 10, **SIZES[args.settings]).train()
    theirs = with_torch_dropout(SignTransformer(156, 105, 10, **SIZES[args.settings])).train()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(args.batch, args.frames, 156)
    mask = torch.ones(args.batch, args.frames, dtype=torch.bool)

    def step(model: nn.Module) -> None:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            gloss, cat = model(x, mask)
            loss = gloss.float().logsumexp(-1).mean() + cat.float().logsumexp(-1).mean()
        loss.backward()

    width = SIZES[args.settings]["ff_dim"]
    h = torch.randn(args.batch, args.frames, width, dtype=dtype or torch.float32, requires_grad=True)
    grad = torch.randn_like(h)
    layers = {"torch": nn.Dropout(0.1).train(), "slr": CpuDropout(0.1).train()}
    cases = {
        f"one dropout [{args.batch}, {args.frames}, {width}], forward + backward": (
            {name: (lambda layer=layer: layer(h).backward(grad)) for name, layer in layers.items()}, 20),
        "training step (forward + backward)": ({"torch": lambda: step(theirs), "slr": lambda: step(ours)}, args.steps),
    }
    for title, (fns, repeats) in cases.items():
        for fn in fns.values():
            fn()  # warm up
        ratios = []
        print(f"\n{title}: ms per call, torch's nn.Dropout then slr's CpuDropout, alternating")
        for r in range(args.rounds):
            base = timed(fns["torch"], repeats)
            new = timed(fns["slr"], repeats)
            ratios.append(new / base)
            print(f"  round {r + 1}: torch {base:8.2f}  slr {new:8.2f}  ratio {new / base:.2f}")
        print(f"  median ratio slr / torch: {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    print(f"\nload average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
