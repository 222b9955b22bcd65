"""The yardstick of issue 24 (benchmarks/reference_gru.py) and the folds it is measured on
(benchmarks/defaults_vs_reference.py): the reference normalises each clip as the issue says, and a
leave-one-signer-out fold never puts one person on both sides."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from defaults_vs_reference import kinect_split, summarise  # noqa: E402
from reference_gru import normalise_clip, train_reference  # noqa: E402


def test_reference_normalises_each_clip_on_its_detected_points() -> None:
    rng = np.random.default_rng(0)
    clip = rng.normal(5.0, 3.0, size=(12, 6)).astype(np.float32)  # 3 points x (x, y)
    clip[:4, 2:4] = 0.0  # point 1 undetected in the first 4 frames
    out, detected = normalise_clip(clip)
    pts = out.reshape(12, 3, 2)
    assert not detected[:4, 1].any() and detected[4:, 1].all()
    assert (pts[:4, 1] == 0).all()  # undetected points stay 0
    seen = pts[detected]
    assert np.allclose(seen.mean(0), 0.0, atol=1e-5)  # centred on the detected points' mean
    assert seen.std() == pytest.approx(1.0, abs=1e-5)  # one standard deviation for the whole clip
    # the same clip moved and scaled gives the same numbers: nothing of where or how big is left
    moved = np.where(clip != 0, clip * 2.5 + 7.0, 0.0).astype(np.float32)
    assert np.allclose(normalise_clip(moved)[0], out, atol=1e-4)


def _people(root: Path) -> None:
    clips = root / "clips"
    clips.mkdir(parents=True)
    rng = np.random.default_rng(1)
    with open(clips / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "gloss", "cat", "signer", "rep"])
        for i, (signer, gloss) in enumerate((s, g) for s in ("ann", "bob", "cy") for g in range(3) for _ in range(2)):
            name = f"clip_{i:04d}_w{gloss}"
            # each word its own motion of 4 points: learnable in a few epochs
            t = np.linspace(0, 1, 10 + i % 5)[:, None]
            x = np.sin(2 * np.pi * (gloss + 1) * t + np.arange(8)) + rng.normal(0, 0.05, (len(t), 8))
            np.savez(clips / f"{name}.npz", X=x.astype(np.float32))
            writer.writerow([name, gloss, 0, signer, 1])


def test_leave_one_signer_out_keeps_each_person_on_one_side(tmp_path: Path) -> None:
    _people(tmp_path / "set")
    train, val, glosses, cats = kinect_split(tmp_path / "set", "bob", tmp_path / "fold")
    with open(tmp_path / "set" / "clips" / "labels.csv", newline="", encoding="utf-8") as handle:
        signer_of = {r["file"]: r["signer"] for r in csv.DictReader(handle)}

    def people(folder: Path) -> set[str]:
        with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
            return {signer_of[r["file"]] for r in csv.DictReader(handle)}

    assert people(val) == {"bob"} and people(train) == {"ann", "cy"}
    assert (glosses, cats) == (3, 1)
    # the reference trains on the fold as it is written (linked clips, labels.csv)
    curve = train_reference(train, val, glosses, epochs=25, seed=0)
    assert len(curve) == 25 and max(curve) == 1.0


def test_paired_difference_is_per_seed() -> None:
    records = [{"config": c, "seed": s, "fold": f, "best": acc, "last": acc}
               for c, per_seed in (("reference", (0.5, 0.7)), ("defaults", (0.6, 0.9)))
               for s, acc in enumerate(per_seed) for f in ("a", "b")]
    rows = summarise(records, "best")
    defaults = next(r for r in rows if r.startswith("| defaults"))
    assert "0.750 ± 0.212" in defaults  # mean over seeds of the fold means
    assert "0.150 ± 0.071" in defaults  # paired: +0.1 and +0.2
