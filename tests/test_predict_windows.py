"""`slr predict --window`, the length note, and the signals that say when an answer should not be
trusted (detection shares, uncertain answers, the classes file's category), on clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slr.analysis.predict import predict_clips
from slr.analysis.sanity import detection_shares
from slr.analysis.windows import WindowClock, length_note, window_spans
from slr.cli import app
from slr.engine.checkpoint import save_checkpoint

from test_predict import NAMES, write_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained small transformer that records 20-frame training clips (as asl-words' are)."""
    path = write_checkpoint(tmp_path_factory.mktemp("windows") / "tr.pt", "transformer", 156, class_names=NAMES)
    state = torch.load(path, weights_only=True)
    state["clip_frames"] = {"min": 20, "median": 20, "max": 20}
    save_checkpoint(state, path)
    return path


def sentence(synthetic_dir: Path, target: Path, count: int = 4) -> tuple[Path, np.ndarray]:
    """`count` synthetic clips one after another, as one clip (a "sentence"), with 30 fps timestamps."""
    parts = []
    for path in sorted(synthetic_dir.glob("*.npz"))[:count]:
        with np.load(path) as clip:
            parts.append(clip["X"])
    x = np.concatenate(parts).astype(np.float32)
    np.savez(target, X=x, timestamps_ms=np.round(np.arange(len(x)) * 1000 / 30).astype(np.int64))
    return target, x


# --- windows ------------------------------------------------------------------------------------------------


def test_windows_cover_the_clip_at_the_stride_and_end_with_its_last_frame():
    times = np.arange(62) / 30  # the DOCTOR video: 62 frames at 30 fps
    spans = window_spans(times, 0.7, 0.25)
    assert [round(s.start_s, 2) for s in spans[:-1]] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    for s in spans:
        inside = np.nonzero((times >= s.start_s - 1e-9) & (times < s.end_s - 1e-9))[0]
        assert (s.start, s.end) == (inside[0], inside[-1] + 1)  # exactly the frames of its time
    assert spans[-1].end == 62 and spans[-1].end_s == pytest.approx(62 / 30)  # the end is never left out
    assert spans[-1].end_s - spans[-1].start_s == pytest.approx(0.7)
    # shorter than a window: one window, the whole clip
    (only,) = window_spans(np.arange(10) / 30, 1.0, 0.25)
    assert (only.start, only.end) == (0, 10)


def test_frames_one_at_a_time_give_the_windows_of_the_whole_clip():
    """Live feeds frames as they come; predict a whole clip: the same windows, also on uneven times."""
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.09, size=300))
    clock = WindowClock(1.1, 0.3)
    seen = []
    for t in times:
        seen += clock.add(t)
        assert clock.first_needed <= (seen[-1].start if seen else 0)  # kept frames still hold the last window
    seen += clock.finish()
    assert seen == window_spans(times, 1.1, 0.3)


