"""CUDA checks, run by hand on a machine with a GPU (CI has none).

    python benchmarks/gpu_checks.py [--out DIR]

Runs, each as its own `python -m slr` process so that one failure does not hide the others:
hwinfo (GPU facts and the measured --auto-batch-size probe), smoke runs with AMP float16
(GradScaler) and bfloat16, with --compile-model, the iv3_gru frames path through InceptionV3, and
a short training run with every GPU option of the guide followed by a resume; then prints the
throughput and memory figures from the logs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT_FILE: list[Path] = []  # written after every check, so a timeout still leaves the report


def run(name: str, args: list[str], report: list[str], timeout: int = 300) -> subprocess.CompletedProcess | None:
    cmd = [sys.executable, "-m", "slr", *args]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    except subprocess.TimeoutExpired:
        report.append(f"## {name}: TIMEOUT after {timeout}s\n$ slr {' '.join(args)}\n")
        return None
    seconds = time.perf_counter() - started
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    report.append(f"## {name}: {status} in {seconds:.1f}s\n$ slr {' '.join(args)}\n{proc.stdout[-4000:]}{proc.stderr[-3000:]}")
    print(report[-1], flush=True)
    if REPORT_FILE:
        REPORT_FILE[0].write_text("\n\n".join(report))
    return proc


def log_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/slr-gpu")))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    REPORT_FILE.append(out / "gpu_report.txt")

    import torch

    report.append(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: "
                  + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
    print(report[-1], flush=True)
    run("hwinfo", ["hwinfo", "--json"], report)
    smoke = ["smoke", "transformer", "--num-gloss", "105", "--num-cat", "10", "--device", "cuda"]
    run("smoke AMP float16 + GradScaler", [*smoke, "--amp", "--amp-dtype", "float16"], report)
    run("smoke AMP bfloat16", [*smoke, "--amp", "--amp-dtype", "bfloat16"], report)
    run("smoke compile + AMP", [*smoke, "--amp", "--compile-model"], report, timeout=400)
    run("smoke iv3_gru features AMP", ["smoke", "iv3_gru", "--device", "cuda", "--no-pretrained-backbone", "--amp"], report)
    run("smoke iv3_gru frames, frozen backbone",
        ["smoke", "iv3_gru", "--device", "cuda", "--no-pretrained-backbone", "--frames", "--amp", "--steps", "10"], report)
    run("smoke iv3_gru frames, finetuned backbone",
        ["smoke", "iv3_gru", "--device", "cuda", "--no-pretrained-backbone", "--frames", "--finetune-backbone",
         "--steps", "10"], report)

    sys.path.insert(0, str(ROOT))
    from slr.data.synthetic import write_synthetic_dataset

    work = Path("/tmp/slr-gpu-runs")  # only the report goes to --out
    data = work / "data"
    options = dict(num_gloss=15, num_cat=4, min_frames=16, max_frames=64, with_features=False)
    write_synthetic_dataset(data / "train", 1200, seed=1, **options)
    write_synthetic_dataset(data / "val", 300, seed=2, **options)
    common = ["--keypoints-train", str(data / "train"), "--keypoints-val", str(data / "val"),
              "--num-gloss", "15", "--num-cat", "4", "--no-plots"]
    runs = {
        "fp32": ["--epochs", "3", "--batch-size", "32"],
        "amp": ["--epochs", "3", "--batch-size", "32", "--amp"],
        "guide options": ["--epochs", "2", "--amp", "--compile-model", "--auto-workers", "--auto-batch-size",
                          "--enable-parallel", "--pin-memory", "--gradient-accumulation-steps", "2",
                          "--grad-clip", "1.0", "--scheduler", "plateau"],
    }
    for name, extra in runs.items():
        run(f"train transformer {name}", ["train", "transformer", *common, *extra, "--output-dir", str(work / name.replace(" ", "-"))],
            report, timeout=400)
    run("resume guide options to 3 epochs",
        ["resume", str(work / "guide-options" / "SignTransformer_last.pt"), "--epochs", "3"], report)
    summary = {}
    for name in runs:
        rows = log_rows(work / name.replace(" ", "-") / "log.csv")
        if rows:
            last = rows[-1]
            summary[name] = {k: last[k] for k in ("epoch", "samples_per_s", "val_gloss_acc", "gpu_memory_allocated",
                                                  "gpu_memory_reserved", "gpu_memory_peak", "rss")}
    report.append("## summary of last epochs\n" + json.dumps(summary, indent=2))
    print(report[-1], flush=True)
    (out / "gpu_report.txt").write_text("\n\n".join(report))


if __name__ == "__main__":
    main()
