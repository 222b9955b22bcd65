"""`slr extract` when a video kills the process extracting it (a segfault in MediaPipe or OpenCV, the
OOM killer): a real process death, by the task of crashing_task.py, in the real worker processes;
the other videos go through the real MediaPipe extraction."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import importlib.util
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")
cv2 = pytest.importorskip("cv2")

from crashing_task import crash_on_marked  # noqa: E402
from shown import raises_shown  # noqa: E402

from slr.errors import SlrError  # noqa: E402
from slr.extract.command import extract_from_settings  # noqa: E402
from slr.extract.runner import VideoOutcome  # noqa: E402
from slr.settings import ExtractSettings  # noqa: E402


def small_videos(folder: Path, names: list[str]) -> list[Path]:
    """8 frames of 96x64 each: MediaPipe runs on them in well under a second."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for name in names:
        path = folder / f"{name}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
        for _ in range(8):
            writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        writer.release()
        paths.append(path)
    return paths


class Seen:
    """An observer that keeps what it was told."""

    def __init__(self):
        self.started, self.frames_seen, self.done, self.finished = None, 0, [], False

    def start(self, videos: int, skipped: int) -> None:
        self.started = (videos, skipped)

    def frames(self, count: int) -> None:
        self.frames_seen += count

    def video_done(self, outcome: VideoOutcome) -> None:
        self.done.append(outcome)

    def finish(self) -> None:
        self.finished = True


def extract(tmp_path: Path, names: list[str], workers: int, seen: Seen):
    videos = small_videos(tmp_path / "videos", names)
    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat,cat_name\n" + "".join(
        f"{i},{name.split('_', 2)[2]},0,test\n" for i, name in enumerate(names)))
    settings = ExtractSettings(videos=[tmp_path / "videos"], output_dir=tmp_path / "clips", classes_csv=classes,
                               workers=workers)
    return videos, extract_from_settings(settings, seen, task=crash_on_marked)


def labelled(result) -> list[str]:
    with open(result.labels_csv, newline="") as handle:
        return sorted(row["file"] for row in csv.DictReader(handle))


@pytest.mark.slow  # three worker processes start MediaPipe
def test_a_crashing_video_among_two_workers_fails_alone_and_the_others_are_extracted(tmp_path):
    names = ["clip_0001_one", "clip_0002_segv", "clip_0003_killed-once", "clip_0004_four"]
    seen = Seen()
    videos, result = extract(tmp_path, names, 2, seen)
    status = {o.video.stem: o.status for o in result.outcomes}
    # the video that kills its process every time is failed, once, with its name and the signal
    assert status == {"clip_0001_one": "written", "clip_0002_segv": "failed",
                      "clip_0003_killed-once": "written", "clip_0004_four": "written"}
    (failed,) = result.failed
    assert failed.error.startswith(str(videos[1])) and "died" in failed.error and "SIGSEGV" in failed.error
    assert not result.ok  # `slr extract` exits 1, as for any failed video
    # the one killed only once (as by the OOM killer) was tried again alone and extracted
    written = sorted(p.name for p in (tmp_path / "clips").glob("*.npz"))
    assert written == ["clip_0001_one.npz", "clip_0003_killed-once.npz", "clip_0004_four.npz"]
    for clip in written:
        with np.load(tmp_path / "clips" / clip) as archive:
            assert archive["X"].shape == (8, 156)
    assert labelled(result) == [Path(n).stem for n in written]
    # progress went on through the deaths: every video reported once, the frames of the three clips
    assert seen.started == (4, 0) and seen.finished
    assert sorted(o.video.stem for o in seen.done) == sorted(names)
    assert seen.frames_seen >= 3 * 8
    assert multiprocessing.active_children() == []


@pytest.mark.slow  # two worker processes start MediaPipe
def test_a_crashing_video_with_one_worker_fails_and_the_next_is_extracted(tmp_path):
    """One worker is a worker process too: the crash ends it, not slr."""
    names = ["clip_0001_one", "clip_0002_exit", "clip_0003_three"]
    seen = Seen()
    videos, result = extract(tmp_path, names, 1, seen)
    assert [o.status for o in result.outcomes] == ["written", "failed", "written"]
    assert result.failed[0].error.startswith(str(videos[1])) and "exit status 3" in result.failed[0].error
    assert labelled(result) == ["clip_0001_one", "clip_0003_three"]
    assert [o.video.stem for o in seen.done] == names and result.workers == 1


def test_when_every_video_kills_its_process_the_run_stops_with_one_error(tmp_path):
    """A broken install looks like every video crashing: a few deaths in a row, then one error, not
    two tries of each of the videos."""
    names = [f"clip_{i:04d}_segv{i}" for i in range(1, 9)]
    seen = Seen()
    with raises_shown(SlrError, r"died on 4 videos in a row .*SIGSEGV.*the install"):
        extract(tmp_path, names, 2, seen)
    tried = (tmp_path / "videos" / "tried.log").read_text().split()
    assert len(tried) == len(set(tried)) < len(names)  # each at most once, and not all of them
    assert multiprocessing.active_children() == []
    assert seen.done == []


@pytest.mark.slow  # `slr extract` in a child process, two worker processes
def test_slr_extract_names_a_video_whose_process_is_killed_while_writing_and_goes_on(tmp_path):
    """Through the command line, with the real extraction: the worker is killed (SIGKILL, as by the OOM
    killer) each time it is about to put one video's clip in place (slr.atomic's test kill point)."""
    names = ["clip_0001_one", "clip_0002_two", "clip_0003_three"]
    small_videos(tmp_path / "videos", names)
    (tmp_path / "classes.csv").write_text("gloss,name,cat,cat_name\n0,one,0,t\n1,two,0,t\n2,three,0,t\n")
    out = tmp_path / "clips"
    env = {**os.environ, "SLR_TEST_KILL_DURING_WRITE": "clip_0002_two.npz"}
    proc = subprocess.run([sys.executable, "-m", "slr", "extract", tmp_path / "videos", "--output-dir", out,
                           "--classes-csv", tmp_path / "classes.csv", "--workers", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"{tmp_path / 'videos' / 'clip_0002_two.mp4'}: the extraction process died while reading it "
            f"(signal 9, SIGKILL") in proc.stderr
    assert "2 clip(s) written, 0 already complete, 1 failed" in proc.stdout
    # the other clips are complete, labelled, and the killed worker's temporary file is gone
    assert sorted(p.name for p in out.iterdir()) == ["clip_0001_one.npz", "clip_0003_three.npz", "labels.csv"]
    assert (out / "labels.csv").read_text().splitlines()[1:] == ["clip_0001_one,0,0", "clip_0003_three,2,0"]


@pytest.mark.slow  # a worker process starts MediaPipe
def test_slr_predict_names_a_video_that_kills_the_extractor_and_reads_the_others(tmp_path):
    """`slr predict` on videos goes through the same worker processes: the crash is one problem."""
    from slr.analysis.predict_video import extract_video_arrays

    other = small_videos(tmp_path / "elsewhere", ["clip_0001_one"])  # the same name in two folders
    videos = small_videos(tmp_path / "videos", ["clip_0001_one", "clip_0002_segv"]) + other
    arrays, problems, _ = extract_video_arrays(videos, {}, "keypoints", {}, None, task=crash_on_marked)
    assert arrays[0].x.shape == arrays[2].x.shape == (8, 156) and arrays[1] is None
    ((video, message),) = problems
    assert video == str(videos[1]) and "SIGSEGV" in message
