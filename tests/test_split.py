"""`slr split`: no group in two splits, every class in every split, the same split for a seed, clear
refusals; and the warnings of `slr validate` and `slr train` when train and val share a group."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.data.labels import load_labels, read_labels
from slr.data.split import group_keys, shared_groups, split_labels, train_val_group_notices

WORDS = ["hello", "thanks", "coffee", "water"]


def write_clips(directory: Path, rows: list[dict], *, clips: bool = True) -> Path:
    """labels.csv with the given rows (every key a column), and a small keypoint clip per row."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if clips:
        rng = np.random.default_rng(0)
        for row in rows:
            gloss = int(float(row["gloss"]))
            x = (rng.normal(size=(8, 156)) * 0.05 + gloss * 0.1).astype("float32")
            np.savez(directory / f"{row['file']}.npz", X=x)
    return directory


def signer_rows(
    signers: int = 8, words: int = 4, per: int = 3, *, skip: dict | None = None, in_name: bool = False
) -> list[dict]:
    """Every signer signs every word `per` times (unless `skip[word]` lists signers who did not);
    `in_name`: the signer is in the clip name too (`clip_0001_s00_hello`)."""
    rows, n = [], 0
    for s in range(signers):
        for g in range(words):
            if skip and s in skip.get(g, ()):
                continue
            for _ in range(per):
                n += 1
                signer = f"s{s:02d}_" if in_name else ""
                rows.append({"file": f"clip_{n:04d}_{signer}{WORDS[g % len(WORDS)]}", "gloss": str(g),
                             "cat": str(g % 2), "signer": f"S{s}", "occluded": str(n % 2)})
    return rows


def block_rows(blocks_per_word=(6, 5, 4, 3), clips_per_block: int = 5) -> list[dict]:
    """asl-words-like: each word recorded in blocks, numbered in order; one word per block."""
    rows, n = [], 0
    for g, blocks in enumerate(blocks_per_word):
        for b in range(blocks):
            for _ in range(clips_per_block):
                n += 1
                rows.append({"file": f"clip_{n:04d}_{WORDS[g]}", "gloss": str(g), "cat": "0", "block": f"{g}-{b}"})
    return rows


def split_of(rows: list[dict], tmp_path: Path, group_by: str, **options):
    path = write_clips(tmp_path / "labels-only", rows, clips=False) / "labels.csv"
    table = read_labels(path)
    groups, grouping = group_keys(table, group_by, path)
    return split_labels(table, groups, grouping=grouping, labels_csv=path, **options)


def split_cli(*args: str):
    return CliRunner().invoke(app, ["split", *map(str, args)])


def groups_by_split(result) -> dict[str, set]:
    return {name: set(result.groups[result.assignment == name]) for name in result.splits}


# --- the split itself ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("rows, group_by, test", [
    (signer_rows(), "signer", None),
    (signer_rows(), "signer", 0.2),
    (block_rows(), "block", None),
    (block_rows((6, 5, 4, 3)), "block", 0.2),
])
def test_no_group_in_two_splits_and_every_class_in_every_split(tmp_path, seed, rows, group_by, test):
    result = split_of(rows, tmp_path, group_by, val=0.25, test=test, seed=seed)
    assert result.ok, result.problems
    assert len(result.assignment) == len(rows)
    seen = groups_by_split(result)
    names = list(seen)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not seen[a] & seen[b], (a, b, seen[a] & seen[b])
    for name, per_class in result.counts().items():
        assert all(count.clips > 0 for count in per_class.values()), (name, per_class)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shares_are_near_those_asked_when_groups_are_equal(tmp_path, seed):
    # 10 signers of 12 clips: val 0.2 is 2 signers exactly, test 0.1 one signer.
    result = split_of(signer_rows(signers=10), tmp_path, "signer", val=0.2, test=0.1, seed=seed)
    totals = result.totals()
    assert totals["val"]["groups"] == 2 and totals["test"]["groups"] == 1 and totals["train"]["groups"] == 7
    assert totals["val"]["share"] == pytest.approx(0.2) and totals["test"]["share"] == pytest.approx(0.1)


def test_stratified_by_gloss_as_far_as_the_groups_allow(tmp_path):
    # Single-word blocks: StratifiedGroupKFold gives each word about the same share of val.
    rows = block_rows((10, 10, 10, 10))
    result = split_of(rows, tmp_path, "block", val=0.2, seed=0)
    val = result.counts()["val"]
    assert [val[g].groups for g in range(4)] == [2, 2, 2, 2]


