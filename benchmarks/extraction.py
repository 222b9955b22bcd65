"""Extraction speed: `slr extract`'s pipeline against a bare MediaPipe loop, and 2 workers against 1.

1. frames/s of `slr.extract.clip.extract_clip` (decode, Holistic, mapping to the 78-point layout,
   meta) against a bare loop over the same video in the same run (OpenCV decode, BGR->RGB,
   `Holistic.process`, nothing kept), alternating the two. Target: a ratio of at least 0.9.
2. wall time of `extract_videos` over the same videos with 2 worker processes against 1
   (clips written to a temporary folder each time), alternating. A ratio above 1 is a speed-up;
   it is bounded by the free CPU cores (MediaPipe itself uses more than one thread per process).
3. what the worker process of `--workers 1` costs: wall time of `extract_videos` with one worker
   (a spawned process that imports slr, OpenCV and MediaPipe before its first video) against the
   same videos extracted in this process by `extract_one` (how `--workers 1` ran before a video
   that kills its process was survivable), alternating. The difference is the price of protection.

The load average is printed beside the numbers: on a shared machine wall-clock rates move with
it, so the first comparison is also given per CPU second of the process (all its threads), which
other processes disturb much less.

    python benchmarks/extraction.py                 # the two videos of shared/data/videos, 3 rounds
    python benchmarks/extraction.py --rounds 1 --copies 1
    python benchmarks/extraction.py --parts process   # only the third comparison
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slr.extract.backend import import_cv2, import_mediapipe, native_logs_filtered  # noqa: E402
from slr.extract.clip import ExtractOptions, extract_clip  # noqa: E402
from slr.extract.runner import extract_one, extract_videos  # noqa: E402
from slr.extract.writer import clip_path  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def bare_loop(video: Path) -> tuple[int, float, float]:
    """Frames, wall seconds and CPU seconds of the least a MediaPipe user would write."""
    cv2, mp = import_cv2(), import_mediapipe()
    started, cpu = time.perf_counter(), time.process_time()
    with native_logs_filtered():
        holistic = mp.solutions.holistic.Holistic(model_complexity=1, refine_face_landmarks=True)
        cap = cv2.VideoCapture(str(video))
        frames = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            holistic.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            frames += 1
        cap.release()
        holistic.close()
    return frames, time.perf_counter() - started, time.process_time() - cpu


def slr_clip(video: Path) -> tuple[int, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    clip = extract_clip(video, ExtractOptions())
    return clip.frames, time.perf_counter() - started, time.process_time() - cpu


def run_workers(videos: list[Path], workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = extract_videos(videos, Path(out), ExtractOptions(), workers=workers)
        seconds = time.perf_counter() - started
    assert result.ok and len(result.written) == len(videos)
    return seconds


def in_process(videos: list[Path]) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        outcomes = [extract_one(v, clip_path(Path(out), v), ExtractOptions(), None) for v in videos]
        seconds = time.perf_counter() - started
    assert all(o.status == "written" for o in outcomes)
    return seconds


def compare_process(videos: list[Path], rounds: int) -> None:
    in_process(videos[:1])  # this process's imports and first graph, outside the comparison (slr extract
    costs = []              # imports mediapipe and OpenCV before it starts any worker)
    for round_ in range(rounds):
        times = {}
        for which in (("here", "worker") if round_ % 2 == 0 else ("worker", "here")):
            times[which] = in_process(videos) if which == "here" else run_workers(videos, 1)
        costs.append(times["worker"] - times["here"])
        print(f"  round {round_ + 1}: {len(videos)} videos, in this process {times['here']:.1f}s, in one worker "
              f"process {times['worker']:.1f}s, cost {costs[-1]:+.1f}s (load {os.getloadavg()[0]:.1f})")
    print(f"--workers 1 in a worker process / in this process: median cost {statistics.median(costs):+.1f}s per run "
          f"(min {min(costs):+.1f}, max {max(costs):+.1f}); load average now {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="copies of each video in the workers comparison")
    parser.add_argument("--parts", default="bare,workers,process", help="which comparisons (1, 2, 3 above)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    videos = sorted(args.videos.glob("*.mp4"))
    if not videos:
        raise SystemExit(f"no .mp4 videos in {args.videos}")
    print(f"videos: {', '.join(v.name for v in videos)}; cpus usable: {len(os.sched_getaffinity(0))}; "
          f"load average at start: {os.getloadavg()[0]:.1f}")

    if "bare" in parts:
        compare_bare(videos, args.rounds)
    if "workers" in parts:
        compare_workers(videos, args.rounds, args.copies)
    if "process" in parts:
        compare_process(videos, args.rounds)


def compare_bare(videos: list[Path], rounds: int) -> None:
    bare_loop(videos[0])  # imports and first-graph costs, outside the comparison
    ratios, cpu_ratios = [], []
    for round_ in range(rounds):
        for video in videos:
            wall, cpu = {}, {}
            order = ("bare", "slr") if round_ % 2 == 0 else ("slr", "bare")
            for which in order:
                frames, seconds, cpu_seconds = (bare_loop if which == "bare" else slr_clip)(video)
                wall[which], cpu[which] = frames / seconds, frames / cpu_seconds
            ratios.append(wall["slr"] / wall["bare"])
            cpu_ratios.append(cpu["slr"] / cpu["bare"])
            print(f"  round {round_ + 1} {video.name}: slr {wall['slr']:.1f} frames/s, bare MediaPipe "
                  f"{wall['bare']:.1f} frames/s, ratio {ratios[-1]:.2f}; per CPU second {cpu_ratios[-1]:.2f} "
                  f"(load {os.getloadavg()[0]:.1f})")
    print(f"extraction / bare MediaPipe loop, frames/s: median ratio {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 0.9); frames per CPU second: median "
          f"{statistics.median(cpu_ratios):.2f} (min {min(cpu_ratios):.2f}, max {max(cpu_ratios):.2f})")


def compare_workers(videos: list[Path], rounds: int, copies_each: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        copies = []
        for video in videos:
            for i in range(copies_each):
                target = Path(folder) / f"{video.stem}_{i}{video.suffix}"
                shutil.copy(video, target)
                copies.append(target)
        speedups = []
        for round_ in range(rounds):
            times = {}
            for workers in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                times[workers] = run_workers(copies, workers)
            speedups.append(times[1] / times[2])
            print(f"  round {round_ + 1}: {len(copies)} videos, 1 worker {times[1]:.1f}s, 2 workers "
                  f"{times[2]:.1f}s, speed-up {speedups[-1]:.2f} (load {os.getloadavg()[0]:.1f})")
    print(f"--workers 2 / --workers 1: median speed-up {statistics.median(speedups):.2f} "
          f"(min {min(speedups):.2f}, max {max(speedups):.2f}); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
