"""`slr live` latency on this machine's CPU: frames per second, delay from frame to answer, and
where the time goes (decode, keypoints, model), on a real video.

1. End to end: `slr.analysis.live.run_live` over the video read frame by frame (`--no-realtime`:
   the throughput the machine allows; a camera or real-time file drops the frames beyond it),
   against a bare loop over the same frames in the same run (OpenCV decode, BGR->RGB,
   `Holistic.process`, nothing kept), alternating the two each round. The ratio of their frames/s
   is what slr adds to MediaPipe (windows, the model, the bookkeeping). The delay is from reading a
   window's last frame to its answer; a window is complete when the first frame after it arrives,
   so it includes one frame's keypoints.
2. The model part: the transformer's cost per window, for windows of several lengths: the whole
   `Classifier.probabilities` call (normalisation, padding, forward, softmax) against the bare
   forward pass on an already-prepared tensor, alternating, median of --repeats calls each.

The checkpoint: --checkpoint CKPT, or a transformer of slr's default size built here (untrained:
its cost is the same). The load average is printed with the numbers: wall-clock rates move with it.

    python benchmarks/live_latency.py                        # shared/data/videos' DOCTOR, 3 rounds
    python benchmarks/live_latency.py --video my.mp4 --checkpoint runs/SignTransformer_best.pt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from slr.analysis.classifier import load_classifier  # noqa: E402
from slr.analysis.live import run_live  # noqa: E402
from slr.extract.backend import import_cv2, import_mediapipe, native_logs_filtered  # noqa: E402
from slr.settings import LiveSettings, TrainSettings  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "videos" / "clip_0001_doctor.mp4"


class Quiet:
    """A LiveObserver that keeps the updates and shows nothing."""

    def __init__(self) -> None:
        self.updates = []

    def start(self, *args) -> None:
        pass

    def frame(self, rgb, keypoints) -> bool:
        return True

    def update(self, update) -> None:
        self.updates.append(update)

    def finish(self, summary) -> None:
        pass


def bare_loop(video: Path) -> tuple[int, float]:
    """Frames and wall seconds of the least a MediaPipe user would write."""
    cv2, mp = import_cv2(), import_mediapipe()
    started = time.perf_counter()
    frames = 0
    with native_logs_filtered():
        holistic = mp.solutions.holistic.Holistic(model_complexity=1, refine_face_landmarks=True)
        cap = cv2.VideoCapture(str(video))
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            holistic.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            frames += 1
        cap.release()
        holistic.close()
    return frames, time.perf_counter() - started


def default_checkpoint(folder: Path) -> Path:
    from slr.engine.checkpoint import save_checkpoint
    from slr.engine.checkpoint import make_checkpoint
    from slr.models.registry import build_model, model_spec

    settings = TrainSettings(model="transformer", num_gloss=105, num_cat=10)
    net = build_model("transformer", settings, 156, 105, 10)
    path = folder / "default-transformer.pt"
    save_checkpoint(make_checkpoint("model", model="transformer", model_class=model_spec("transformer").class_name,
                                    input_dim=156, num_gloss=105, num_cat=10,
                                    settings=settings.model_dump(mode="json"), model_state=net.state_dict(),
                                    class_names={"gloss": {}, "cat": {}}, epoch=1, best_metric=0.0, history=[]), path)
    return path


def end_to_end(checkpoint: Path, video: Path, rounds: int, window: float, stride: float) -> None:
    classifier = load_classifier(checkpoint)
    settings = LiveSettings(checkpoint=checkpoint, source=str(video), realtime=False, window=window, stride=stride)
    live_fps, bare_fps, delays, parts = [], [], [], {"decode": [], "keypoints": [], "model": []}
    for _ in range(rounds):
        summary = run_live(settings, Quiet(), classifier)
        live_fps.append(summary.fps)
        delays += summary.delays_ms
        parts["decode"] += summary.decode_ms
        parts["keypoints"] += summary.keypoints_ms
        parts["model"] += summary.model_ms
        frames, seconds = bare_loop(video)
        bare_fps.append(frames / seconds)
    ratios = [a / b for a, b in zip(live_fps, bare_fps)]
    print(f"end to end ({video.name}, {summary.frames} frames, windows of {window} s every {stride} s, "
          f"{summary.windows} windows per round; load average {os.getloadavg()[0]:.1f}):")
    print(f"  slr live     {statistics.median(live_fps):6.2f} frames/s  (rounds: {' '.join(f'{f:.2f}' for f in live_fps)})")
    print(f"  bare loop    {statistics.median(bare_fps):6.2f} frames/s  (rounds: {' '.join(f'{f:.2f}' for f in bare_fps)})")
    print(f"  ratio        {statistics.median(ratios):6.3f}  (rounds: {' '.join(f'{r:.3f}' for r in ratios)})")
    print(f"  frame to answer: median {statistics.median(delays):.0f} ms, 90th percentile "
          f"{np.percentile(delays, 90):.0f} ms over {len(delays)} windows")
    print("  median per frame: " + ", ".join(f"{k} {statistics.median(v):.2f} ms" for k, v in parts.items()
                                             if k != "model")
          + f"; per window: model {statistics.median(parts['model']):.2f} ms")


def model_part(checkpoint: Path, lengths: list[int], repeats: int) -> None:
    from slr.data.dataset import collate_clips

    classifier = load_classifier(checkpoint)
    loaded = classifier.loaded
    rng = np.random.default_rng(0)
    print(f"model part ({loaded.model_class}, {sum(p.numel() for p in loaded.model.parameters()):,} parameters, "
          f"{torch.get_num_threads()} torch thread(s); load average {os.getloadavg()[0]:.1f}):")
    print(f"  {'frames':>6} | {'probabilities()':>16} | {'forward only':>13} | ratio")
    for frames in lengths:
        x = rng.uniform(0.2, 0.8, size=(frames, 156)).astype(np.float32)
        from slr.analysis.inference import dataset_from_arrays

        batch = collate_clips([dataset_from_arrays(loaded, [x], ["w"])[0]])
        whole, forward = [], []
        with torch.no_grad():
            for _ in range(repeats):
                started = time.perf_counter()
                classifier.probabilities([x], ["w"])
                whole.append(time.perf_counter() - started)
                started = time.perf_counter()
                loaded.model(batch.x, batch.mask)
                forward.append(time.perf_counter() - started)
        w, f = statistics.median(whole) * 1000, statistics.median(forward) * 1000
        print(f"  {frames:>6} | {w:13.2f} ms | {f:10.2f} ms | {w / f:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=0.7)
    parser.add_argument("--stride", type=float, default=0.25)
    parser.add_argument("--lengths", default="10,20,40,60,120", help="window lengths (frames) for the model part")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--parts", default="end-to-end,model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or default_checkpoint(Path(tmp))
        if "end-to-end" in args.parts:
            end_to_end(checkpoint, args.video, args.rounds, args.window, args.stride)
        if "model" in args.parts:
            model_part(checkpoint, [int(n) for n in args.lengths.split(",")], args.repeats)


if __name__ == "__main__":
    main()