def test_the_same_seed_gives_the_same_split_and_seeds_differ(tmp_path):
    rows = signer_rows(signers=12)
    first = split_of(rows, tmp_path / "a", "signer", val=0.25, seed=5)
    again = split_of(rows, tmp_path / "b", "signer", val=0.25, seed=5)
    assert first.assignment.equals(again.assignment)
    others = [split_of(rows, tmp_path / f"s{s}", "signer", val=0.25, seed=s).assignment for s in range(4)]
    assert any(not first.assignment.equals(o) for o in others)


def test_a_class_in_too_few_groups_is_refused_by_name(tmp_path):
    # "water" (gloss 3) was signed by signer 0 only: it cannot be in both train and val.
    rows = signer_rows(skip={3: range(1, 8)})
    result = split_of(rows, tmp_path, "signer", val=0.25)
    assert not result.ok and result.assignment.empty
    (message,) = result.problems
    assert "1 class(es) cannot be in each of train and val" in message
    assert "gloss 3 (water): 3 clip(s) in 1 signer(s) ('S0')" in message
    # with a test split too, two signers are not enough either
    rows = signer_rows(skip={3: range(2, 8), 1: range(2, 8)})
    (message,) = split_of(rows, tmp_path / "t", "signer", val=0.25, test=0.25).problems
    assert "2 class(es) cannot be in each of train, val and test" in message
    assert "gloss 1 (thanks)" in message and "gloss 3 (water)" in message and "'S0', 'S1'" in message


def test_too_few_groups_overall_is_refused(tmp_path):
    (message,) = split_of(signer_rows(signers=2), tmp_path, "signer", val=0.2, test=0.2).problems
    assert "only 2 signer value(s) ('S0', 'S1')" in message and "need at least 3" in message


# --- groups: a column or a regular expression --------------------------------------------------


def test_regex_groups_by_first_capture_group_or_whole_match(tmp_path):
    rows = signer_rows(in_name=True)
    by_regex = split_of(rows, tmp_path / "r", r"_s(\d+)_", val=0.25, seed=3)
    assert set(by_regex.groups) == {f"{s:02d}" for s in range(8)}
    whole = split_of(rows, tmp_path / "w", r"s\d\d", val=0.25, seed=3)
    assert set(whole.groups) == {f"s{s:02d}" for s in range(8)}
    # the same groups under other names: the same split
    assert by_regex.assignment.equals(whole.assignment)


def test_a_column_wins_over_the_regex_of_the_same_name(tmp_path):
    rows = [{**r, "s0": r["signer"]} for r in signer_rows(in_name=True)]  # as a regex, "s0" is one group
    result = split_of(rows, tmp_path, "s0", val=0.25)
    assert result.grouping.kind == "column" and set(result.groups) == {f"S{s}" for s in range(8)}


@pytest.mark.parametrize("group_by, fragment", [
    (r"signer(\d+)", "as a regular expression, finds a group in no clip name, e.g. line 2 (clip_0001_s00_hello)"),
    (r"_s(0[0-3])_", "finds no group in 48 of 96 clip names, e.g. line 50 (clip_0049_s04_hello)"),
    (r"sig(ner", "neither a column of the labels (columns: file, gloss, cat, signer, occluded) nor a regular"),
])
def test_a_regex_that_leaves_clips_ungrouped_is_refused_with_examples(tmp_path, group_by, fragment):
    directory = write_clips(tmp_path / "clips", signer_rows(in_name=True), clips=False)
    result = split_cli(directory, "--group-by", group_by, "--val", "0.2")
    assert result.exit_code == 2
    assert fragment in " ".join(result.output.split())
    assert not (directory / "labels_train.csv").exists()


def test_a_row_without_a_group_value_is_refused(tmp_path):
    rows = signer_rows()
    rows[4]["signer"] = " "
    directory = write_clips(tmp_path / "clips", rows, clips=False)
    result = split_cli(directory, "--group-by", "signer", "--val", "0.2")
    assert result.exit_code == 2
    assert "1 of 96 rows have no 'signer' value, e.g. line 6 (clip_0005_thanks)" in " ".join(result.output.split())


