"""The GPU checks: one bounded command that checks and times what only a GPU runs, and prints one table.

    python benchmarks/gpu_checks.py                 # every visible GPU; at most --budget-s seconds
    python benchmarks/gpu_checks.py --cpu           # the same checks where a CPU can run them (CI)

Each check is its own `python -m slr` process (a failure or a hang does not hide the others), on a
small synthetic keypoint data set, with a timeout cut to what is left of the budget (default 450 s:
under 8 minutes with start-up), so the command always ends and always prints the table:

- fp32: the baseline the others are compared with (samples/s of the last epoch);
- AMP float16 (autocast + GradScaler: the loss scale must be in the checkpoint) and AMP bfloat16
  (where the GPU has it);
- compile: `--compile-model` with AMP;
- probe: `slr hwinfo --probe transformer` (the measured --auto-batch-size batch and a step's time);
- guide options: the training guide's GPU command (`--auto-workers --auto-batch-size
  --enable-parallel --amp --compile-model --pin-memory`), then `slr resume` to one more epoch;
- DataParallel: `--enable-parallel` over every visible GPU (needs 2);
- DDP: `torchrun --nproc_per_node <GPUs>` (needs 2);
- smoke frames: `slr smoke iv3_gru --frames` (RGB frames through InceptionV3).

The table (also written to $OUT/gpu_checks.md when OUT is set, or --out) has one row per check:
status, seconds, samples/s and its ratio to fp32, peak GPU memory, and a note.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_CHECK_S = 20  # a check is skipped when less than this is left of the budget
MODEL = ["--d-model", "128", "--num-heads", "4", "--num-layers", "2", "--ff-dim", "256"]


@dataclass
class Row:
    check: str
    status: str = "skipped"
    seconds: float = 0.0
    samples_per_s: float = 0.0
    peak_mib: float = 0.0
    note: str = ""


class Checks:
    def __init__(self, budget_s: float, work: Path, device: str):
        self.deadline = time.monotonic() + budget_s
        self.work = work
        self.device = device
        self.rows: list[Row] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, command: list[str], limit_s: float = 240) -> tuple[Row, subprocess.CompletedProcess | None]:
        row = Row(name)
        self.rows.append(row)
        timeout = min(limit_s, self.left())
        if timeout < MIN_CHECK_S:
            row.note = "time budget spent"
            return row, None
        started = time.monotonic()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.work, env=self.env)
        except subprocess.TimeoutExpired:
            row.status, row.seconds, row.note = "TIMEOUT", time.monotonic() - started, f"after {timeout:.0f} s"
            return row, None
        row.seconds = time.monotonic() - started
        row.status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            row.note = lines[-1][:160] if lines else ""
        return row, proc

    def train(self, name: str, extra: list[str], launch: list[str] | None = None, limit_s: float = 240) -> Row:
        out = self.work / name.replace(" ", "-")
        command = [*(launch or [sys.executable, "-m", "slr"]), "train", "transformer", *self.data, *MODEL,
                   "--output-dir", str(out), "--device", self.device, *extra]
        row, proc = self.run(name, command, limit_s)
        if proc is not None and proc.returncode == 0:
            last = _last_row(out / "log.csv")
            row.samples_per_s = float(last.get("samples_per_s") or 0)
            row.peak_mib = float(last.get("gpu_memory_peak") or 0)
        return row

    def write_data(self, clips: int) -> None:
        sys.path.insert(0, str(ROOT))
        from slr.data.synthetic import write_synthetic_dataset

        options = dict(num_gloss=15, num_cat=4, min_frames=16, max_frames=64, with_features=False)
        write_synthetic_dataset(self.work / "data" / "train", clips, seed=1, **options)
        write_synthetic_dataset(self.work / "data" / "val", 128, seed=2, **options)
        self.data = ["--keypoints-train", str(self.work / "data" / "train"), "--keypoints-val",
                     str(self.work / "data" / "val"), "--num-gloss", "15", "--num-cat", "4", "--no-plots"]


def _last_row(log: Path) -> dict[str, str]:
    try:
        with open(log, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    return rows[-1] if rows else {}


def _checkpoint_entry(path: Path, entry: str):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True).get(entry)
    except Exception:  # noqa: BLE001 - a check reports what it found, never raises
        return None


def run_checks(checks: Checks, gpus: int, bf16: bool, cpu: bool) -> None:
    slr = [sys.executable, "-m", "slr"]
    epochs = ["--epochs", "2", "--batch-size", "64"]
    base = checks.train("fp32", epochs)
    if cpu:
        for name in ("AMP float16", "AMP bfloat16", "compile", "guide options", "DataParallel", "DDP"):
            checks.rows.append(Row(name, note="needs a GPU (the CPU paths: tests/test_device_branches.py)"))
    else:
        half = checks.train("AMP float16", [*epochs, "--amp", "--amp-dtype", "float16"])
        scaler = _checkpoint_entry(checks.work / "AMP-float16" / "SignTransformer_last.pt", "scaler_state") or {}
        if half.status == "ok":
            half.note = f"loss scale {scaler.get('scale', 'missing')}"
        if bf16:
            checks.train("AMP bfloat16", [*epochs, "--amp", "--amp-dtype", "bfloat16"])
        else:
            checks.rows.append(Row("AMP bfloat16", note="this GPU has no bfloat16"))
        checks.train("compile", [*epochs, "--amp", "--compile-model"], limit_s=300)
        guide = checks.train("guide options", ["--epochs", "1", "--amp", "--compile-model", "--auto-workers",
                                               "--auto-batch-size", "--enable-parallel", "--pin-memory"], limit_s=300)
        if guide.status == "ok":
            checks.run("resume guide options", [*slr, "resume", str(
                checks.work / "guide-options" / "SignTransformer_last.pt"), "--epochs", "2"])
            runtime = _checkpoint_entry(checks.work / "guide-options" / "SignTransformer_last.pt", "runtime") or {}
            guide.note = f"batch {runtime.get('batch_size', {}).get('value', '?')} " \
                         f"({runtime.get('batch_size', {}).get('method', '?')})"
        if gpus >= 2:
            checks.train("DataParallel", [*epochs, "--enable-parallel"])
            launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
                      "-m", "slr"]
            ddp = checks.train("DDP", ["--epochs", "2", "--batch-size", str(max(1, 64 // gpus))], launch=launch)
            ddp.note = ddp.note or f"{gpus} processes, batch {max(1, 64 // gpus)} each"
        else:
            checks.rows.append(Row("DataParallel", note=f"{gpus} GPU visible: needs 2"))
            checks.rows.append(Row("DDP", note=f"{gpus} GPU visible: needs 2"))
    probe, proc = checks.run("probe", [*slr, "hwinfo", "--probe", "transformer", "--frames", "64", "--width", "156",
                                       "--device", checks.device, "--json"], limit_s=180)
    if proc is not None and proc.returncode == 0:
        found = json.loads(proc.stdout)["probe"]
        probe.samples_per_s = found["samples_per_s"]
        probe.note = (f"measured batch {found['measured']['batch_size']}, rule {found['rule']['batch_size']}, "
                      f"{found['seconds_per_step'] * 1000:.0f} ms/step")
    frames, proc = checks.run("smoke frames", [*slr, "smoke", "iv3_gru", "--frames", "--no-pretrained-backbone",
                                               "--device", checks.device, "--steps", "4" if cpu else "10",
                                               "--batch-size", "2" if cpu else "8"], limit_s=240)
    if frames.status.startswith("FAILED") and proc is not None and "loss fell" in proc.stdout + proc.stderr:
        frames.note = "ran; the loss did not fall enough in these few steps"
    if base.samples_per_s:
        for row in checks.rows:
            if row is not base and row.samples_per_s and row.check not in ("probe",):
                row.note = (row.note + "; " if row.note else "") + f"{row.samples_per_s / base.samples_per_s:.2f}x fp32"


def table(rows: list[Row], header: str) -> str:
    lines = [header, "", "| check | status | seconds | samples/s | peak GPU MiB | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.check} | {r.status} | {r.seconds:.0f} | {r.samples_per_s:.0f} | {r.peak_mib:.0f} | {r.note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="GPU checks: AMP, compile, the probe, DataParallel, DDP; one table.")
    parser.add_argument("--budget-s", type=float, default=450, help="stop starting checks after this (default 450)")
    parser.add_argument("--cpu", action="store_true", help="run what a CPU can (fp32, the probe, smoke frames)")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                        help="also write the table to OUT/gpu_checks.md")
    args = parser.parse_args()

    import torch

    gpus = 0 if args.cpu else torch.cuda.device_count()
    if not gpus and not args.cpu:
        raise SystemExit("no CUDA GPU visible: run on a GPU machine, or pass --cpu for the checks a CPU can run")
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus)) or "CPU"
    bf16 = bool(gpus) and torch.cuda.is_bf16_supported()
    with tempfile.TemporaryDirectory(prefix="slr-gpu-checks-") as tmp:
        checks = Checks(args.budget_s, Path(tmp), "cpu" if args.cpu else "cuda")
        checks.write_data(128 if args.cpu else 1024)
        run_checks(checks, gpus, bf16, args.cpu)
    header = (f"slr GPU checks: torch {torch.__version__}, CUDA {torch.version.cuda}, {names}; "
              f"budget {args.budget_s:.0f} s, {args.budget_s - checks.left():.0f} s used")
    text = table(checks.rows, header)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_checks.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
