"""`slr extract` on hostile but real inputs and moments: a phone video stored sideways with a rotation
tag, a damaged video, file names that are not UTF-8 or nearly 255 bytes long, a stop signal or a kill
in the middle, a file size limit. Each runs the real command in a child process."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed"),
              pytest.mark.slow]
cv2 = pytest.importorskip("cv2")

VIDEOS = Path(os.environ.get("SLR_VIDEOS", Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
DOCTOR = VIDEOS / "clip_0001_doctor.mp4"


def slr(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def needs_videos() -> None:
    if not DOCTOR.is_file():
        pytest.skip(f"real videos not found at {VIDEOS} (set SLR_VIDEOS to the shared data's videos folder)")


def small_video(path: Path, frames: int = 8, size=(96, 64)) -> Path:
    writer = cv2.VideoWriter(os.fsdecode(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def meta(clip: Path) -> dict:
    with np.load(clip) as archive:
        return json.loads(str(archive["meta"]))


# -- a phone video: pixels stored sideways, a rotation tag beside them ------------------------------


def sideways_with_tag(source: Path, target: Path) -> Path:
    """The video's frames turned a quarter counter-clockwise (as a phone held upright stores them) and
    the video track's display matrix set to turn them back clockwise by 90 degrees (the tag)."""
    capture = cv2.VideoCapture(str(source))
    fps, writer = capture.get(cv2.CAP_PROP_FPS), None
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        side = cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (side.shape[1], side.shape[0]))
        writer.write(side)
    writer.release()
    capture.release()
    data = bytearray(target.read_bytes())
    at = data.find(b"tkhd")  # OpenCV's writer makes one track: the video's
    version = data[at + 4]
    matrix = at + 8 + (32 if version == 1 else 20) + 16  # after the times, ids, layer, group, volume
    fixed = [0, 1, 0, -1, 0, 0, 0, 0]  # 16.16 fixed point: a 90-degree clockwise turn, as ffmpeg writes it
    data[matrix:matrix + 36] = b"".join(struct.pack(">i", v << 16) for v in fixed) + struct.pack(">i", 1 << 30)
    target.write_bytes(bytes(data))
    return target


def _boxes(data: bytes):
    """The top-level boxes of an MP4 file: (type, bytes)."""
    at = 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        size = struct.unpack(">Q", data[at + 8:at + 16])[0] if size == 1 else (size or len(data) - at)
        yield kind, data[at:at + size]
        at += size