def test_help_names_every_option():
    result = CliRunner().invoke(app, ["split", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for flag in ("--group-by", "--val", "--test", "--seed", "--labels-csv", "--overwrite", "--json"):
        assert flag in result.output


# --- slr split: the files -----------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_split_files_keep_every_column_and_cell_as_written(tmp_path):
    rows = signer_rows()
    rows[0]["gloss"] = "0.0"  # accepted spellings stay as they were written
    rows[1]["file"] += ".npz"
    directory = write_clips(tmp_path / "clips", [dict(r) for r in rows], clips=False)
    before = (directory / "labels.csv").read_bytes()
    result = split_cli(directory, "--group-by", "signer", "--val", "0.25", "--test", "0.25")
    assert result.exit_code == 0, result.output
    assert (directory / "labels.csv").read_bytes() == before
    written = [read_rows(directory / f"labels_{n}.csv") for n in ("train", "val", "test")]
    assert all(list(part[0]) == ["file", "gloss", "cat", "signer", "occluded"] for part in written)
    together = sorted((r for part in written for r in part), key=lambda r: r["file"])
    assert together == sorted(rows, key=lambda r: r["file"])


def test_existing_split_files_are_kept_unless_overwrite(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(), clips=False)
    assert split_cli(directory, "--group-by", "signer", "--val", "0.25", "--test", "0.2").exit_code == 0
    before = {p.name: p.read_bytes() for p in directory.glob("labels*.csv")}
    refused = split_cli(directory, "--group-by", "signer", "--val", "0.25", "--seed", "4")
    assert refused.exit_code == 2
    text = " ".join(refused.output.split())
    assert "labels_train.csv, labels_val.csv, labels_test.csv already exist(s)" in text and "--overwrite" in text
    assert {p.name: p.read_bytes() for p in directory.glob("labels*.csv")} == before
    # --overwrite: new files, and the earlier test split (whose signers may now be in train) removed
    again = split_cli(directory, "--group-by", "signer", "--val", "0.25", "--seed", "4", "--overwrite")
    assert again.exit_code == 0, again.output
    assert not (directory / "labels_test.csv").exists() and "removed labels_test.csv" in again.output
    assert (directory / "labels.csv").read_bytes() == before["labels.csv"]


def test_a_refused_split_writes_nothing_and_exits_2(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(skip={2: range(1, 8)}), clips=False)
    result = split_cli(directory, "--group-by", "signer", "--val", "0.2")
    assert result.exit_code == 2
    assert "cannot split" in result.output and "gloss 2 (coffee)" in result.output
    assert sorted(p.name for p in directory.iterdir()) == ["labels.csv"]


def test_json_counts_match_the_files(tmp_path):
    directory = write_clips(tmp_path / "clips", block_rows(), clips=True)
    result = split_cli(directory, "--group-by", "block", "--val", "0.3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["group_by"] == {"kind": "column", "spec": "block"}
    for name in ("train", "val"):
        rows = read_rows(directory / f"labels_{name}.csv")
        assert report["splits"][name]["clips"] == len(rows)
        assert report["splits"][name]["groups"] == len({r["block"] for r in rows})
        for entry in report["classes"]:
            in_file = [r for r in rows if r["gloss"] == str(entry["gloss"])]
            assert entry[name] == {"clips": len(in_file), "groups": len({r["block"] for r in in_file})}
    assert report["classes"][0]["name"] == "hello"


def test_plain_output_lists_groups_and_clips_per_class(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(), clips=True)
    result = split_cli(directory, "--group-by", "signer", "--val", "0.25")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[:5] == ["train", "6", "signer(s),", "72", "clips"]
    assert lines[3].split() == ["gloss", "name", "train", "signers", "train", "clips", "val", "signers", "val", "clips"]
    assert lines[4].split() == ["0", "hello", "6", "18", "2", "6"]


def test_without_scikit_learn_the_install_command_is_named(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(), clips=False)
    code = (
        "import sys; sys.modules['sklearn'] = None\n"  # as if scikit-learn were not installed
        "from slr.cli import main\n"
        f"sys.argv = ['slr', 'split', {str(directory)!r}, '--group-by', 'signer', '--val', '0.2']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'pip install -e ".[split]"' in proc.stderr and "Traceback" not in proc.stderr
    assert not (directory / "labels_train.csv").exists()


# --- warnings: slr validate and slr train ----------------------------------------------------


def validate_json(directory: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["validate", str(directory), "--json", *args])
    return json.loads(result.stdout)


def move_row(directory: Path, source: str, target: str, index: int = 0) -> dict:
    """Move one row from one split file to another (a signer then appears in both)."""
    src, dst = read_rows(directory / source), read_rows(directory / target)
    row = src.pop(index)
    for name, rows in ((source, src), (target, dst + [row])):
        with open(directory / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return row


def test_validate_is_quiet_on_a_clean_split_and_warns_on_a_shared_signer(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(), clips=True)
    assert split_cli(directory, "--group-by", "signer", "--val", "0.25").exit_code == 0
    for labels in ("labels.csv", "labels_train.csv", "labels_val.csv"):
        report = validate_json(directory, "--labels-csv", str(directory / labels))
        # nothing shared, and the other split's clips in the same directory are not "unlabelled"
        assert report["problems"] == {}, (labels, report["problems"])
    row = move_row(directory, "labels_train.csv", "labels_val.csv")
    report = validate_json(directory)
    (item,) = report["problems"]["shared_group"]["items"]
    assert report["ok"] and report["problems"]["shared_group"]["severity"] == "warning"
    assert f"labels_train.csv and labels_val.csv share 1 signer(s): {row['signer']} (of 6 and 3)" in item["message"]


def test_validate_checks_a_split_column_and_a_group_by_regex(tmp_path):
    rows = signer_rows(signers=4, in_name=True)
    for r in rows:
        r["split"] = "test" if r["signer"] == "S3" else ("val" if r["signer"] == "S2" else "train")
    rows[0]["split"] = "val"  # one clip of S0 in val
    del_signer = [{k: v for k, v in r.items() if k != "signer"} for r in rows]
    directory = write_clips(tmp_path / "clips", del_signer, clips=True)
    assert validate_json(directory)["problems"] == {}  # no group column: nothing to compare
    report = validate_json(directory, "--group-by", r"_s(\d+)_")
    (item,) = report["problems"]["shared_group"]["items"]
    assert "split 'train' and split 'val' share 1 group(s) (by regular expression" in item["message"]
    assert ": 00 (of 2 and 2)" in item["message"]


def test_validate_refuses_a_group_by_that_finds_nothing(tmp_path):
    directory = write_clips(tmp_path / "clips", signer_rows(), clips=False)
    result = CliRunner().invoke(app, ["validate", str(directory), "--group-by", "singer"])
    assert result.exit_code == 2
    assert "--group-by 'singer' is not a column (columns: file, gloss, cat, signer, occluded)" in " ".join(
        result.output.split()
    )


def test_train_warns_when_training_and_validation_labels_share_a_signer(tmp_path):
    table = lambda rows: load_labels(write_clips(tmp_path / str(len(rows)), rows, clips=False) / "labels.csv")
    rows = signer_rows(signers=5)
    train = table([r for r in rows if r["signer"] != "S4"])
    val = table([r for r in rows if r["signer"] in ("S4", "S1")][:-1])
    (notice,) = train_val_group_notices(train, val)
    assert "share 1 signer(s): S1 (of 4 and 2), so validation results are not on unseen signers" in notice
    assert shared_groups(train.rows, val.rows, "session") is None  # a column neither carries
    clean = table([r for r in rows if r["signer"] == "S4"])
    assert train_val_group_notices(train, clean) == []


@pytest.mark.slow
def test_train_takes_one_directory_with_two_split_files(tmp_path, one_thread):
    directory = write_clips(tmp_path / "clips", signer_rows(signers=6, per=2), clips=True)
    assert split_cli(directory, "--group-by", "signer", "--val", "0.34").exit_code == 0
    n_train, n_val = (len(read_rows(directory / f"labels_{n}.csv")) for n in ("train", "val"))

    def train(out: str):
        return CliRunner().invoke(app, [
            "train", "transformer", "--keypoints-train", str(directory), "--keypoints-val", str(directory),
            "--labels-train-csv", str(directory / "labels_train.csv"),
            "--labels-val-csv", str(directory / "labels_val.csv"), "--num-gloss", "4", "--num-cat", "2",
            "--epochs", "1", "--batch-size", "16", "--d-model", "16", "--num-heads", "2", "--num-layers", "1",
            "--ff-dim", "32", "--no-plots", "--output-dir", str(tmp_path / out),
        ])

    result = train("run")
    assert result.exit_code == 0, result.output
    assert f"{n_train} training / {n_val} validation clips" in result.output
    # no shared signer, and no "unlabelled" clips of the other split in the same directory
    assert "notice" not in result.stderr, result.stderr
    assert (tmp_path / "run" / "SignTransformer_last.pt").is_file()
    move_row(directory, "labels_train.csv", "labels_val.csv")
    result = train("run2")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "share 1 signer(s)" in text and "so validation results are not on unseen signers" in text
