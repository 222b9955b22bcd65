"""`slr validate` and `check_training_data`: a corpus of malformed inputs, one problem each.

Each case breaks one thing in a copy of a clean directory and expects exactly that problem, with
a message naming the file; the CLI cases check exit codes, output and the real data.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.data.clips import read_clip, read_clip_width
from slr.data.synthetic import SyntheticClips, make_synthetic_clips, write_clips, write_synthetic_dataset
from slr.data.validate import check_training_data, validate_directory, validation_specs
from slr.errors import DataError
from slr.ui.validate_view import SHOWN_PER_KIND
from shown import raises_shown, shown

FIRST = "clip_0001_gloss 0.npz"  # the clean directory's first clip (gloss 0, category 0)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    """Six clips, two per gloss 0..2 in gloss order: X [T, 156], X2048 [T, 16]; category = gloss % 2."""
    clips = make_synthetic_clips(6, num_gloss=3, num_cat=2, feature_dim=16, min_frames=4, max_frames=8)
    order = np.argsort(clips.gloss, kind="stable")
    ordered = SyntheticClips(
        x=[clips.x[i] for i in order],
        features=[clips.features[i] for i in order],
        gloss=clips.gloss[order],
        cat=clips.cat[order],
        names=[f"clip_{n + 1:04d}_gloss {clips.gloss[i]}" for n, i in enumerate(order)],
    )
    directory = write_clips(tmp_path_factory.mktemp("clean") / "clips", ordered)
    assert (directory / FIRST).is_file()
    return directory


@pytest.fixture
def broken(clean_dir, tmp_path) -> Path:
    target = tmp_path / "clips"
    shutil.copytree(clean_dir, target)
    return target


def save(directory: Path, name: str = FIRST, **arrays) -> None:
    np.savez(directory / name, **arrays)


def frames(t: int = 5, d: int = 156) -> np.ndarray:
    return np.random.default_rng(0).random((t, d), dtype=np.float32) + 0.1


def set_labels(directory: Path, rows: str) -> None:
    (directory / "labels.csv").write_text("file,gloss,cat\n" + rows)


def labels_of(directory: Path) -> list[str]:
    return (directory / "labels.csv").read_text().splitlines()


class Evil:
    """Unpickling this would create a file: proof that validate never unpickles."""

    marker: Path

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _object_array(d: Path) -> None:
    Evil.marker = d.parent / "unpickled"
    np.savez(d / FIRST, X=np.array([Evil()], dtype=object), allow_pickle=True)


def _truncate(d: Path) -> None:
    data = (d / FIRST).read_bytes()
    (d / FIRST).write_bytes(data[: len(data) // 2])


def _corrupt_member(d: Path) -> None:
    np.savez_compressed(d / FIRST, X=frames(50))
    data = bytearray((d / FIRST).read_bytes())
    for i in range(200, 260):  # inside the deflated data of X
        data[i] ^= 0xFF
    (d / FIRST).write_bytes(bytes(data))


def _duplicate_row(d: Path) -> None:
    rows = labels_of(d)
    (d / "labels.csv").write_text("\n".join(rows + [rows[1]]) + "\n")


def _missing_clip(d: Path) -> None:
    (d / FIRST).unlink()


def _unlabelled_clip(d: Path) -> None:
    save(d, "clip_0099_extra.npz", X=frames())


def _two_categories(d: Path) -> None:
    rows = labels_of(d)
    rows[1] = f"{FIRST[:-4]},0,1"  # gloss 0 is in category 0 everywhere else
    (d / "labels.csv").write_text("\n".join(rows) + "\n")


def _npy_member_not_npy(d: Path) -> None:
    """An npz whose X.npy is a pickle, not a .npy array: numpy hands back raw bytes for it."""
    with zipfile.ZipFile(d / FIRST, "w") as archive:
        archive.writestr("X.npy", pickle.dumps(frames()))


def _deep_header(d: Path) -> None:
    """X.npy with a header of 4,000 nested parentheses: numpy quotes all of it in its error."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, frames(), version=(1, 0))
    header = ("(" * 2000 + ")" * 2000).encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = buffer.getvalue()[:6] + bytes([2, 0]) + len(header).to_bytes(4, "little") + header
    with zipfile.ZipFile(d / FIRST, "w") as archive:
        archive.writestr("X.npy", member + frames().tobytes())


