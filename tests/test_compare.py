"""`slr compare`: McNemar's exact test by hand, and two real checkpoints (a transformer on keypoint
clips, an iv3_gru on feature clips of the same recordings) compared against `slr evaluate`."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from math import comb
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import slr.analysis.stats as stats
from slr.analysis.stats import discordant_pairs, mcnemar_exact
from slr.cli import app
from slr.engine.checkpoint import load_checkpoint, save_checkpoint
from test_evaluate import assert_one_line_error, assert_png, write_checkpoint

runner = CliRunner()


def exact_p(b: int, c: int) -> float:
    """The textbook formula with exact fractions: min(1, 2 * sum_{i<=min(b,c)} C(n, i) / 2^n)."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(Fraction(1), Fraction(2 * sum(comb(n, i) for i in range(min(b, c) + 1)), 2**n)))


# --- McNemar's exact test ---------------------------------------------------------------------


def test_mcnemar_small_counts_by_hand():
    assert mcnemar_exact(0, 0) == 1.0  # no discordant clip: nothing to tell the models apart
    assert mcnemar_exact(1, 0) == 1.0  # 2 * C(1,0) / 2 = 1
    assert mcnemar_exact(5, 0) == 2 / 32  # 2 * 1 / 2^5
    assert mcnemar_exact(0, 5) == 2 / 32
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096, rel=1e-15)  # 0.0386
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(3, 3) == 1.0  # the two tails overlap: capped at 1
    assert mcnemar_exact(6, 2) == pytest.approx(2 * (1 + 8 + 28) / 256)  # 0.289
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_mcnemar_large_counts_do_not_overflow():
    # The textbook sum is slow beyond a few thousand clips; the log-space test below covers more.
    for b, c in [(400, 470), (1200, 1300)]:
        assert mcnemar_exact(b, c) == pytest.approx(exact_p(b, c), rel=1e-12)
    assert mcnemar_exact(0, 3000) == 0.0  # 2 / 2^3000 is below the smallest float: 0, not an error
    assert 0.0 < mcnemar_exact(1000, 1250) < 1e-6


def test_mcnemar_log_space_path_matches_the_exact_one(monkeypatch):
    exact = {bc: mcnemar_exact(*bc) for bc in [(9000, 9300), (30, 5), (100, 160), (7, 7)]}
    monkeypatch.setattr(stats, "EXACT_UP_TO", 0)  # every count through the log-space sum
    for bc, p in exact.items():
        assert mcnemar_exact(*bc) == pytest.approx(p, rel=1e-9)
    # Beyond the exact range by default: still a probability, and the same on both sides.
    monkeypatch.undo()
    p = mcnemar_exact(15000, 15400)
    assert 0.0 < p < 0.05 and p == pytest.approx(mcnemar_exact(15400, 15000))


def test_discordant_pairs():
    assert discordant_pairs([1, 1, 0, 0, 1], [1, 0, 1, 0, 0]) == (2, 1)
    with pytest.raises(ValueError):
        discordant_pairs([1], [1, 0])


# --- two real checkpoints on the same recordings ---------------------------------------------

@pytest.fixture
def runs(reference_runs) -> dict[str, Path]:
    """The session's reference runs (conftest): a transformer trained on the keypoint clips and an
    iv3_gru on the feature clips (the synthetic clips hold both), each with its log.csv beside its
    checkpoints. Read-only."""
    return {model: run.best for model, run in reference_runs.items()}


@pytest.fixture
def recordings(synthetic_dir, tmp_path):
    """keypoints/ and features/ directories of the same recordings, each lacking some clips; one labels.csv."""
    labels = pd.read_csv(synthetic_dir / "labels.csv")
    names = list(labels["file"].map(lambda f: f[:-4] if f.endswith(".npz") else f))
    kp, feat = tmp_path / "keypoints", tmp_path / "features"
    for directory in (kp, feat):
        shutil.copytree(synthetic_dir, directory)
        (directory / "labels.csv").unlink()
    no_kp, no_feat = names[5:6], names[10:13]
    for name in no_kp:
        (kp / f"{name}.npz").unlink()
    for name in no_feat:
        (feat / f"{name}.npz").unlink()
    labels_csv = tmp_path / "labels.csv"
    shutil.copy(synthetic_dir / "labels.csv", labels_csv)
    common = [n for n in names if n not in no_kp + no_feat]
    return {"keypoints": kp, "features": feat, "labels": labels_csv, "no_kp": no_kp, "no_feat": no_feat,
            "common": common, "all": names}


