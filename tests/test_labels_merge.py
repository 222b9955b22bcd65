"""`slr extract --classes-csv` adding its rows to a labels.csv that is already there: every byte of the
user's file is kept (rows, extra columns, delimiter, line ends, byte-order mark), or the file is
refused with the reason before anything is extracted, and left as it was."""

from __future__ import annotations

import codecs
import importlib.util
from pathlib import Path

import pytest

from slr.data.labels import read_labels
from slr.extract.labels import write_labels
from slr.extract.labels_file import LabelsFileRefused

NEW = {"clip_0003_new": (2, 1), "clip_0004_other": (0, 0)}


def merged(tmp_path: Path, data: bytes, rows=NEW) -> bytes:
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    write_labels(path, rows)
    return path.read_bytes()


def test_extra_columns_and_rows_are_kept_and_new_rows_appended(tmp_path):
    before = b'file,gloss,cat,signer,note\nclip_0001_a,0,0,s1,"said ""twice"", slowly"\nclip_0002_b,1,0,s2,\n'
    after = merged(tmp_path, before)
    assert after.startswith(before)  # the user's bytes, untouched
    assert after[len(before):] == b"clip_0003_new,2,1,,\nclip_0004_other,0,0,,\n"
    rows = read_labels(tmp_path / "labels.csv")
    assert list(rows["signer"]) == ["s1", "s2", "", ""] and rows["note"].iloc[0] == 'said "twice", slowly'


def test_a_semicolon_file_with_crlf_and_a_bom_keeps_its_form(tmp_path):
    before = codecs.BOM_UTF8 + "file;gloss;cat;signer\r\nclip_0001_é;0;0;s1\r\n".encode()
    after = merged(tmp_path, before)
    assert after == before + b"clip_0003_new;2;1;\r\nclip_0004_other;0;0;\r\n"


def test_a_clip_extracted_again_gets_new_ids_and_keeps_its_other_cells(tmp_path):
    before = b"file,gloss,cat,signer\nclip_0003_new.npz,7,3,s9\nclip_0009_kept,1,1,s1\n"
    after = merged(tmp_path, before)
    assert after == b"file,gloss,cat,signer\nclip_0003_new.npz,2,1,s9\nclip_0009_kept,1,1,s1\nclip_0004_other,0,0,\n"


def test_a_file_without_a_final_newline_and_the_same_ids_is_left_alone(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"file,gloss,cat\nclip_0003_new,2.0,1")
    before = path.stat().st_mtime_ns
    assert write_labels(path, {"clip_0003_new": (2, 1)}) is False
    assert path.read_bytes() == b"file,gloss,cat\nclip_0003_new,2.0,1" and path.stat().st_mtime_ns == before
    assert merged(tmp_path, b"file,gloss,cat\nclip_0001_a,0,0") == (
        b"file,gloss,cat\nclip_0001_a,0,0\nclip_0003_new,2,1\nclip_0004_other,0,0\n")


@pytest.mark.parametrize("data, reason", [
    ("file,gloss,cat\nclip_0001_café,0,0\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 on line 2)"),
    (b'file,gloss,cat,note\nclip_0001_a,0,0,"never closed\nclip_0002_b,1,0,x\n', "a quote that is never closed"),
    (b"name,id\nclip_0001_a,0\n", "has no file, gloss and cat columns"),
    (b"file,gloss,cat,gloss\nclip_0001_a,0,0,1\n", "gloss more than once"),
])
def test_a_file_that_cannot_be_kept_exactly_is_refused_and_left_as_it_was(tmp_path, data, reason):
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    with pytest.raises(LabelsFileRefused) as caught:
        write_labels(path, NEW)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value)
    assert path.read_bytes() == data and caught.value.exit_code == 2


def test_without_an_earlier_file_the_rows_are_written_sorted(tmp_path):
    path = tmp_path / "labels.csv"
    assert write_labels(path, NEW)
    assert path.read_bytes() == b"file,gloss,cat\nclip_0003_new,2,1\nclip_0004_other,0,0\n"


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")
def test_extract_refuses_before_extracting_anything(tmp_path):
    """The refusal comes before the first video is read: nothing is extracted that then has no label."""
    pytest.importorskip("cv2")
    from slr.extract.command import extract_from_settings
    from slr.settings import ExtractSettings

    video = tmp_path / "clip_0001_one.mp4"
    video.write_bytes(b"not read")  # never opened: the refusal comes first
    out = tmp_path / "clips"
    out.mkdir()
    data = "file;gloss;cat\nclip_0009_café;0;0\n".encode("latin-1")
    (out / "labels.csv").write_bytes(data)
    classes = tmp_path / "classes.csv"
    classes.write_text("gloss,name,cat\n0,one,0\n")
    settings = ExtractSettings(videos=[video], output_dir=out, classes_csv=classes)
    with pytest.raises(LabelsFileRefused, match="no video was extracted"):
        extract_from_settings(settings)
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv"] and (out / "labels.csv").read_bytes() == data
