"""labels.csv parsing: the accepted spellings, every labels problem, and class names from clip names."""

from __future__ import annotations

from pathlib import Path

import pytest

from slr.data.labels import class_names_from_clips, gloss_name_from_clip, load_labels, read_labels
from slr.errors import DataError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def kinds(labels) -> list[str]:
    return [p.kind for p in labels.problems]


def test_bom_crlf_suffix_spaces_apostrophes_and_extra_columns(tmp_path):
    text = (
        "\ufefffile,gloss,cat,occluded\r\n"
        "clip_0089_how are you.npz,42,3,0\r\n"
        "clip_0090_don't know,7,1,1\r\n"
        '"clip_0091_yes, please",3.0,2,0\r\n'
    )
    rows = read_labels(write(tmp_path / "labels.csv", text))
    assert list(rows["file"]) == ["clip_0089_how are you", "clip_0090_don't know", "clip_0091_yes, please"]
    assert list(rows["gloss"]) == [42, 7, 3] and rows["gloss"].dtype == "int64"
    assert list(rows["cat"]) == [3, 1, 2]
    assert list(rows["occluded"]) == ["0", "1", "0"]  # extra columns kept, as written
    assert list(rows["line"]) == [2, 3, 4]


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = write(tmp_path / "labels.csv", "file,gloss,cat\nclip_1,0,0\n\nclip_2,x,0\n\n")
    labels = load_labels(path)
    assert kinds(labels) == ["non_integer_id"]
    assert "line 4" in labels.problems[0].message


@pytest.mark.parametrize(
    "text, kind, fragment, file",
    [
        ("", "labels_empty", "empty", "labels.csv"),
        ("file,gloss,cat\n", "labels_empty", "no rows", "labels.csv"),
        ("file,gloss\nclip_1,0\n", "labels_columns", "cat", "labels.csv"),
        ("name,label\nclip_1,0\n", "labels_columns", "file, gloss, cat", "labels.csv"),
        ("file,gloss,cat\nclip_1,abc,0\n", "non_integer_id", "gloss 'abc' is not an integer", "clip_1.npz"),
        ("file,gloss,cat\nclip_1,1.5,0\n", "non_integer_id", "gloss '1.5'", "clip_1.npz"),
        ("file,gloss,cat\nclip_1,0,\n", "non_integer_id", "cat ''", "clip_1.npz"),
        ("file,gloss,cat\nclip_1,-1,0\n", "negative_id", "gloss -1 is negative", "clip_1.npz"),
        ("file,gloss,cat\n,1,0\n", "bad_row", "line 2: no clip name", "labels.csv"),
    ],
)
def test_each_labels_problem_is_reported_with_its_file(tmp_path, text, kind, fragment, file):
    labels = load_labels(write(tmp_path / "labels.csv", text))
    assert kinds(labels) == [kind]
    assert labels.problems[0].file == file
    assert fragment in labels.problems[0].message
    with pytest.raises(DataError, match="labels.csv"):
        read_labels(tmp_path / "labels.csv")


def test_missing_file(tmp_path):
    labels = load_labels(tmp_path / "nope.csv")
    assert kinds(labels) == ["labels_missing"] and labels.problems[0].file == "nope.csv"
    assert labels.rows.empty


def test_not_utf8(tmp_path):
    labels = load_labels(write(tmp_path / "labels.csv", "file,gloss,cat\nclip_é,0,0\n", encoding="latin-1"))
    assert kinds(labels) == ["labels_unreadable"]
    assert "UTF-8" in labels.problems[0].message


def test_ids_outside_num_gloss_and_num_cat(tmp_path):
    path = write(tmp_path / "labels.csv", "file,gloss,cat\nclip_1,5,0\nclip_2,4,2\n")
    labels = load_labels(path, num_gloss=5, num_cat=2)
    assert kinds(labels) == ["id_out_of_range", "id_out_of_range"]
    first, second = labels.problems
    assert first.file == "clip_1.npz" and "gloss 5 is outside 0..4 (--num-gloss 5)" in first.message
    assert second.file == "clip_2.npz" and "cat 2 is outside 0..1 (--num-cat 2)" in second.message
    assert load_labels(path).problems == []  # unchecked without the limits


def test_duplicates_same_and_different_labels(tmp_path):
    path = write(tmp_path / "labels.csv", "file,gloss,cat\nclip_1,0,0\nclip_1.npz,0,0\nclip_2,1,0\nclip_2,2,0\n")
    labels = load_labels(path)
    assert kinds(labels) == ["duplicate_row", "duplicate_row"]
    same, different = labels.problems
    assert same.file == "clip_1.npz" and "line 3 repeats line 2 with the same labels" in same.message
    assert different.file == "clip_2.npz" and "different labels" in different.message
    assert list(labels.rows["file"]) == ["clip_1", "clip_2"]  # first occurrence kept


def test_gloss_in_two_categories_is_a_warning(tmp_path):
    path = write(tmp_path / "labels.csv", "file,gloss,cat\na,0,0\nb,0,0\nc,0,1\nd,1,1\n")
    labels = load_labels(path)
    assert kinds(labels) == ["gloss_in_two_categories"]
    problem = labels.problems[0]
    assert problem.severity == "warning"
    assert "gloss 0 is in categories 0 (2 clips), 1 (1 clip)" in problem.message and "c" in problem.message
    read_labels(path)  # warnings do not stop training


def test_gloss_name_from_clip():
    assert gloss_name_from_clip("clip_0089_how are you") == "how are you"
    assert gloss_name_from_clip("clip_0001_don't.npz") == "don't"
    assert gloss_name_from_clip("hello") == "hello"


def test_class_names_take_the_most_common_name_per_gloss():
    names = ["clip_0001_hello", "clip_0002_helo", "clip_0003_hello", "clip_0004_thank you", "clip_0005_b", "clip_0006_a"]
    assert class_names_from_clips(names, [0, 0, 0, 1, 2, 2]) == {0: "hello", 1: "thank you", 2: "a"}