def _replace_with(make):
    def edit(d: Path) -> None:
        (d / FIRST).unlink()
        make(d / FIRST)

    return edit


def _second_case(d: Path) -> None:
    """The same clip name twice: labels.csv cannot say which of the two it means."""
    shutil.copy(d / FIRST, d / (FIRST[:-4] + ".NPZ"))


def _replace_label(old: str, new: str):
    def edit(d: Path) -> None:
        rows = labels_of(d)
        rows[1] = rows[1].replace(old, new)
        (d / "labels.csv").write_text("\n".join(rows) + "\n")

    return edit


# (id, how to break the copy, extra validate options, kind, file named, message fragment)
CORPUS = [
    ("text-file", lambda d: (d / FIRST).write_text("hello, I am not an archive"), {}, "unreadable", FIRST, "not an .npz archive"),
    ("empty-file", lambda d: (d / FIRST).write_bytes(b""), {}, "unreadable", FIRST, "empty file"),
    ("truncated", _truncate, {}, "unreadable", FIRST, "corrupt or truncated"),
    ("corrupt-member", _corrupt_member, {}, "unreadable", FIRST, "cannot read 'X'"),
    ("bare-npy", lambda d: np.save(d / "x.npy", frames()) or os.replace(d / "x.npy", d / FIRST), {}, "unreadable", FIRST, "single .npy"),
    ("missing-key", lambda d: save(d, mask=np.ones((5, 78), bool)), {}, "missing_key", FIRST, "no key 'X' (keys in the file: mask)"),
    ("object-array", _object_array, {}, "object_array", FIRST, "object array; refused"),
    ("string-dtype", lambda d: save(d, X=np.array([["a", "b"], ["c", "d"]])), {}, "bad_dtype", FIRST, "dtype <U1"),
    ("complex-dtype", lambda d: save(d, X=frames().astype(np.complex64)), {}, "bad_dtype", FIRST, "complex64"),
    ("one-dim", lambda d: save(d, X=np.ones(156, np.float32)), {}, "bad_shape", FIRST, "shape [156], expected [T, D]"),
    ("three-dim", lambda d: save(d, X=np.ones((5, 78, 2), np.float32)), {}, "bad_shape", FIRST, "[5, 78, 2]"),
    ("no-frames", lambda d: save(d, X=np.zeros((0, 156), np.float32)), {}, "empty_clip", FIRST, "no frames"),
    ("wrong-width", lambda d: save(d, X=frames(d=150)), {}, "bad_width", FIRST, "150 wide, expected 156 (the most common"),
    ("width-as-set", lambda d: None, {"kp_dim": 150}, "bad_width", FIRST, "expected 150 (required)"),
    ("nan", lambda d: save(d, X=np.where(np.arange(5)[:, None] == 2, np.nan, frames())), {}, "non_finite", FIRST, "NaN or infinite values in 1 of 5 frames"),
    ("inf", lambda d: save(d, X=np.full((4, 156), np.inf, np.float32)), {}, "non_finite", FIRST, "4 of 4 frames"),
    ("zero-frames", lambda d: save(d, X=np.vstack([np.zeros((4, 156), np.float32), frames(2)])), {}, "zero_frames", FIRST, "4 of 6 frames are all zero"),
    ("no-labels", lambda d: (d / "labels.csv").unlink(), {}, "labels_missing", "labels.csv", "not found"),
    ("empty-labels", lambda d: (d / "labels.csv").write_text(""), {}, "labels_empty", "labels.csv", "empty"),
    ("labels-columns", lambda d: (d / "labels.csv").write_text("file,label\nx,1\n"), {}, "labels_columns", "labels.csv", "missing column(s) gloss;"),
    ("non-integer-id", _replace_label(",0,0", ",zero,0"), {}, "non_integer_id", FIRST, "gloss 'zero' is not an integer"),
    ("negative-id", _replace_label(",0,0", ",0,-2"), {}, "negative_id", FIRST, "cat -2 is negative"),
    ("gloss-out-of-range", lambda d: None, {"num_gloss": 2}, "id_out_of_range", None, "outside 0..1 (--num-gloss 2)"),
    ("cat-out-of-range", lambda d: None, {"num_cat": 1}, "id_out_of_range", None, "outside 0..0 (--num-cat 1)"),
    ("duplicate-row", _duplicate_row, {}, "duplicate_row", FIRST, "repeats line 2"),
    ("missing-clip", _missing_clip, {}, "missing_clip", FIRST, "labels.csv line 2 names it, but it is not in"),
    ("unlabelled-clip", _unlabelled_clip, {}, "unlabelled_clip", "clip_0099_extra.npz", "no row in labels.csv"),
    ("empty-class", lambda d: None, {"num_gloss": 5}, "empty_class", "labels.csv", "2 gloss id(s) of 0..4 have no clips: 3, 4"),
    ("two-categories", _two_categories, {}, "gloss_in_two_categories", "labels.csv", "gloss 0 is in categories"),
    ("features-missing", lambda d: save(d, X=frames()), {"require_features": True, "feature_dim": 16}, "missing_key", FIRST, "no key 'X2048'"),
    ("features-width", lambda d: None, {"require_features": True}, "bad_width", None, "'X2048' is 16 wide, expected 2048 (required)"),
    ("beyond-float32", lambda d: save(d, X=frames().astype(np.float64) * 1e300), {}, "non_finite", FIRST, "5 of 5 frames (5 of them only once read as float32"),
    ("npy-member-not-npy", _npy_member_not_npy, {}, "unreadable", FIRST, "'X.npy' is not a .npy array"),
    ("deep-header", _deep_header, {}, "unreadable", FIRST, "Cannot parse header"),
    ("directory-as-clip", _replace_with(Path.mkdir), {}, "not_a_file", FIRST, "is a directory, not a clip file"),
    ("broken-link-as-clip", _replace_with(lambda p: p.symlink_to(p.parent / "gone.npz")), {}, "not_a_file", FIRST, "is a broken symbolic link"),
    ("fifo-as-clip", _replace_with(os.mkfifo), {}, "not_a_file", FIRST, "is a FIFO (named pipe), not a clip file"),
    ("same-name-twice", _second_case, {}, "name_clash", FIRST[:-4] + ".NPZ", "cannot tell them apart"),
    ("labels-directory", lambda d: (d / "labels.csv").unlink() or (d / "labels.csv").mkdir(), {}, "labels_unreadable", "labels.csv", "is a directory, not a CSV file"),
]


