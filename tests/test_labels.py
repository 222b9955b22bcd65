"""labels.csv parsing: the accepted spellings, every labels problem, and class names from clip names."""

from __future__ import annotations

from pathlib import Path

import pytest

from slr.data.classes import read_class_names
from slr.data.labels import class_names_from_clips, gloss_name_from_clip, load_labels, read_labels
from slr.errors import DataError
from shown import raises_shown, shown


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
    assert list(rows.index) == [2, 3, 4]  # the line of each row


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
        ("file,cat\nclip_1,0\n", "labels_columns", "gloss", "labels.csv"),
        ("name,label\nclip_1,0\n", "labels_columns", "file, gloss", "labels.csv"),
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
    assert first.file == "clip_1.npz" and "gloss 5 is outside 0..4 (--num-gloss 5)" in shown(first.message)
    assert second.file == "clip_2.npz" and "cat 2 is outside 0..1 (--num-cat 2)" in shown(second.message)
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


def test_extra_columns_keep_any_name_even_line(tmp_path):
    text = "file,gloss,cat,line,,note,note\nclip_1,0,0,x,a,b,c\n\nclip_2,1.0,0,y,d,e,f\n"
    rows = read_labels(write(tmp_path / "labels.csv", text))
    assert list(rows["line"]) == ["x", "y"]  # the user's column, as written
    assert list(rows.index) == [2, 4]  # the lines, for messages, kept apart from any column
    assert list(rows.columns) == ["file", "gloss", "cat", "line", "column 5", "note", "note.1"]
    assert list(rows["gloss"]) == [0, 1]


def test_a_required_column_twice_is_a_columns_problem(tmp_path):
    labels = load_labels(write(tmp_path / "labels.csv", "file,gloss,cat, cat\nclip_1,0,0,1\n"))
    assert kinds(labels) == ["labels_columns"]
    assert "cat appear more than once" in labels.problems[0].message


def test_labels_path_that_is_a_directory(tmp_path):
    (tmp_path / "labels.csv").mkdir()
    labels = load_labels(tmp_path / "labels.csv")
    assert kinds(labels) == ["labels_unreadable"]
    with pytest.raises(DataError) as caught:
        read_labels(tmp_path / "labels.csv")
    assert str(caught.value) == f"{tmp_path / 'labels.csv'}: is a directory, not a CSV file"


# --- classes files: the same reader and the same id rules -----------------------------------

CLASSES_HEADER = "gloss,name,cat,cat_name\n"


def test_classes_accept_the_ids_labels_accept(tmp_path):
    path = write(tmp_path / "classes.csv", CLASSES_HEADER + "0,A,2,function\n1.0,CAN,2.0,function\n 2 ,COFFEE,1,food\n")
    assert read_class_names(path) == {"gloss": {0: "A", 1: "CAN", 2: "COFFEE"}, "cat": {2: "function", 1: "food"}}
    rows = read_labels(write(tmp_path / "labels.csv", "file,gloss,cat\nclip_1,1.0,2.0\nclip_2, 2 ,1\n"))
    assert list(rows["gloss"]) == [1, 2] and list(rows["cat"]) == [2, 1]


@pytest.mark.parametrize(
    "rows, message",
    [
        ("0,A,x,function\n", "line 2: cat 'x' is not an integer id"),
        ("0,A,2,function\n1.5,B,2,function\n", "line 3: gloss '1.5' is not an integer id"),
        ("0,A,2,function,extra\n", "Expected 4 fields in line 2, saw 5"),
        ("0,A,2,function\n0,B,2,function\n", "line 3: gloss 0 is already on line 2"),
        ("-1,A,2,function\n", "line 2: gloss -1 is negative"),
        ("0,A,-2,function\n", "line 2: cat -2 is negative"),
        ("0,A,2,function\n1,B,2,food\n", "line 3: cat 2 is named 'food' here but 'function' on line 2"),
        ("0,A,2,function\n1\n", "line 3: gloss 1 has no name"),
    ],
    ids=["bad-cat", "bad-gloss", "extra-field", "duplicate-gloss", "negative-gloss", "negative-cat", "cat-two-names", "short-row"],
)
def test_classes_problems_name_the_line_and_the_column(tmp_path, rows, message):
    path = write(tmp_path / "classes.csv", CLASSES_HEADER + rows)
    with pytest.raises(DataError) as caught:
        read_class_names(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_classes_path_that_is_a_directory(tmp_path):
    (tmp_path / "classes.csv").mkdir()
    with pytest.raises(DataError, match="classes file is a directory, not a CSV file"):
        read_class_names(tmp_path / "classes.csv")


def test_labels_without_a_cat_column_are_one_category(tmp_path):
    """`cat` is optional (issue 22): every clip is category 0, and the table says it had none."""
    labels = load_labels(write(tmp_path / "labels.csv", "file,gloss,signer\nclip_1,0,a\nclip_2,3,b\n"))
    assert labels.problems == []
    assert labels.categories is False
    rows = read_labels(tmp_path / "labels.csv")
    assert list(rows["cat"]) == [0, 0] and list(rows["gloss"]) == [0, 3]
    assert list(rows.columns) == ["file", "gloss", "cat", "signer"]
    assert load_labels(write(tmp_path / "with.csv", "file,gloss,cat\nclip_1,0,2\n")).categories is True