def _evaluate_alone(ckpt: Path, flag: str, directory: Path, labels: Path, out: Path) -> dict:
    result = runner.invoke(app, ["evaluate", str(ckpt), flag, str(directory), "--labels-csv", str(labels),
                                 "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_side_by_side_equals_evaluate_alone(runs, recordings, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]),
                                 "--keypoints", str(recordings["keypoints"]), "--features", str(recordings["features"]),
                                 "--labels-csv", str(recordings["labels"]), "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    # Matched by name: only the recordings both directories hold, the others named.
    common = recordings["common"]
    assert report["clips"] == len(common) and report["labelled_clips"] == len(recordings["all"])
    assert report["missing"] == {str(recordings["keypoints"]): recordings["no_kp"],
                                 str(recordings["features"]): recordings["no_feat"]}
    for name in recordings["no_kp"] + recordings["no_feat"]:
        assert f"{name}.npz" in result.stderr
    assert f"compared on the {len(common)} clips" in result.stderr

    # Each column equals `slr evaluate` of that checkpoint alone on the same clips.
    subset = tmp_path / "subset.csv"
    labels = pd.read_csv(recordings["labels"])
    labels[labels["file"].isin(common) | labels["file"].str.removesuffix(".npz").isin(common)].to_csv(subset, index=False)
    alone = {
        "A": _evaluate_alone(runs["transformer"], "--keypoints", recordings["keypoints"], subset, tmp_path / "ea"),
        "B": _evaluate_alone(runs["iv3_gru"], "--features", recordings["features"], subset, tmp_path / "eb"),
    }
    by_label = {r["label"]: r for r in report["runs"]}
    assert by_label["A"]["model"] == "transformer" and by_label["B"]["model"] == "iv3_gru"
    for label, evaluated in alone.items():
        assert evaluated["clips"] == len(common)
        for key in ("top1", "top5", "macro_f1"):
            assert by_label[label]["gloss"][key] == pytest.approx(evaluated["gloss"][key])
        assert by_label[label]["cat"]["top1"] == pytest.approx(evaluated["cat"]["top1"])

    # McNemar on the paired answers, from the two evaluations' predictions, computed by hand.
    preds_a = pd.read_csv(tmp_path / "ea" / "predictions.csv").set_index("file")
    preds_b = pd.read_csv(tmp_path / "eb" / "predictions.csv").set_index("file").loc[preds_a.index]
    tests = {t["task"]: t for t in report["mcnemar"] if t["first"] == "A" and t["second"] == "B"}
    for task in ("gloss", "cat"):
        a, b = preds_a[f"{task}_correct"].to_numpy(), preds_b[f"{task}_correct"].to_numpy()
        only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
        assert (tests[task]["only_first"], tests[task]["only_second"]) == (only_a, only_b)
        assert tests[task]["both_right"] == int((a & b).sum()) and tests[task]["both_wrong"] == int((~a & ~b).sum())
        assert tests[task]["p_value"] == pytest.approx(exact_p(only_a, only_b))
        assert tests[task]["meaning"]

    # The classes that differ most: per-class accuracy of each evaluation, largest spread first.
    acc = {label: {c["id"]: c["accuracy"] for c in e["gloss"]["per_class"] if c["accuracy"] is not None}
           for label, e in alone.items()}
    expected = sorted((i for i in acc["A"] if acc["A"][i] != acc["B"][i]), key=lambda i: (-abs(acc["A"][i] - acc["B"][i]), i))
    assert [d["id"] for d in report["differing_classes"]] == expected[:10]
    for d in report["differing_classes"]:
        assert d["accuracy"] == pytest.approx([acc["A"][d["id"]], acc["B"][d["id"]]])
        assert d["spread"] == pytest.approx(abs(acc["A"][d["id"]] - acc["B"][d["id"]]))

    # Files: the JSON printed, the per-class table, the two runs' curves in one PNG.
    assert json.loads((out / "comparison.json").read_text())["runs"] == report["runs"]
    assert len(pd.read_csv(out / "per_class.csv")) == len(acc["A"])
    assert_png(out / "curves.png")
    assert report["files"]["curves_png"] == str(out / "curves.png")
    assert all(r["log_csv"] for r in report["runs"])


def test_plain_output_reads_side_by_side(runs, recordings, tmp_path):
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]),
                                 "--keypoints", str(recordings["keypoints"]), "--features", str(recordings["features"]),
                                 "--labels-csv", str(recordings["labels"]), "--output-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.split() == ["A", "B"])
    assert header
    top1 = next(line for line in lines if line.startswith("gloss top-1"))
    assert len(top1.split()) == 4 and top1.count("%") == 2
    assert any(line.startswith("McNemar's exact test, gloss, A vs B") for line in lines)