def run_checks(directory: Path, kp_dim=None, feature_dim=None, require_features=False, num_gloss=None, num_cat=None):
    specs = validation_specs("X", "X2048", kp_dim=kp_dim, feature_dim=feature_dim, require_features=require_features)
    return validate_directory(directory, specs=specs, num_gloss=num_gloss, num_cat=num_cat)


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 15
    assert len({case[3] for case in CORPUS}) >= 15


def test_clean_directory_has_no_problems(clean_dir):
    report = run_checks(clean_dir, require_features=True, feature_dim=16)
    assert report.problems == []
    assert report.summary()["clip_files"] == 6 and report.summary()["labelled_clips"] == 6


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_each_problem_is_found_and_names_its_file(broken, case):
    _, breaks, options, kind, file, fragment = case
    breaks(broken)
    report = run_checks(broken, **options)
    found = [p for p in report.problems if p.kind == kind]
    assert found, f"no {kind} problem in {[str(p) for p in report.problems]}"
    problem = found[0]
    assert fragment in shown(problem.message)
    if file is not None:
        assert problem.file == file
    else:  # every row trips the check; each names its own clip
        assert problem.file.endswith(".npz") and (broken / problem.file).exists()
    others = {p.kind for p in report.errors} - {kind}
    # one broken thing, one kind of error (a clip that cannot be read is also not a usable row)
    assert not others, f"unexpected extra errors: {[str(p) for p in report.errors if p.kind != kind]}"
    assert report.ok == (problem.severity == "warning")


def test_object_arrays_are_never_unpickled(broken):
    _object_array(broken)
    run_checks(broken)
    with pytest.raises(DataError, match="object array"):
        read_clip(broken / FIRST, "X")
    assert not (broken.parent / "unpickled").exists()


def test_every_problem_is_reported_in_one_run(broken):
    (broken / FIRST).write_text("not an archive")
    save(broken, "clip_0002_gloss 1.npz", X=np.zeros((0, 156), np.float32))
    _unlabelled_clip(broken)
    report = run_checks(broken, num_gloss=2)
    kinds = {p.kind for p in report.problems}
    assert {"unreadable", "empty_clip", "unlabelled_clip", "id_out_of_range"} <= kinds


