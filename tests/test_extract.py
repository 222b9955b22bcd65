"""`slr extract`: videos -> clips, on the two real sign videos of shared/data/videos and on small
videos written here. Holistic on the real videos is the slow part: one CLI run per module, reused."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# Whether mediapipe is installed, without importing it (over a second at collection): only the slow
# tests below run it, in `slr extract`.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")
cv2 = pytest.importorskip("cv2")

from slr.data.augment import keypoint_layout  # noqa: E402
from slr.extract import layout  # noqa: E402
from slr.extract.labels import compile_pattern, name_in  # noqa: E402
from slr.errors import DataError  # noqa: E402
from slr.extract.video import FrameSelector, VideoReader, find_videos, frame_time  # noqa: E402
from slr.settings import DEFAULT_NAME_PATTERN, ExtractSettings  # noqa: E402

VIDEOS = Path(os.environ.get("SLR_VIDEOS", Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
DOCTOR, YO = "clip_0001_doctor", "clip_0002_yo"
CLASSES = "gloss,name,cat,cat_name\n0,Doctor,0,people\n1,YO,1,pronouns\n"


def slr(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def needs_videos() -> None:
    if not (VIDEOS / f"{DOCTOR}.mp4").is_file():
        pytest.skip(f"real videos not found at {VIDEOS} (set SLR_VIDEOS to the shared data's videos folder)")


# -- small pieces --------------------------------------------------------------------------------


def test_layout_is_the_one_augment_reads():
    lay = keypoint_layout(156)
    assert (layout.POINTS, layout.WIDTH) == (lay.points, lay.width)
    left, right = layout.block("left_hand"), layout.block("right_hand")
    # augment's mirror swaps exactly the two hand blocks the extractor writes
    assert list(lay.mirror_order[left.start:left.start + 21]) == list(range(right.start, right.start + 21))
    assert layout.FACE_POINTS == (1, 33, 263, 133, 362, 61, 291, 105, 334, 199, 4)
    assert [b.start + b.size for b in layout.BLOCKS] == [25, 46, 67, 78]


@pytest.mark.parametrize(
    "fps, stamps, kept",
    [
        (None, [0, 33, 67, 100], [0, 33, 67, 100]),
        (15, [0, 33, 67, 100, 133, 167, 200], [0, 67, 133, 200]),  # 30 fps -> every other frame
        (15, [1000, 1033, 1067, 1100, 1133], [1000, 1067, 1133]),  # counted from the first frame
        (60, [0, 33, 67, 100], [0, 33, 67, 100]),  # never repeats frames of a slower video
        (10, [0, 40, 80, 120, 160, 200], [0, 120, 200]),  # 25 fps to 10: the first frame at/after each 100 ms
    ],
)
def test_frames_are_chosen_by_timestamp(fps, stamps, kept):
    select = FrameSelector(fps)
    chosen = [t for t in stamps if select.keep(t)]
    assert chosen == kept


def still_images(folder: Path) -> list[Path]:
    """A PNG and a JPEG written by OpenCV, and the JPEG again under a video's name."""
    picture = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    png, jpg = folder / "still.png", folder / "still.jpg"
    assert cv2.imwrite(str(png), picture) and cv2.imwrite(str(jpg), picture)
    disguised = folder / "clip_0001_still.mp4"
    shutil.copy(jpg, disguised)
    return [png, jpg, disguised]


def test_a_still_image_is_named_as_one_not_read_as_a_video(tmp_path):
    for image in still_images(tmp_path):  # as slr predict reads a video
        with pytest.raises(DataError, match="still image, not a video") as caught:
            VideoReader(image)
        assert str(image) in str(caught.value)
    videos, problems = find_videos([tmp_path])  # as slr extract finds its videos: by content, not name
    assert videos == [] and problems == [(tmp_path / "clip_0001_still.mp4", "is a still image, not a video")]