def test_a_run_without_log_is_named_and_left_out_of_the_curves(runs, recordings, tmp_path):
    lonely = tmp_path / "elsewhere" / "SignTransformer_best.pt"
    lonely.parent.mkdir()
    shutil.copy(runs["transformer"], lonely)  # no log.csv here; the stored log path is relative
    shutil.rmtree(tmp_path / "elsewhere" / "log.csv", ignore_errors=True)
    out = tmp_path / "c"
    result = runner.invoke(app, ["compare", str(lonely), str(runs["iv3_gru"]),
                                 "--keypoints", str(recordings["keypoints"]), "--features", str(recordings["features"]),
                                 "--labels-csv", str(recordings["labels"]), "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["log_csv"] is None for r in report["runs"]] == [True, False]
    assert f"A ({lonely}): no training log found" in result.stderr
    assert_png(out / "curves.png")  # drawn from B's log alone


def test_default_labels_and_output_dir(reference_run_copy, runs, synthetic_dir):
    # Both models on the same directory of recordings (the clips hold keypoints and features).
    runs = {**runs, "transformer": reference_run_copy("transformer").best}  # the outputs go beside it
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]),
                                 "--keypoints", str(synthetic_dir), "--features", str(synthetic_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels_csv"] == str(synthetic_dir / "labels.csv")
    assert report["clips"] == report["labelled_clips"] == 40 and result.stderr == ""
    assert Path(report["files"]["comparison_json"]) == runs["transformer"].parent / "comparison" / "comparison.json"


# --- refusals: one message, exit 2 ------------------------------------------------------------


def test_nothing_in_common_is_refused(runs, recordings, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]),
                                 "--keypoints", str(recordings["keypoints"]), "--features", str(empty),
                                 "--labels-csv", str(recordings["labels"]), "--output-dir", str(tmp_path / "c")])
    assert_one_line_error(result, "labels.csv", "none of its 40 clips", "same file name")
    assert not (tmp_path / "c").exists()


def test_checkpoints_of_other_classes_are_refused(runs, recordings, tmp_path):
    seven = write_checkpoint(tmp_path / "seven.pt", input_dim=156, num_gloss=7, num_cat=2)
    args = ["--keypoints", str(recordings["keypoints"]), "--features", str(recordings["features"]),
            "--labels-csv", str(recordings["labels"]), "--output-dir", str(tmp_path / "c")]
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(seven), *args])
    assert_one_line_error(result, "seven.pt", "cannot be compared", "7 gloss classes", "has 5")

    state = load_checkpoint(runs["iv3_gru"])
    state["class_names"] = {"gloss": {0: "hello", 1: "thanks"}, "cat": {}}
    renamed = tmp_path / "renamed.pt"
    save_checkpoint(state, renamed)
    stored = load_checkpoint(runs["transformer"])["class_names"]["gloss"]
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(renamed), *args])
    assert_one_line_error(result, "renamed.pt", "gloss classes differ", f"gloss 0 is 'hello' here but {stored[0]!r}")
    assert not (tmp_path / "c").exists()


def test_missing_directory_and_too_few_checkpoints(runs, recordings):
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]),
                                 "--keypoints", str(recordings["keypoints"]), "--labels-csv", str(recordings["labels"])])
    assert_one_line_error(result, "InceptionV3GRU", "reads features", "--features DIR")
    result = runner.invoke(app, ["compare", str(runs["transformer"]), "--keypoints", str(recordings["keypoints"])])
    assert_one_line_error(result, "two or more checkpoints")


def test_three_runs_are_tested_pair_by_pair(runs, synthetic_dir, tmp_path):
    # The transformer twice: that pair is right on exactly the same clips (b = c = 0, p = 1).
    twin = tmp_path / "twin" / "SignTransformer_best.pt"
    twin.parent.mkdir()
    shutil.copy(runs["transformer"], twin)
    out = tmp_path / "c"
    result = runner.invoke(app, ["compare", str(runs["transformer"]), str(runs["iv3_gru"]), str(twin),
                                 "--keypoints", str(synthetic_dir), "--features", str(synthetic_dir),
                                 "--output-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pairs = [(t["first"], t["second"], t["task"]) for t in report["mcnemar"]]
    assert pairs == [(a, b, task) for a, b in (("A", "B"), ("A", "C"), ("B", "C")) for task in ("gloss", "cat")]
    same = [t for t in report["mcnemar"] if (t["first"], t["second"]) == ("A", "C")]
    assert all(t["only_first"] == t["only_second"] == 0 and t["p_value"] == 1.0 for t in same)
    assert "right on exactly the same clips" in same[0]["meaning"]
    assert report["runs"][0]["gloss"] == report["runs"][2]["gloss"]
    assert list(pd.read_csv(out / "per_class.csv").columns) == ["id", "name", "clips", "accuracy_A", "accuracy_B",
                                                                 "accuracy_C", "spread"]
