"""`slr import gislr` against a bare read of the same parquet files, and its memory over many files.

Throughput: N synthetic GISLR-shaped files (Kaggle's columns and types, 543 rows per frame, 10-60
frames, NaN hands); each repeat runs, alternating in this process, (a) a bare read, every file read
with pandas.read_parquet, nothing kept, and (b) the import of the same files into an empty folder
(`slr import gislr`'s library call: parsing, the FSL-105 selection, compressed clips, labels.csv,
classes.csv) with each worker count asked. Ratios to the bare read (target >= 0.8): wall time end
to end; running (from the first clip done to the last: the rate of a long import, without the
workers' start, paid once); and CPU seconds of every process involved, which a busy shared machine
disturbs far less than wall time.

Memory: `slr import` of M small files (3-6 frames) in this process, with the resident memory (RSS)
of this process and of its largest worker sampled every 1,000 files: flat, not growing with the
count, is the claim (the parent keeps one small outcome per file; a worker holds one file at a time).

    python benchmarks/import_speed.py --files 500 --repeats 3 --workers 1 2
    python benchmarks/import_speed.py --memory 10000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

PARTS = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))


def write_files(root: Path, count: int, frames: tuple[int, int], seed: int = 0) -> None:
    """GISLR-shaped parquet files under root/train_landmark_files/<signer>/ and a train.csv."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    types = [t for t, n in PARTS for _ in range(n)]
    index = np.concatenate([np.arange(n, dtype=np.int16) for _, n in PARTS])
    right = np.array([t == "right_hand" for t in types])
    rows = ["path,participant_id,sequence_id,sign"]
    for i in range(count):
        t = int(rng.integers(frames[0], frames[1] + 1))
        xyz = rng.random((t, len(types), 3))
        xyz[:, right] = np.nan
        first = int(rng.integers(0, 100))
        table = pa.table({
            "frame": np.repeat(np.arange(first, first + t, dtype=np.int16), len(types)),
            "row_id": pa.array([f"{f}-{k}" for f in range(t) for k in range(len(types))]),
            "type": pa.array(types * t),
            "landmark_index": np.tile(index, t),
            "x": xyz[..., 0].ravel(), "y": xyz[..., 1].ravel(), "z": xyz[..., 2].ravel(),
        })
        signer = i % 21
        rel = f"train_landmark_files/{signer}/{100000 + i}.parquet"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / rel)
        rows.append(f"{rel},{signer},{100000 + i},sign{i % 250}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the import's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(files: int, repeats: int, workers: list[int]) -> None:
    """Alternating in this process: the bare read, then the import with each worker count."""
    import pandas as pd

    from slr.importers.run import run_import
    from slr.settings import ImportSettings

    class Clock:
        """When each clip was done (the ImportObserver of slr.importers.run)."""

        def start(self, sequences: int, skipped: int) -> None:
            self.times: list[float] = []

        def done(self, outcome) -> None:
            self.times.append(time.perf_counter())

        def finish(self) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "asl-signs"
        write_files(root, files, (10, 60))
        paths = sorted(root.rglob("*.parquet"))
        runs: dict[str, dict[str, list[float]]] = {}

        def record(name: str, wall: float, cpu: float, running: float | None = None) -> None:
            entry = runs.setdefault(name, {"wall": [], "cpu": [], "running": []})
            entry["wall"].append(wall)
            entry["cpu"].append(cpu)
            if running is not None:
                entry["running"].append(running)

        for _ in range(repeats):  # alternate, so that a change in machine load hits all alike
            wall, cpu = time.perf_counter(), _cpu()
            for path in paths:
                pd.read_parquet(path)
            record("bare pandas.read_parquet", time.perf_counter() - wall, _cpu() - cpu)
            for w in workers:
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                clock = Clock()
                wall, cpu = time.perf_counter(), _cpu()
                result = run_import(ImportSettings(format="gislr", sources=[root], output_dir=out, workers=w), clock)
                wall, cpu = time.perf_counter() - wall, _cpu() - cpu
                assert result.written == files, result.failed[:1]
                # from the first clip done to the last: the rate a long import runs at, without the
                # workers' start (a second or more, paid once)
                record(f"slr import, {w} worker(s)", wall, cpu, (clock.times[-1] - clock.times[0]) / (files - 1) * files)
        print(f"{files} files (10-60 frames), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
              f"{repeats} repeats, medians; ratios: the bare read's time / this one's (target >= 0.8)")
        base = {k: statistics.median(v) for k, v in runs.pop("bare pandas.read_parquet").items() if v}
        print(f"bare pandas.read_parquet, one process: wall {base['wall']:6.2f} s ({files / base['wall']:6.1f} files/s), "
              f"CPU {base['cpu']:6.2f} s")
        for name, entry in runs.items():
            m = {k: statistics.median(v) for k, v in entry.items()}
            print(f"{name}: wall {m['wall']:6.2f} s (ratio {base['wall'] / m['wall']:.2f}), running "
                  f"{files / m['running']:6.1f} files/s (ratio {base['wall'] / m['running']:.2f}), CPU of all its "
                  f"processes {m['cpu']:6.2f} s (ratio {base['cpu'] / m['cpu']:.2f})")


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def memory(files: int, workers: int) -> None:
    from slr.importers.run import run_import
    from slr.settings import ImportSettings

    class Observer:
        """Samples the resident memory every 1,000 files (the ImportObserver of slr.importers.run)."""

        def __init__(self) -> None:
            self.count = 0
            self.rows: list[tuple[int, float, float]] = []

        def start(self, sequences: int, skipped: int) -> None:
            pass

        def done(self, outcome) -> None:
            self.count += 1
            if self.count % 1000 == 0:
                worker = max((_rss_mib(p) for p in _children(os.getpid())), default=0.0)
                self.rows.append((self.count, _rss_mib(os.getpid()), worker))

        def finish(self) -> None:
            pass

    observer = Observer()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "asl-signs"
        started = time.perf_counter()
        write_files(root, files, (3, 6))
        print(f"wrote {files} files in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        result = run_import(ImportSettings(format="gislr", sources=[root], output_dir=Path(tmp) / "out",
                                           workers=workers), observer)
        seconds = time.perf_counter() - started
    print(f"imported {result.written} files in {seconds:.0f} s with {result.workers} worker(s), "
          f"{len(result.failed)} failed; load average {os.getloadavg()[0]:.1f}")
    print("files done  parent RSS MiB  largest worker RSS MiB")
    for count, parent, worker in observer.rows:
        print(f"{count:10d}  {parent:13.0f}  {worker:22.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory", type=int, default=0, help="instead: the memory run over this many files")
    args = parser.parse_args()
    if args.memory:
        memory(args.memory, max(args.workers))
    else:
        throughput(args.files, args.repeats, args.workers)


if __name__ == "__main__":
    main()