@pytest.mark.parametrize("reported", [float("nan"), float("inf"), -3.68934881474191e20, -1.0, 1e30, 2.0**63])
def test_frame_times_that_cannot_be_real_are_counted_from_the_previous_frame(reported):
    assert frame_time(reported, None, 40.0) == 0.0
    assert frame_time(reported, 120.0, 40.0) == 160.0
    assert frame_time(80.0, 40.0, 40.0) == 80.0  # a real one is kept


def test_names_from_file_names():
    default = compile_pattern(DEFAULT_NAME_PATTERN)
    assert name_in("clip_0089_how are you", default) == "how are you"
    assert name_in("how are you", default) is None
    assert name_in("P03-hello-take2", compile_pattern(r"P\d+-(?P<name>.+)-take\d+")) == "hello"


def test_complexities_that_download_are_refused():
    with pytest.raises(ValueError, match="downloads the models of complexity 0 and 2"):
        ExtractSettings(videos=[Path("v.mp4")], output_dir=Path("out"), model_complexity=2)


@pytest.mark.slow  # starts slr in a child process
def test_without_mediapipe_the_install_command_is_named(tmp_path):
    # A directory first on the path whose `mediapipe` fails to import: as on a core install.
    fake = tmp_path / "no_mediapipe"
    fake.mkdir()
    (fake / "mediapipe.py").write_text("raise ImportError('No module named mediapipe')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    proc = slr("extract", tmp_path / "v.mp4", "--output-dir", tmp_path / "out", env=env)
    assert proc.returncode == 2
    assert 'pip install -e ".[extract]"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# -- the real videos, extracted once --------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One `slr extract` over the two real videos and an unreadable one, with labels."""
    needs_videos()
    root = tmp_path_factory.mktemp("real")
    videos = root / "videos"
    videos.mkdir()
    for name in (DOCTOR, YO):
        shutil.copy(VIDEOS / f"{name}.mp4", videos)
    (videos / "clip_0003_broken.mp4").write_bytes(b"this is not a video\n")
    (root / "classes.csv").write_text(CLASSES)
    out = root / "clips"
    proc = slr("extract", videos, "--output-dir", out, "--classes-csv", root / "classes.csv", "--workers", "1")
    return root, out, proc


def load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


@pytest.mark.slow
def test_unreadable_video_is_named_and_the_others_are_written(real_run):
    root, out, proc = real_run
    assert proc.returncode == 1, proc.stderr
    assert "clip_0003_broken.mp4" in proc.stderr and "cannot be read as a video" in proc.stderr
    assert "Traceback" not in proc.stderr and "W0000" not in proc.stderr
    assert sorted(p.name for p in out.glob("*.npz")) == [f"{DOCTOR}.npz", f"{YO}.npz"]
    assert "2 clip(s) written" in proc.stdout and "1 failed" in proc.stdout


@pytest.mark.slow
def test_clip_layout_mask_timestamps_and_meta(real_run):
    _, out, _ = real_run
    for name in (DOCTOR, YO):
        clip = load(out / f"{name}.npz")
        x, mask, stamps = clip["X"], clip["mask"], clip["timestamps_ms"]
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 156
        assert mask.dtype == bool and mask.shape == (x.shape[0], 78)
        assert stamps.dtype == np.int64 and stamps.shape == (x.shape[0],)
        # every frame of the video, at the video's own times (30 fps: about 33 ms apart)
        cap = cv2.VideoCapture(str(VIDEOS / f"{name}.mp4"))
        own = []
        while cap.read()[0]:
            own.append(round(cap.get(cv2.CAP_PROP_POS_MSEC)))
        assert list(stamps) == own
        # undetected points are 0; detected ones are not
        points = x.reshape(-1, 78, 2)
        assert not points[~mask].any()
        assert (points[mask] != 0).any(axis=-1).all()
        meta = json.loads(str(clip["meta"]))
        assert meta["video"] == f"{name}.mp4"
        assert meta["frame_size"] == {"width": 1280, "height": 720}
        assert meta["source_fps"] == pytest.approx(29.97, abs=0.05)
        assert meta["layout"] == "mediapipe-78x2" and meta["order"] == "pose25,left_hand21,right_hand21,face11"
        assert meta["face_indices"] == list(layout.FACE_POINTS)
        assert meta["extractor"] == "mediapipe.solutions.holistic" and meta["extractor_version"] == "0.10.21"
        assert set(meta["settings"]) >= {"fps", "model_complexity", "min_detection_confidence",
                                          "min_tracking_confidence", "visibility_threshold", "refine_face_landmarks",
                                          "smooth_landmarks", "features"}
        # aspect ratio kept: coordinates are of the 1280x720 frame, so a point's pixel position is x * 1280
        assert "not resized" in meta["coordinates"]


def _share(mask: np.ndarray, part: str) -> float:
    b = layout.block(part)
    return float(mask[:, b.start:b.start + b.size].any(axis=1).mean())


@pytest.mark.slow
def test_what_the_real_videos_show(real_run):
    _, out, proc = real_run
    doctor, yo = load(out / f"{DOCTOR}.npz"), load(out / f"{YO}.npz")
    assert _share(doctor["mask"], "pose") == 1.0 and _share(yo["mask"], "pose") == 1.0
    assert _share(doctor["mask"], "left_hand") >= 0.9 and _share(doctor["mask"], "right_hand") >= 0.9
    # YO is one-handed: the signer's right hand (shared/data/videos/README.md), never the left
    assert _share(yo["mask"], "right_hand") >= 0.9 and _share(yo["mask"], "left_hand") == 0.0
    # ... and the block called right hand is the hand at the pose's right wrist (pose 16), not the left (15)
    pts = yo["X"].reshape(-1, 78, 2)
    seen = yo["mask"][:, 46] & yo["mask"][:, 16] & yo["mask"][:, 15]
    wrist = pts[seen, 46]
    assert (np.linalg.norm(wrist - pts[seen, 16], axis=1) < np.linalg.norm(wrist - pts[seen, 15], axis=1)).mean() > 0.9
    # the face is pixelated in both: hardly ever found
    assert _share(doctor["mask"], "face") < 0.2 and _share(yo["mask"], "face") < 0.2
    # the detection table shows the same shares
    line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(f"{YO}.mp4:"))
    assert "55 frames  pose 100%  left hand 0%  right hand 100%" in line