def half_copied(source: Path, target: Path) -> Path:
    """The first half of the video with its index (moov) moved to the front, as a web-ready
    ("faststart") MP4 is laid out: a copy cut off halfway still opens and declares every frame."""
    top = list(_boxes(source.read_bytes()))
    moov = bytearray(next(b for k, b in top if k == b"moov"))
    at = moov.find(b"stco")  # chunk offsets: everything after the index moves by its length
    while at >= 0:
        count = struct.unpack(">I", moov[at + 8:at + 12])[0]
        for p in range(at + 12, at + 12 + 4 * count, 4):
            moov[p:p + 4] = struct.pack(">I", struct.unpack(">I", moov[p:p + 4])[0] + len(moov))
        at = moov.find(b"stco", at + 12 + 4 * count)
    whole = b"".join(b for k, b in top if k == b"ftyp") + bytes(moov) + b"".join(
        b for k, b in top if k not in (b"ftyp", b"moov"))
    target.write_bytes(whole[: len(whole) // 2])
    return target


@pytest.fixture(scope="module")
def rotated_run(tmp_path_factory) -> Path:
    needs_videos()
    root = tmp_path_factory.mktemp("rotated")
    videos = root / "videos"
    videos.mkdir()
    upright = videos / "clip_0001_upright.mp4"
    upright.write_bytes(DOCTOR.read_bytes())
    sideways_with_tag(DOCTOR, videos / "clip_0002_phone.mp4")
    damaged = bytearray(DOCTOR.read_bytes())  # the middle fifth of the file zeroed: frames from there on are lost
    third, fifth = len(damaged) // 3, len(damaged) // 5
    damaged[third:third + fifth] = bytes(fifth)
    (videos / "clip_0003_damaged.mp4").write_bytes(bytes(damaged))
    half_copied(DOCTOR, videos / "clip_0004_half.mp4")
    result = slr("extract", videos, "--output-dir", root / "clips", "--fps", 5, "--workers", 1)
    (root / "result.json").write_text(json.dumps({"rc": result.returncode, "out": result.stdout, "err": result.stderr}))
    return root


def test_the_rotation_tag_is_applied_and_recorded(rotated_run):
    phone, upright = meta(rotated_run / "clips" / "clip_0002_phone.npz"), meta(rotated_run / "clips" / "clip_0001_upright.npz")
    assert (phone["rotation"], upright["rotation"]) == (90, 0)
    assert phone["frame_size"] == upright["frame_size"] == {"width": 1280, "height": 720}
    with np.load(rotated_run / "clips" / "clip_0002_phone.npz") as a, np.load(rotated_run / "clips" / "clip_0001_upright.npz") as b:
        pose_a, pose_b = a["X"][:, :50], b["X"][:, :50]  # the 25 pose points, x and y
        assert pose_a.shape == pose_b.shape
        # the signer upright, where the untagged video has them: the same pose to within compression noise
        assert np.abs(pose_a - pose_b).mean() < 0.01
        nose_y, shoulders_y = a["X"][:, 1], a["X"][:, [2 * 11 + 1, 2 * 12 + 1]].mean(axis=1)
        assert (nose_y < shoulders_y).all()  # head above the shoulders: not lying on the side


def test_a_damaged_video_is_flagged_in_the_table_the_meta_and_the_exit_status(rotated_run):
    result = json.loads((rotated_run / "result.json").read_text())
    assert result["rc"] == 1 and "Traceback" not in result["err"]
    damaged = meta(rotated_run / "clips" / "clip_0003_damaged.npz")
    assert damaged["incomplete"] is True and damaged["declared_frames"] == 62 and damaged["source_frames"] < 59
    assert meta(rotated_run / "clips" / "clip_0001_upright.npz")["incomplete"] is False
    assert f"only {damaged['source_frames']} of the 62 frames its container declares" in result["err"]
    half = meta(rotated_run / "clips" / "clip_0004_half.npz")
    assert half["incomplete"] is True and half["declared_frames"] == 62 and 20 < half["source_frames"] < 40
    assert "error: 2 video(s) incomplete:" in result["err"]
    assert "clip_0003_damaged.mp4: " in result["out"] and "FLAGGED: frames missing" in result["out"]
    # a re-run takes it again (the file may have been copied whole since); the whole ones are skipped
    again = slr("extract", rotated_run / "videos", "--output-dir", rotated_run / "clips", "--fps", 5, "--workers", 1)
    assert "2 already complete" in again.stdout and "2 clip(s) written" in again.stdout and again.returncode == 1


# -- file names --------------------------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_extracted_beside_the_others(tmp_path):
    """OpenCV crashed slr's own process (SIGSEGV, nothing extracted) on such a name."""
    videos = tmp_path / "videos"
    videos.mkdir()
    odd = Path(os.fsdecode(bytes(videos) + b"/clip_0001_caf\xe9.mp4"))
    small_video(Path(os.fsdecode(bytes(videos) + b"/plain.mp4"))).rename(odd)
    small_video(videos / "clip_0002_good.mp4")
    result = slr("extract", videos, "--output-dir", tmp_path / "clips", "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(os.fsencode(tmp_path / "clips"))) == [b"clip_0001_caf\xe9.npz", b"clip_0002_good.npz"]


def test_a_244_byte_name_is_extracted(tmp_path):
    """slr's temporary file for its clip was past 255 bytes: the clip could not be written."""
    name = "clip_0001_" + "é" * 115 + ".mp4"
    assert len(name.encode()) == 244
    video = small_video(tmp_path / name)
    result = slr("extract", video, "--output-dir", tmp_path / "clips", "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "clips").iterdir()] == [name[:-4] + ".npz"]


# -- stopped, killed, refused writes -------------------------------------------------------------------


def _started(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`slr extract` on six longer videos, one worker, signalled once the first clip is written."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(6):
        small_video(videos / f"clip_{i:04d}_v.mp4", frames=150, size=(160, 120))
    out = tmp_path / "clips"
    proc = subprocess.Popen([sys.executable, "-m", "slr", "extract", str(videos), "--output-dir", str(out),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be stopped"
    return proc, out


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_run_says_so_and_no_worker_prints_a_traceback(tmp_path, how):
    proc, out = _started(tmp_path)
    proc.send_signal(how)
    stdout, stderr = proc.communicate(timeout=120)  # until every process holding the pipes is gone
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    if how == signal.SIGTERM:
        assert proc.returncode == 143
        assert stderr.strip().splitlines()[-1] == ("error: interrupted by SIGTERM: the clips written so far are "
                                                   "kept; the same command again skips them")
    else:
        assert proc.returncode == -signal.SIGKILL
    for clip in out.glob("*.npz"):  # the clips there are whole
        with np.load(clip) as archive:
            assert archive["X"].shape == (150, 156)


def test_a_file_size_limit_is_one_message_without_zipfile_noise(tmp_path):
    video = small_video(tmp_path / "clip_0001_v.mp4", frames=40, size=(160, 120))
    limit = "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512)); " \
            "sys.argv = ['slr'] + sys.argv[1:]; runpy.run_module('slr', run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", limit, "extract", str(video), "--output-dir", str(tmp_path / "clips"),
                             "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "could not be written: the file is larger than" in result.stderr
    assert list((tmp_path / "clips").iterdir()) == []