def test_each_window_is_answered_as_that_part_of_the_clip_alone(checkpoint, synthetic_dir, tmp_path):
    clip, x = sentence(synthetic_dir, tmp_path / "sentence.npz")
    result = runner.invoke(app, ["predict", str(checkpoint), str(clip), "--window", "0.5", "--stride", "0.25",
                                 "--top-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.stdout)
    windows = answer["windows"]
    assert answer["seconds"] == pytest.approx(len(x) / 30, abs=1e-3) and answer["length_note"] is None
    assert [w["start"] for w in windows[:3]] == [0.0, 0.25, 0.5] and windows[-1]["end"] == answer["seconds"]
    for w in windows:
        first = round(w["start"] * 30 - 1e-6 + 0.5) if w is not windows[-1] else len(x) - w["frames"]
        part = tmp_path / f"part{first}.npz"
        np.savez(part, X=x[first:first + w["frames"]])
        alone = predict_clips(checkpoint, [part], top_k=3)[0]
        assert [g["id"] for g in w["top_glosses"]] == [g[0] for g in alone.glosses]
        assert [g["prob"] for g in w["top_glosses"]] == pytest.approx([g[2] for g in alone.glosses], abs=1e-5)
    # segments: consecutive windows merged, in order, covering the whole clip
    segments = answer["segments"]
    assert sum(s["windows"] for s in segments) == len(windows)
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == windows[-1]["end"]
    assert all(a["gloss"] != b["gloss"] or a["confident"] != b["confident"] for a, b in zip(segments, segments[1:]))
    text = runner.invoke(app, ["predict", str(checkpoint), str(clip), "--window", "0.5"])
    assert text.exit_code == 0 and "segments:" in text.stdout and "windows:" in text.stdout
    assert f"{len(windows)} windows of 0.50 s" in text.stdout or "windows of 0.50 s" in text.stdout


def test_clips_without_times_take_the_given_rate_and_say_which(checkpoint, synthetic_dir, tmp_path):
    _, x = sentence(synthetic_dir, tmp_path / "timed.npz")
    untimed = tmp_path / "untimed.npz"
    np.savez(untimed, X=x)
    result = runner.invoke(app, ["predict", str(checkpoint), str(untimed), "--window", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert "records no frame times" in result.stderr and "--clip-fps" in result.stderr
    assert json.loads(result.stdout)[0]["seconds"] == pytest.approx(len(x) / 30, abs=1e-3)
    result = runner.invoke(app, ["predict", str(checkpoint), str(untimed), "--window", "1", "--clip-fps", "10",
                                 "--json"])
    assert result.exit_code == 0 and "records no frame times" not in result.stderr
    assert json.loads(result.stdout)[0]["seconds"] == pytest.approx(len(x) / 10, abs=1e-3)


def test_stride_without_window_is_a_usage_error(checkpoint, synthetic_dir):
    clip = sorted(synthetic_dir.glob("*.npz"))[0]
    result = runner.invoke(app, ["predict", str(checkpoint), str(clip), "--stride", "0.5"])
    assert result.exit_code == 2 and "--stride needs --window" in result.output and "Traceback" not in result.output


# --- the length note --------------------------------------------------------------------------------------


def test_a_clip_much_longer_than_the_training_clips_says_so_and_suggests_windows(checkpoint, synthetic_dir, tmp_path):
    long_clip, x = sentence(synthetic_dir, tmp_path / "long.npz", count=6)
    assert len(x) > 40  # over twice the 20 frames the checkpoint records
    short_clip = tmp_path / "short.npz"
    np.savez(short_clip, X=x[:8])
    fine = tmp_path / "fine.npz"
    np.savez(fine, X=x[:20])
    result = runner.invoke(app, ["predict", str(checkpoint), str(long_clip), str(short_clip), str(fine), "--json"])
    assert result.exit_code == 0, result.output
    notes = [a["length_note"] for a in json.loads(result.stdout)]
    assert f"{len(x)} frames" in notes[0] and "longest training clip (20)" in notes[0] and "--window" in notes[0]
    assert notes[1].startswith("only 8 frames") and notes[2] is None
    text = runner.invoke(app, ["predict", str(checkpoint), str(long_clip)])
    assert "--window" in text.stdout and "{{" not in text.stdout  # the flag, as the user types it
    # a checkpoint that records no lengths (older ones) says nothing
    assert length_note(500, None, 30.0) is None


# --- sanity signals ---------------------------------------------------------------------------------------


def test_detection_shares_are_read_from_the_keypoints():
    x = np.zeros((10, 156), np.float32)
    x[:, 0:50] = 0.5  # the pose (points 0-24) in every frame
    x[:4, 2 * 25:2 * 46] = 0.3  # the left hand (points 25-45) in 4 of 10 frames
    assert detection_shares(x) == {"pose": 1.0, "left_hand": 0.4, "right_hand": 0.0}
    assert detection_shares(np.zeros((5, 84), np.float32)) is None  # another layout: not known


def test_no_hand_uncertain_and_a_disagreeing_category_are_said(checkpoint, synthetic_dir, tmp_path):
    with np.load(sorted(synthetic_dir.glob("*.npz"))[0]) as clip:
        x = clip["X"].copy()
    x[:, 2 * 25:2 * 67] = 0  # no hand in any frame
    hands_gone = tmp_path / "no_hands.npz"
    np.savez(hands_gone, X=x)
    first = runner.invoke(app, ["predict", str(checkpoint), str(hands_gone), "--json"])
    answer = json.loads(first.stdout)[0]
    assert answer["no_hand"] is True and answer["detection"]["left_hand"] == answer["detection"]["right_hand"] == 0
    # a classes file that puts the top gloss in the other category than the category head's answer
    top, head = answer["gloss"]["id"], answer["cat"]["id"]
    classes = tmp_path / "classes.csv"
    rows = [f"{g},G{g},{(1 - head) if g == top else head},{'first' if ((1 - head) if g == top else head) == 0 else 'second'}"
            for g in range(5)]
    classes.write_text("gloss,name,cat,cat_name\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["predict", str(checkpoint), str(hands_gone), "--classes", str(classes),
                                 "--uncertain-below", "1", "--json"])
    answer = json.loads(result.stdout)[0]
    assert answer["uncertain"] is True and answer["category_disagrees"] is True
    assert answer["gloss_category"]["id"] == 1 - head
    text = runner.invoke(app, ["predict", str(checkpoint), str(hands_gone), "--classes", str(classes),
                               "--uncertain-below", "1"]).stdout
    assert "no hand was found in any frame" in text
    assert "uncertain: " in text and "below --uncertain-below 1.0" in text
    cat_names = {0: "first", 1: "second"}
    assert f"the category head says {cat_names[head]}" in text and f"G{top} is in {cat_names[1 - head]}" in text
    quiet = json.loads(runner.invoke(app, ["predict", str(checkpoint), str(hands_gone), "--uncertain-below", "0",
                                           "--json"]).stdout)[0]
    assert quiet["uncertain"] is False and quiet["category_disagrees"] is False  # no classes file: no category known


def test_training_records_the_training_clips_frame_counts(reference_runs, synthetic_dir):
    lengths = []
    for path in synthetic_dir.glob("*.npz"):
        with np.load(path) as clip:
            lengths.append(len(clip["X"]))
    lengths.sort()
    state = torch.load(reference_runs["transformer"].best, weights_only=True)
    assert state["clip_frames"] == {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]}


def test_evaluate_counts_the_signals_and_how_right_answers_are_under_each(reference_runs, synthetic_dir, tmp_path):
    import csv
    import shutil

    clips = tmp_path / "clips"
    shutil.copytree(synthetic_dir, clips)
    handless = sorted(clips.glob("*.npz"))[3]
    with np.load(handless) as clip:
        arrays = dict(clip)
    arrays["X"][:, 2 * 25:2 * 67] = 0
    np.savez(handless, **arrays)
    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat,cat_name\n" + "".join(f"{g},G{g},{g % 2},c{g % 2}\n" for g in range(5)))
    out = tmp_path / "evaluation"
    result = runner.invoke(app, ["evaluate", str(reference_runs["transformer"].best), "--keypoints", str(clips),
                                 "--classes", str(classes), "--uncertain-below", "0.3", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    sanity = json.loads((out / "metrics.json").read_text())["sanity"]
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    uncertain = [r for r in rows if float(r["pred_gloss_prob"]) < 0.3]
    assert sanity["uncertain"] == {"clips": len(uncertain),
                                   "gloss_correct": sum(r["gloss_correct"] == "True" for r in uncertain)}
    assert sanity["certain"]["clips"] == len(rows) - len(uncertain)
    disagree = [r for r in rows if int(r["pred_gloss"]) % 2 != int(r["pred_cat"])]
    assert sanity["category_disagrees"] == {"checked": len(rows), "clips": len(disagree),
                                            "gloss_correct": sum(r["gloss_correct"] == "True" for r in disagree)}
    assert sanity["no_hand"] == {"checked": len(rows), "clips": [handless.stem]}
    assert "uncertain (top probability below --uncertain-below 0.3)" in result.stdout
    assert f"no hand found in any frame: 1 of {len(rows)} clips: {handless.stem}" in result.stdout