def test_a_member_that_is_not_npy_does_not_stop_the_check(broken):
    _npy_member_not_npy(broken)
    save(broken, "clip_0002_gloss 1.npz", X=frames(d=150))
    report = run_checks(broken)
    assert {(p.kind, p.file) for p in report.errors} == {("unreadable", FIRST), ("bad_width", "clip_0002_gloss 1.npz")}
    for read in (read_clip, read_clip_width):  # what training, evaluate and predict call
        with pytest.raises(DataError, match=r"gloss 0\.npz: 'X.npy' is not a .npy array"):
            read(broken / FIRST, "X")


@pytest.mark.parametrize(
    "values, fragment",
    [
        (np.where(np.arange(5)[:, None] == 2, np.nan, frames()), "in 1 of 5 frames"),
        (np.full((4, 156), -np.inf, np.float32), "in 4 of 4 frames"),
        (frames().astype(np.float64) * 1e300, "5 of them only once read as float32"),
    ],
    ids=["nan", "inf", "beyond-float32"],
)
def test_read_clip_refuses_values_a_model_cannot_use(broken, values, fragment):
    """read_clip is how training, `slr evaluate` and `slr predict` read clips: none may see NaN."""
    save(broken, X=values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow is reported once, by name, not as a numpy warning
        with pytest.raises(DataError, match="NaN or infinite values") as caught:
            read_clip(broken / FIRST, "X")
        report = run_checks(broken)
    assert str(caught.value).startswith(f"{broken / FIRST}: 'X' has") and fragment in str(caught.value)
    assert [p.kind for p in report.errors] == ["non_finite"]


def test_quoted_error_text_is_cut_short(broken):
    _deep_header(broken)
    (problem,) = run_checks(broken).errors
    assert len(problem.message) < 400 and "more characters]" in problem.message
    with pytest.raises(DataError) as caught:
        read_clip(broken / FIRST, "X")
    assert len(str(caught.value)) < 400 + len(str(broken))


def test_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(DataError, match="directory not found"):
        run_checks(tmp_path / "nope")


def test_empty_directory(tmp_path):
    report = run_checks(tmp_path)
    assert {p.kind for p in report.errors} == {"no_clips", "labels_missing"}


def test_feature_key_falls_back_to_x(tmp_path):
    write_synthetic_dataset(tmp_path, 4, num_gloss=2, with_features=False)
    report = check_training_data(tmp_path, None, key="X2048", fallback_key="X", num_gloss=2, num_cat=2)
    assert report.widths == {"X2048": 156} and len(report.clips) == 4
    name = next(tmp_path.glob("*.npz"))
    assert read_clip(name, "X2048", "X").shape[1] == 156
    assert read_clip_width(name, "X2048", "X") == 156
    with pytest.raises(DataError, match="no key 'X2048'"):
        read_clip(name, "X2048")


def test_check_training_data_summarises_errors(broken):
    (broken / FIRST).write_text("not an archive")
    save(broken, "clip_0002_gloss 1.npz", X=frames(d=150))
    with pytest.raises(DataError) as caught:
        check_training_data(broken, None, key="X", num_gloss=3, num_cat=2)
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert f"Unreadable or corrupt archive: 1 ({FIRST})" in message
    assert "Wrong width D: 1 (clip_0002_gloss 1.npz)" in message
    assert shown(message).endswith(f"run `slr validate {shlex.quote(str(broken))}` for the full report")


def test_check_training_data_passes_warnings_and_keeps_the_arrays(broken):
    _unlabelled_clip(broken)
    report = check_training_data(broken, None, key="X", require_dim=156, num_gloss=3, num_cat=2)
    assert [p.kind for p in report.warnings] == ["unlabelled_clip"]
    assert len(report.clips) == 7 and all(a.dtype == np.float32 for a in report.clips.values())
    np.testing.assert_array_equal(report.clips[FIRST[:-4]], read_clip(broken / FIRST, "X"))


# --- the command line ------------------------------------------------------------------------


def cli(*args: str):
    return CliRunner().invoke(app, ["validate", *args])


def test_cli_exit_codes(broken, tmp_path):
    assert cli(str(broken)).exit_code == 0
    _unlabelled_clip(broken)
    warned = cli(str(broken))
    assert warned.exit_code == 0 and "WARNING: Clip without a labels row" in warned.output
    (broken / FIRST).write_text("junk")
    failed = cli(str(broken))
    assert failed.exit_code == 1
    assert f"  {FIRST}: not an .npz archive" in failed.output
    assert "result: 1 error(s), 1 warning(s)" in failed.output
    missing = cli(str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "directory not found" in missing.output
    assert cli(str(broken), "--labels-csv", str(tmp_path / "nope.csv")).exit_code == 2


def test_cli_json(broken):
    _missing_clip(broken)
    result = cli(str(broken), "--json", "--num-gloss", "3", "--num-cat", "2")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["errors"] == 1
    assert report["problems"]["missing_clip"]["items"][0]["file"] == FIRST
    assert report["problems"]["missing_clip"]["severity"] == "error"
    assert report["summary"]["clip_files"] == 5 and report["summary"]["widths"] == {"X": 156}


def test_cli_require_x2048_options(broken):
    assert cli(str(broken), "--require-x2048").exit_code == 1  # features are 16 wide, not 2048
    assert cli(str(broken), "--require-x2048", "--feature-dim", "16").exit_code == 0
    save(broken, X2048=frames(d=16))  # a features-only clip: no keypoints needed
    assert cli(str(broken), "--require-x2048", "--feature-dim", "16").exit_code == 0
    assert cli(str(broken)).exit_code == 1


def test_cli_labels_csv_that_is_a_directory(broken, tmp_path):
    result = cli(str(broken), "--labels-csv", str(tmp_path))
    assert result.exit_code == 2 and "is a directory, not a CSV file (--labels-csv)" in result.output


def test_cli_lists_a_few_files_per_kind_and_no_width_for_an_absent_key(tmp_path):
    """--require-x2048 on keypoint-only clips: one line per clip would bury everything else."""
    write_synthetic_dataset(tmp_path, 30, num_gloss=2, with_features=False)
    result = cli(str(tmp_path), "--require-x2048")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert sum("no key 'X2048'" in line for line in lines) == SHOWN_PER_KIND
    assert f"  ... ({30 - SHOWN_PER_KIND} more of this kind; --json lists every one)" in lines
    assert "X2048: - (in no readable clip), X: 156" in result.output  # not the required 2048
    listed = json.loads(cli(str(tmp_path), "--require-x2048", "--json").output)
    assert len(listed["problems"]["missing_key"]["items"]) == 30
    assert listed["summary"]["widths"] == {"X2048": None, "X": 156}


def test_original_file_layout_is_accepted(tmp_path):
    """X, X2048, mask, timestamps_ms, meta (a JSON string) and an extra labels column."""
    rng = np.random.default_rng(0)
    rows = []
    for i, (name, gloss, cat) in enumerate([("how are you", 0, 0), ("don't know", 1, 1), ("thank you", 2, 0)]):
        t = 5 + i
        np.savez_compressed(
            tmp_path / f"clip_{i + 1:04d}_{name}.npz",
            X=rng.random((t, 156), dtype=np.float32),
            X2048=rng.random((t, 2048), dtype=np.float32),
            mask=np.ones((t, 78), bool),
            timestamps_ms=np.arange(t, dtype=np.int64) * 33,
            meta=json.dumps({"fps": 30, "source": f"video {i}"}),
        )
        rows.append(f'"clip_{i + 1:04d}_{name}",{gloss},{cat},{i % 2}')
    (tmp_path / "labels.csv").write_text("file,gloss,cat,occluded\r\n" + "\r\n".join(rows) + "\r\n", encoding="utf-8-sig")
    assert cli(str(tmp_path), "--num-gloss", "3", "--num-cat", "2").exit_code == 0
    result = cli(str(tmp_path), "--require-x2048", "--num-gloss", "3", "--num-cat", "2")
    assert result.exit_code == 0, result.output
    assert "X2048: 2048, X: 156" in result.output


def test_validate_does_not_import_torch(synthetic_dir):
    code = (
        "import sys; from typer.testing import CliRunner; from slr.cli import app; "
        f"r = CliRunner().invoke(app, ['validate', {str(synthetic_dir)!r}]); "
        "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_real_data_validates_clean(asl_words_dir):
    """(How fast: benchmarks/validate_speed.py.)"""
    train = asl_words_dir / "train"
    result = subprocess.run(
        [sys.executable, "-m", "slr", "validate", str(train), "--num-gloss", "15", "--num-cat", "4"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3059 files, 3059 usable, 3059 labelled" in result.stdout
    assert "result: no problems found" in result.stdout
