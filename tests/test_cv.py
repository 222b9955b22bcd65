"""`slr cv`: folds by group, one run folder per recipe and fold, held-out scores, the paired tests."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.crossval.folds import make_folds
from slr.crossval.paired import RecipePair, pair_recipes, sign_flip_p, smallest_p
from slr.data.labels import read_labels
from slr.data.split import group_keys
from slr.data.synthetic import make_signer_shift_clips, write_clips

SMALL = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32", "--threads", "1",
         "--no-tensorboard", "--batch-size", "8"]


@pytest.fixture(scope="module")
def signers(tmp_path_factory) -> Path:
    """6 synthetic signers, 8 clips each of 4 letters (hands-only layout, 12-20 frames): a `signer` column."""
    directory = tmp_path_factory.mktemp("cv") / "signers"
    write_clips(directory, make_signer_shift_clips(num_letters=4, num_signers=6, clips_per_signer=8, min_frames=12,
                                                   max_frames=20, seed=0))
    return directory


def _cv(*args) -> object:
    return CliRunner().invoke(app, ["cv", *map(str, args)])


# -- folds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,folds", [("signer", 3), ("signer", "loo"), (r"clip_\d\d(\d)\d", 3)])
def test_every_group_is_held_out_once_and_never_seen_by_its_fold(signers, spec, folds):
    rows = read_labels(signers / "labels.csv")
    groups, grouping = group_keys(rows, spec, signers / "labels.csv")
    made = make_folds(rows, groups, grouping, signers / "labels.csv", folds=folds, seed=0, inner_val=0.25)
    assert len(made) == (groups.nunique() if folds == "loo" else folds)
    held = [g for fold in made for g in fold.held_out]
    assert sorted(held) == sorted(groups.unique())  # each group held out in exactly one fold
    for fold in made:
        sides = [set(groups.iloc[part]) for part in (fold.train, fold.val, fold.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert sides[2] == set(fold.held_out) and sides[1] == set(fold.val_groups)
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(rows)
        gloss = rows["gloss"].to_numpy()
        assert set(gloss[fold.val]) == set(gloss[fold.train])  # every class on both sides of the inner split


def test_more_folds_than_groups_is_one_message_and_nothing_written(signers, tmp_path):
    result = _cv("transformer", signers, "--group-by", "signer", "--folds", 7, "--output-dir", tmp_path / "cv")
    assert result.exit_code == 2, result.output
    assert "--folds 7 needs at least 7 signers" in result.output and "finds 6" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cv").exists()


@pytest.mark.parametrize("args,expected", [
    (["--group-by", "singer"], "finds a group in no clip name"),
    (["--group-by", "signer", "--folds", "1"], "at least 2 folds"),
    (["--group-by", "signer", "--folds", "many"], "number of folds"),
])
def test_bad_grouping_or_folds_are_refused_by_name(signers, tmp_path, args, expected):
    result = _cv("transformer", signers, *args, "--output-dir", tmp_path / "cv")
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "Traceback" not in result.output


def test_a_recipe_that_sets_the_folds_data_is_refused_naming_the_file(signers, tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("epochs: 2\nkeypoints_train: elsewhere\n")
    result = _cv("transformer", signers, "--group-by", "signer", "--recipe", recipe, "--output-dir", tmp_path / "cv")
    assert result.exit_code == 2 and str(recipe) in result.output and "keypoints_train" in result.output


# -- the tests across folds ----------------------------------------------------------------------


def test_sign_flip_p_counts_every_sign_assignment():
    rng = np.random.default_rng(3)
    for k in range(1, 13):
        d = rng.normal(0.01, 0.03, k).round(2)  # rounded: ties with the observed sum occur, and count
        brute = np.mean([abs(np.dot(s, d)) >= abs(d.sum()) - 1e-9 for s in itertools.product([-1, 1], repeat=k)])
        assert sign_flip_p(d) == pytest.approx(brute, abs=1e-12), k


def test_five_folds_all_one_way_give_the_smallest_possible_p_and_say_so():
    pair = pair_recipes("A", "B", [0.80, 0.81, 0.79, 0.82, 0.80], [0.83, 0.84, 0.82, 0.85, 0.84],
                        {"x": True, "y": False}, {"x": True, "y": True})
    assert pair.sign_flip_p == smallest_p(5) == 2 / 32
    assert pair.meaning.startswith("B is better than A on 5 of 5 folds, +3.2 points")
    assert "p = 0.062 — with 5 folds no smaller p is possible" in pair.meaning
    assert pair.low > 0  # every fold gained: the t interval of the mean stays above 0
    assert (pair.mcnemar.only_first, pair.mcnemar.only_second) == (0, 1)


def test_a_pair_that_splits_the_folds_is_called_chance():
    pair: RecipePair = pair_recipes("A", "B", [0.8, 0.7, 0.9, 0.6], [0.7, 0.8, 0.8, 0.7], {}, {})
    assert "2 of 4 folds" in pair.meaning and pair.sign_flip_p == 1.0
    assert "smallest possible p is 0.125" in pair.meaning


# -- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cv_runs_recipes_on_the_same_folds_and_every_fold_is_an_ordinary_run(signers, tmp_path, one_thread):
    quick, slow = tmp_path / "quick.yaml", tmp_path / "slow.toml"
    quick.write_text("epochs: 3\nlr: 0.003\n")
    slow.write_text("epochs = 3\nlr = 0.0003\n")
    out = tmp_path / "cv"
    result = _cv("transformer", signers, "--group-by", "signer", "--folds", 3, "--recipe", quick, "--recipe", slow,
                 "--output-dir", out, *SMALL)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "cv.json").read_text())
    assert [r["name"] for r in report["recipes"]] == ["quick", "slow"]
    held = [[f["held_out"] for f in r["folds"]] for r in report["recipes"]]
    assert held[0] == held[1]  # the same folds for both recipes
    assert (out / "folds.png").stat().st_size > 0
    rows = list(csv.DictReader(open(out / "folds.csv")))
    assert len(rows) == 6 and {r["recipe"] for r in rows} == {"quick", "slow"}
    pair = report["pairs"][0]
    assert pair["first"] == "quick" and pair["second"] == "slow" and len(pair["differences"]) == 3
    assert pair["smallest_possible_p"] == 0.25 and "slow vs quick" in result.output
    assert "inner validation best" in result.output and "±" in result.output

    fold = report["recipes"][1]["folds"][0]
    run = Path(fold["run_dir"])
    # the checkpoint scored is the epoch the inner validation chose
    log = list(csv.DictReader(open(run / "log.csv")))
    accs = [float(r["val_gloss_acc"]) for r in log]
    assert fold["best_epoch"] == accs.index(max(accs)) + 1 and fold["inner_best"] == pytest.approx(max(accs))
    assert fold["checkpoint"].endswith("SignTransformer_best.pt")
    # an ordinary run folder: slr evaluate on the fold's held-out labels gives the same number
    test_labels = out / "folds" / "fold-1" / "labels_test.csv"
    evaluated = CliRunner().invoke(app, ["evaluate", fold["checkpoint"], "--keypoints", str(signers), "--labels-csv",
                                         str(test_labels), "--json", "--output-dir", str(tmp_path / "eval")])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["gloss"]["top1"] == pytest.approx(fold["gloss_top1"])
    groups = {r["signer"] for r in csv.DictReader(open(test_labels))}
    assert groups == set(fold["held_out"])

    # the same command again: everything kept, nothing trained or scored again
    stamp = (run / "heldout.json").stat().st_mtime_ns
    again = _cv("transformer", signers, "--group-by", "signer", "--folds", 3, "--recipe", quick, "--recipe", slow,
                "--output-dir", out, *SMALL)
    assert again.exit_code == 0 and again.output.count("finished earlier, kept") == 6, again.output
    assert (run / "heldout.json").stat().st_mtime_ns == stamp
    # other recipes into the same folder: refused, naming what differs
    changed = _cv("transformer", signers, "--group-by", "signer", "--folds", 3, "--recipe", quick, "--recipe", slow,
                  "--output-dir", out, *SMALL, "--epochs", "4")
    assert changed.exit_code == 2 and "epochs" in changed.output and "--output-dir" in changed.output


@pytest.mark.slow
def test_jobs_train_folds_in_processes_with_the_same_results(signers, tmp_path):
    """--jobs 2 (spawned workers) gives what one process gives: the same folds, the same numbers."""
    common = ["transformer", signers, "--group-by", "signer", "--folds", 2, "--epochs", 2, *SMALL]
    one = _cv(*common, "--output-dir", tmp_path / "one")
    two = _cv(*common, "--jobs", 2, "--output-dir", tmp_path / "two")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    scores = [[(f["held_out"], f["gloss_top1"], f["inner_best"]) for f in json.loads((tmp_path / d / "cv.json")
               .read_text())["recipes"][0]["folds"]] for d in ("one", "two")]
    assert scores[0] == scores[1]


def test_a_gloss_one_signer_never_signed_still_gets_folds_without_a_group_on_two_sides(signers, tmp_path):
    """Real data sets with few signers: a sign one signer never recorded. Leave-one-out then holds
    folds whose training part has that sign from one signer only; the fold is still made (a notice
    says the sign is on one side of the inner split), and no signer is on two sides."""
    rows = read_labels(signers / "labels.csv")
    rows = rows[~((rows["signer"].isin(["s00", "s01", "s02", "s03"])) & (rows["gloss"] == 1))]
    groups, grouping = group_keys(rows, "signer", signers / "labels.csv")
    made = make_folds(rows, groups, grouping, signers / "labels.csv", folds="loo", seed=0, inner_val=0.25)
    assert len(made) == 6
    notes = [text for fold in made for text in fold.notices]
    assert any("have clips of one signer only" in text for text in notes), notes
    for fold in made:
        sides = [set(groups.iloc[part]) for part in (fold.train, fold.val, fold.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(rows)


@pytest.mark.slow
def test_three_signers_and_the_default_folds_give_one_fold_per_signer(tmp_path, one_thread):
    data = tmp_path / "three"
    write_clips(data, make_signer_shift_clips(num_letters=3, num_signers=3, clips_per_signer=9, min_frames=12,
                                              max_frames=16, seed=2))
    result = _cv("transformer", data, "--group-by", "signer", "--epochs", 1, "--output-dir", tmp_path / "cv", *SMALL,
                 "--json")
    assert result.exit_code == 0, result.output
    assert "3 signers: one fold per signer (--folds loo; the default is 5 folds)" in result.stderr
    report = json.loads(result.stdout)  # with --json, stdout is the report alone
    assert [f["held_out"] for f in report["folds"]] == [["s00"], ["s01"], ["s02"]]
    assert report == json.loads((tmp_path / "cv" / "cv.json").read_text())