@pytest.mark.slow
def test_labels_and_a_clean_validate(real_run):
    root, out, proc = real_run
    assert (out / "labels.csv").read_text().splitlines() == ["file,gloss,cat", f"{DOCTOR},0,0", f"{YO},1,1"]
    assert "'broken' is not a class" in proc.stderr  # listed, not guessed
    check = slr("validate", out, "--json")
    assert check.returncode == 0, check.stdout
    report = json.loads(check.stdout)
    assert report["ok"] and report["errors"] == 0 and report["warnings"] == 0


@pytest.mark.slow
def test_a_rerun_skips_complete_clips_and_overwrite_redoes_them(real_run, tmp_path):
    root, out, _ = real_run
    copy = tmp_path / "clips"
    shutil.copytree(out, copy)
    before = {p.name: p.stat().st_mtime_ns for p in copy.glob("*.npz")}
    proc = slr("extract", root / "videos" / f"{YO}.mp4", root / "videos" / f"{DOCTOR}.mp4", "--output-dir", copy)
    assert proc.returncode == 0, proc.stderr
    assert "2 clip(s) already complete" in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in copy.glob("*.npz")} == before
    # other settings: kept, and said so
    proc = slr("extract", root / "videos" / f"{YO}.mp4", "--output-dir", copy, "--fps", "15")
    assert proc.returncode == 0 and "made with other settings" in proc.stderr and "--overwrite" in proc.stderr
    proc = slr("extract", root / "videos" / f"{YO}.mp4", "--output-dir", copy, "--fps", "15", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    clip = load(copy / f"{YO}.npz")
    assert json.loads(str(clip["meta"]))["settings"]["fps"] == 15
    assert 26 <= len(clip["X"]) <= 29 and (np.diff(clip["timestamps_ms"]) >= 66).all()


@pytest.mark.slow
def test_a_killed_run_leaves_no_partial_clip(tmp_path):
    """Kill `slr extract` the moment a file appears in its output folder, i.e. while it writes."""
    needs_videos()
    out = tmp_path / "clips"
    out.mkdir()
    child = subprocess.Popen([sys.executable, "-m", "slr", "extract", VIDEOS / f"{YO}.mp4", "--output-dir", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if any(os.scandir(out)):
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    for clip in out.glob("*.npz"):  # a clip there must be complete
        load(clip)["X"].shape
    proc = slr("extract", VIDEOS / f"{YO}.mp4", "--output-dir", out)
    assert proc.returncode == 0, proc.stderr
    assert load(out / f"{YO}.npz")["X"].shape[0] == 55
    assert [p.name for p in out.iterdir()] == [f"{YO}.npz"]  # the killed run's temporary file is gone


# -- features, on a small video written here --------------------------------------------------------


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    """8 frames of 96x64 at 10 fps (not square: the aspect ratio must survive)."""
    path = tmp_path_factory.mktemp("small") / "clip_0001_small.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    import torch
    from torchvision.models.inception import Inception3

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "inception_random.pth"
    torch.save(Inception3(aux_logits=True, init_weights=False).state_dict(), path)
    return path


@pytest.mark.slow
def test_features_match_the_keypoint_frames_and_validate(small_video, random_weights, tmp_path):
    out = tmp_path / "clips"
    (tmp_path / "classes.csv").write_text("gloss,name,cat,cat_name\n0,small,0,test\n")
    proc = slr("extract", small_video, "--output-dir", out, "--features", "--backbone-weights", random_weights,
               "--feature-batch-size", "3", "--classes-csv", tmp_path / "classes.csv")
    assert proc.returncode == 0, proc.stderr
    clip = load(out / "clip_0001_small.npz")
    assert clip["X2048"].shape == (clip["X"].shape[0], 2048) == (8, 2048)
    assert clip["X2048"].dtype == np.float32 and np.isfinite(clip["X2048"]).all()
    meta = json.loads(str(clip["meta"]))
    assert meta["frame_size"] == {"width": 96, "height": 64}
    assert meta["features"]["weights"] == random_weights.name
    assert "resize 342, centre crop 299" in meta["features"]["preprocessing"]
    check = slr("validate", out, "--require-x2048", "--json")
    assert check.returncode == 0, check.stdout
    # random pixels hold no person: all-zero keypoint frames are the one thing validate may say
    assert json.loads(check.stdout)["problems"].keys() <= {"zero_frames"}
    # by default also the features of the same frames flipped left to right
    from slr.extract.features import FeatureExtractor
    from slr.extract.video import VideoReader

    with VideoReader(small_video) as reader:
        flipped = [np.ascontiguousarray(f.rgb[:, ::-1]) for f in reader.frames()]
    mirrored, scale = clip["X2048_mirror"], np.abs(clip["X2048"]).max()  # random weights: values near 1e-7
    assert mirrored.shape == clip["X2048"].shape and scale > 0
    assert np.abs(mirrored - clip["X2048"]).max() > 0.01 * scale
    np.testing.assert_allclose(mirrored, FeatureExtractor(random_weights, batch_size=3)(flipped), rtol=1e-4,
                               atol=1e-4 * scale)
    assert meta["settings"]["mirror_features"] is True
    # asked without them, a clip made with them is kept and the difference named
    again = slr("extract", small_video, "--output-dir", out, "--features", "--no-mirror-features",
                "--backbone-weights", random_weights)
    assert again.returncode == 0, again.stderr
    assert "made with other settings (mirror_features True here" in again.stdout + again.stderr


@pytest.mark.slow
def test_batched_features_equal_unbatched(small_video, random_weights):
    import torch

    from slr.extract.features import FeatureExtractor
    from slr.extract.video import VideoReader

    torch.set_num_threads(1)
    with VideoReader(small_video) as reader:
        frames = [f.rgb for f in reader.frames()][:5]
    batched = FeatureExtractor(random_weights, batch_size=4)(frames)
    alone = FeatureExtractor(random_weights, batch_size=1)(frames)
    assert batched.shape == (5, 2048)
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-4)
    # the preprocessing is torchvision's for these weights
    from torchvision.models import Inception_V3_Weights

    net = FeatureExtractor(random_weights, batch_size=4)
    expected = Inception_V3_Weights.IMAGENET1K_V1.transforms()(torch.from_numpy(frames[0]).permute(2, 0, 1)[None])
    assert expected.shape[-2:] == (299, 299)
    with torch.inference_mode():
        np.testing.assert_allclose(net.net(expected).numpy()[0], batched[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_no_weights_is_one_message_saying_where_to_put_them(small_video, tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty_torch_home")}
    proc = slr("extract", small_video, "--output-dir", tmp_path / "clips", "--features", env=env)
    assert proc.returncode == 2
    assert "inception_v3_google-0cc3c7bd.pth" in proc.stderr and "--backbone-weights" in proc.stderr
    assert str(tmp_path / "empty_torch_home") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "clips").glob("*.npz")) if (tmp_path / "clips").exists() else True


# -- training on extracted clips, and predict on the videos ----------------------------------------


@pytest.fixture(scope="module")
def trained(real_run, tmp_path_factory):
    """A tiny transformer trained one epoch on the two extracted clips."""
    _, out, _ = real_run
    runs = tmp_path_factory.mktemp("runs")
    proc = slr("train", "transformer", "--keypoints-train", out, "--keypoints-val", out, "--num-gloss", "2",
               "--num-cat", "2", "--epochs", "1", "--batch-size", "2", "--d-model", "16", "--num-heads", "2",
               "--num-layers", "1", "--ff-dim", "32", "--output-dir", runs, "--no-plots", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return runs / "SignTransformer_best.pt"


@pytest.mark.slow
def test_checkpoints_record_how_their_clips_were_extracted(real_run, trained):
    import torch

    _, out, _ = real_run
    state = torch.load(trained, weights_only=True)
    meta = json.loads(str(load(out / f"{DOCTOR}.npz")["meta"]))
    assert state["extraction"]["settings"] == meta["settings"]
    assert state["extraction"]["extractor_version"] == "0.10.21"


@pytest.mark.slow
def test_a_videos_answer_is_its_clips_answer(real_run, trained):
    root, out, _ = real_run
    video = root / "videos" / f"{YO}.mp4"
    proc = slr("predict", trained, out / f"{YO}.npz", video, "--json", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    from_clip, from_video = json.loads(proc.stdout)
    assert from_video["clip"] == str(video) and from_video["frames"] == from_clip["frames"] == 55
    assert from_video["top_glosses"] == from_clip["top_glosses"] and from_video["cat"] == from_clip["cat"]
    # a flag replaces the stored setting: 15 of the video's 30 frames per second
    proc = slr("predict", trained, video, "--json", "--fps", "15")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["frames"] == 28


@pytest.mark.slow  # starts slr in a child process
def test_a_video_without_frames_is_named_and_nothing_is_written(tmp_path):
    empty = tmp_path / "clip_0001_empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64)).release()  # a container, no frames
    proc = slr("extract", empty, "--output-dir", tmp_path / "clips")
    assert proc.returncode == 1
    assert str(empty) in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "clips").iterdir())


@pytest.mark.slow  # starts slr in a child process
def test_a_still_image_given_to_extract_is_one_message(small_video, tmp_path):
    png, _, disguised = still_images(tmp_path)
    proc = slr("extract", png, disguised, small_video, "--output-dir", tmp_path / "clips", "--workers", "1")
    assert proc.returncode == 1, proc.stderr  # the video is extracted, the images named
    assert "Traceback" not in proc.stderr and "Overflow" not in proc.stderr
    for image in (png, disguised):
        assert f"{image}: is a still image, not a video" in proc.stderr
    assert [p.name for p in (tmp_path / "clips").glob("*.npz")] == [small_video.with_suffix(".npz").name]

    alone = slr("extract", disguised, "--output-dir", tmp_path / "none")  # nothing else: nothing to do
    assert alone.returncode == 2 and f"{disguised}: is a still image, not a video" in alone.stderr
    assert "Traceback" not in alone.stderr and not (tmp_path / "none").exists()


@pytest.mark.parametrize("inputs, named", [
    (["emptydir"], ["emptydir: no video files"]),
    (["nofile.mp4"], ["nofile.mp4: not found"]),
    (["nofile.mp4", "emptydir"], ["nofile.mp4: not found", "emptydir: no video files"]),
])
def test_nothing_to_extract_is_one_error_and_no_output_folder(tmp_path, inputs, named):
    from slr.extract.command import extract_from_settings

    (tmp_path / "emptydir").mkdir()
    (tmp_path / "emptydir" / "notes.txt").write_text("not a video\n")
    out = tmp_path / "ex" / "none"
    settings = ExtractSettings(videos=[tmp_path / name for name in inputs], output_dir=out, workers=1)
    with pytest.raises(DataError) as caught:
        extract_from_settings(settings)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    for needle in named:
        assert str(tmp_path / needle) in message
    assert not (tmp_path / "ex").exists()


@pytest.mark.slow  # starts slr in a child process
def test_a_missing_input_beside_a_video_is_reported_once_and_the_video_extracted(small_video, tmp_path):
    missing = tmp_path / "nofile.mp4"
    proc = slr("extract", missing, small_video, "--output-dir", tmp_path / "clips", "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    output = proc.stdout + proc.stderr
    assert output.count("nofile.mp4") == 1 and f"{missing}: not found" in proc.stderr
    assert [p.name for p in (tmp_path / "clips").glob("*.npz")] == [small_video.with_suffix(".npz").name]


@pytest.mark.slow
def test_a_features_model_predicts_a_video_as_its_extracted_clip(small_video, random_weights, tmp_path):
    """iv3_gru on X2048: predict computes the video's features as `slr extract --features` does. The
    checkpoint records no extraction (its clips were not made by slr extract): the defaults, said so."""
    import torch

    from slr.engine.checkpoint import FORMAT, VERSION, save_checkpoint
    from slr.models.registry import build_model
    from slr.settings import TrainSettings

    settings = TrainSettings(model="iv3_gru", num_gloss=3, num_cat=2, gru_hidden=8, gru_layers=1)
    torch.manual_seed(0)
    net = build_model("iv3_gru", settings, 2048, 3, 2)
    ckpt = tmp_path / "gru.pt"
    save_checkpoint({"format": FORMAT, "version": VERSION, "model": "iv3_gru", "model_class": "InceptionV3GRU",
                     "input_dim": 2048, "num_gloss": 3, "num_cat": 2, "settings": settings.model_dump(mode="json"),
                     "model_state": net.state_dict(), "class_names": {"gloss": {}, "cat": {}}, "epoch": 1,
                     "best_metric": 0.0, "history": []}, ckpt)
    out = tmp_path / "clips"
    assert slr("extract", small_video, "--output-dir", out, "--features", "--no-mirror-features",
               "--backbone-weights", random_weights).returncode == 0
    assert "X2048_mirror" not in load(out / "clip_0001_small.npz")
    proc = slr("predict", ckpt, out / "clip_0001_small.npz", small_video, "--backbone-weights", random_weights,
               "--json", "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    assert "does not record how its training clips were extracted" in proc.stderr
    from_clip, from_video = json.loads(proc.stdout)
    assert from_video["frames"] == from_clip["frames"] == 8
    for a, b in zip(from_clip["top_glosses"], from_video["top_glosses"]):
        assert a["id"] == b["id"] and a["prob"] == pytest.approx(b["prob"], abs=1e-5)


@pytest.mark.slow  # starts slr in a child process
def test_two_videos_for_one_clip_are_refused_before_anything_is_written(small_video, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(small_video, tmp_path / folder)
    proc = slr("extract", tmp_path / "a", tmp_path / "b", "--output-dir", tmp_path / "out")
    assert proc.returncode == 2 and "would both be written to" in proc.stderr
    assert not (tmp_path / "out").exists()
