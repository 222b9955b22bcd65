"""Hostile and absurd input: files built to exhaust memory or time, values that overflow, names
that would drive the terminal. Each is refused (or shown safely) with one message naming the file.

Where a fault would eat the machine without its protection, the command runs in a subprocess
under an address-space limit (`RLIMIT_AS`), so that a regression fails the test (a MemoryError,
an internal error) instead of swapping; a time limit guards the ones that would hang.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.config import MAX_CONFIG_BYTES, read_config_file
from slr.data.augment import keypoint_layout, normalize_clip
from slr.data.clip_limits import LARGEST_USABLE_VALUE, ClipLimits, batch_value_note, clip_limits
from slr.data.clips import read_clip
from slr.data.synthetic import write_synthetic_dataset
from slr.data.validate import check_training_data, validate_directory, validation_specs
from slr.errors import ConfigError, DataError
from slr.settings import ClipLimitSettings

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)
#: Address space a guarded subprocess may use: slr validate needs a few hundred MB.
MEMORY_LIMIT = 2 << 30


def run_slr(*args: str, cwd: Path, memory: int = MEMORY_LIMIT, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m slr ARGS` under an address-space limit; `timeout` only stops a hang (it is not a speed test)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "slr", *args], cwd=cwd, env=env, preexec_fn=limit, capture_output=True,
        text=True, timeout=timeout,
    )


# --- config files ------------------------------------------------------------------------------


def alias_bomb() -> str:
    """Eight levels of nine aliases under a known key: 9**8 = 43 million values from ~300 bytes."""
    levels = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        levels.append(f"&{name} [" + ", ".join(f"*{prev}" for _ in range(9)) + "]")
    return "num_gloss: [" + ", ".join(levels) + "]\n"


@pytest.mark.slow  # a child process under a memory limit
def test_a_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert bomb.stat().st_size < 500
    result = run_slr("train", "--config", str(bomb), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr[-500:]
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 300, result.stderr[:500]
    assert "bomb.yaml" in result.stderr and "aliases" in result.stderr


def test_an_alias_inside_itself_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("num_gloss: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml: .*expand forever"):
        read_config_file(path)


def test_a_config_file_too_large_to_be_one_is_not_read(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1) + "epochs = 3\n")
    with pytest.raises(ConfigError, match=r"big\.toml: .* too large for a config file"):
        read_config_file(path)


def test_a_long_value_is_quoted_short(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(f'num_gloss: "{"x" * 100_000}"\n')
    result = runner.invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2
    assert "long.yaml" in result.output and "--num-gloss" in result.output
    assert len(result.output) < 400, len(result.output)


@pytest.mark.parametrize(
    "name, text", [("two.yaml", "num-gloss: 5\nnum_gloss: 6\n"), ("two.toml", "num-gloss = 5\nnum_gloss = 6\n")]
)
def test_both_spellings_of_one_setting_are_one_key(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = runner.invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2
    assert name in result.output and "given twice" in result.output and "num_gloss" in result.output


def test_a_fifo_as_config_says_what_it_is(tmp_path):
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["train", "--config", str(fifo)])
    assert result.exit_code == 2
    assert "settings.yaml" in result.output and "FIFO" in result.output and "not found" not in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A one-epoch tiny transformer on synthetic clips: its directory, data and last checkpoint."""
    from slr.engine.run import train
    from slr.settings import TrainSettings

    root = tmp_path_factory.mktemp("hostile-run")
    options = dict(num_gloss=3, num_cat=2, feature_dim=16, min_frames=6, max_frames=12)
    write_synthetic_dataset(root / "train", 12, seed=1, **options)
    write_synthetic_dataset(root / "val", 6, seed=2, **options)
    settings = TrainSettings(
        model="transformer", keypoints_train=root / "train", keypoints_val=root / "val", num_gloss=3, num_cat=2,
        epochs=1, batch_size=6, output_dir=root / "run", plots=False, **TINY,
    )
    train(settings)
    return {"root": root, "last": root / "run" / "SignTransformer_last.pt", "val": root / "val"}


@pytest.mark.slow  # trains the module's checkpoint
def test_resume_config_errors_name_the_file(trained, tmp_path):
    config = tmp_path / "more.yaml"
    config.write_text("epochs: 3\nlr: -1\n")
    result = runner.invoke(app, ["resume", str(trained["last"]), "--config", str(config)])
    assert result.exit_code == 2
    assert "more.yaml" in result.output and "--lr" in result.output, result.output


# --- clip files: sizes read from the headers ---------------------------------------------------


def write_zeros_npz(path: Path, shape: tuple[int, ...], key: str = "X", chunk: int = 1 << 24) -> Path:
    """An .npz whose `key` is float32 zeros of `shape`, deflated to about 1/1000, without ever
    holding the array: one compressed chunk of zeros, repeated (a full flush resets the compressor,
    so every chunk compresses to the same bytes). A real zip archive, CRC included."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    header = header.getvalue()
    data_size = int(np.prod(shape)) * 4
    chunks, rest = divmod(data_size, chunk)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = bytes(chunk)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = deflate.compress(zero) + deflate.flush(zlib.Z_FULL_FLUSH) if chunks else b""
    tail = deflate.compress(bytes(rest)) + deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(chunks):
        crc = zlib.crc32(zero, crc)
    crc = zlib.crc32(bytes(rest), crc)
    size, packed = len(header) + data_size, len(head) + chunks * len(body) + len(tail)
    assert size < 2**32  # plain zip fields, no zip64
    name = f"{key}.npy".encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, packed, size, len(name), 0) + name)
        f.write(head)
        for _ in range(chunks):
            f.write(body)
        f.write(tail)
        central_at = f.tell()
        central = struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, packed, size, len(name), 0, 0, 0, 0, 0, 0
        ) + name
        f.write(central)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), central_at, 0))
    return path


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    """Four good synthetic clips (gloss 0..1) to add one hostile clip to."""
    directory = tmp_path / "clips"
    write_synthetic_dataset(directory, 4, num_gloss=2, num_cat=1, feature_dim=8, min_frames=5, max_frames=8)
    return directory


def add_clip(directory: Path, name: str, make) -> Path:
    """Write a clip with `make(path)` and give it a labels row (gloss 0, cat 0)."""
    path = directory / f"{name}.npz"
    make(path)
    with open(directory / "labels.csv", "a") as f:
        f.write(f"{name},0,0\n")
    return path


def problems_of(directory: Path, **options) -> dict[str, list[str]]:
    report = validate_directory(directory, specs=validation_specs("X", "X2048"), **options)
    found: dict[str, list[str]] = {}
    for p in report.problems:
        found.setdefault(p.kind, []).append(f"{p.file}: {p.message}")
    return found


def test_the_default_limits_are_far_above_real_clips(asl_words_dir):
    """Real clips (and FSL-105's few hundred frames) pass; the defaults are in the settings."""
    defaults = ClipLimitSettings()
    assert defaults.max_clip_frames >= 10 * 300 and defaults.max_clip_mb * (1 << 20) >= 300 * 2048 * 8 * 10
    report = validate_directory(asl_words_dir / "val", specs=validation_specs("X", "X2048"))
    assert not [p for p in report.problems if p.kind == "too_large"]


@pytest.mark.slow
def test_a_zip_of_zeros_is_refused_before_it_is_decompressed(clip_dir, tmp_path):
    """2 MB on disk, 2.1 GB of float32 zeros inside (5,000 frames: within the frame limit): without
    the size checks validate allocated it all."""
    bomb = add_clip(clip_dir, "bomb", lambda p: write_zeros_npz(p, (5_000, 107_520)))
    assert bomb.stat().st_size < 4 << 20
    result = run_slr("validate", str(clip_dir), "--json", cwd=tmp_path, memory=int(1.5 * (1 << 30)))
    assert result.returncode == 1, result.stderr[-500:]
    problems = json.loads(result.stdout)["problems"]
    assert set(problems) == {"too_large"}, problems
    (item,) = problems["too_large"]["items"]
    assert item["file"] == "bomb.npz" and "--max-clip-mb" in item["message"], item


@pytest.mark.slow  # predict and evaluate load a model
def test_a_clip_of_too_many_frames_is_refused_everywhere_by_name(clip_dir, trained, tmp_path):
    """100,000 frames passed validate, then training asked for hundreds of GB of attention."""
    def long_clip(path: Path) -> None:
        np.savez_compressed(path, X=np.full((100_000, 156), 0.5, np.float32))

    long = add_clip(clip_dir, "long", long_clip)
    found = problems_of(clip_dir)
    assert list(found) == ["too_large"] and "long.npz" in found["too_large"][0]
    assert "100,000 frames" in found["too_large"][0] and "{{max_clip_frames}}" in found["too_large"][0]
    # The setting raises the limit (and the same clip is then read).
    assert "too_large" not in problems_of(clip_dir, limits=clip_limits(ClipLimitSettings(max_clip_frames=100_000)))

    with pytest.raises(DataError, match=r"long\.npz.*100,000 frames"):
        check_training_data(clip_dir, None, key="X", num_gloss=2, num_cat=1)
    with pytest.raises(DataError, match=r"long\.npz.*\{\{max_clip_frames\}\}"):
        read_clip(long, "X")

    predicted = runner.invoke(app, ["predict", str(trained["last"]), str(long)])
    assert predicted.exit_code == 2 and "long.npz" in predicted.output and "--max-clip-frames" in predicted.output
    val = tmp_path / "val"
    shutil.copytree(trained["val"], val)
    shutil.copy(long, val / "long.npz")
    with open(val / "labels.csv", "a") as f:
        f.write("long,0,0\n")
    evaluated = runner.invoke(app, ["evaluate", str(trained["last"]), "--keypoints", str(val),
                                    "--output-dir", str(tmp_path / "eval")])
    assert evaluated.exit_code == 2 and "long.npz" in evaluated.output and "--max-clip-frames" in evaluated.output
    assert "internal error" not in predicted.output + evaluated.output


def test_a_member_declaring_more_than_its_array_is_refused(tmp_path):
    """The zip entry's declared size is checked too: a small array followed by megabytes of padding."""
    path = tmp_path / "padded.npz"
    array = io.BytesIO()
    np.lib.format.write_array(array, np.zeros((5, 156), np.float32))
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", array.getvalue() + bytes(2 << 20))
    assert read_clip(path, "X").shape == (5, 156)  # within the default limits it is read as before
    with pytest.raises(DataError, match=r"padded\.npz: 'X' would decompress to 2\.0 MB"):
        read_clip(path, "X", limits=ClipLimits(max_frames=10_000, max_bytes=1 << 20))


def test_a_header_declaring_more_than_the_member_holds_is_refused_unread(tmp_path):
    """A forged entry: its header claims 2 MB, the entry holds only the header. numpy would allocate
    the header's size before finding the data missing; the limit is checked first."""
    path = tmp_path / "forged.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100, 5000)})
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header.getvalue())
    with pytest.raises(DataError, match=r"forged\.npz: 'X' would take 1\.9 MB in memory.*\{\{max_clip_mb\}\} \(1\.0 MB\)"):
        read_clip(path, "X", limits=ClipLimits(max_frames=10_000, max_bytes=1 << 20))


# --- class ids ---------------------------------------------------------------------------------


@pytest.mark.slow  # a child process under a memory limit
@pytest.mark.parametrize("extra", [[], ["--num-gloss", "2000000000"]])
def test_a_huge_class_id_or_count_does_not_enumerate_every_id(clip_dir, tmp_path, extra):
    shutil.copy(next(clip_dir.glob("*.npz")), clip_dir / "odd.npz")
    with open(clip_dir / "labels.csv", "a") as f:
        f.write("odd,999999999,0\n")
    result = run_slr("validate", str(clip_dir), *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-800:] + result.stderr[-500:]  # an empty class is a warning
    assert "internal error" not in result.stderr and "MemoryError" not in result.stdout + result.stderr
    top = 2_000_000_000 if extra else 1_000_000_000
    assert f"{top - 3:,}".replace(",", "") + f" gloss id(s) of 0..{top - 1} have no clips: 2, 3, 4," in result.stdout


# --- values --------------------------------------------------------------------------------------


def test_a_clip_of_width_zero_is_refused_by_name(clip_dir):
    path = add_clip(clip_dir, "empty width", lambda p: np.savez(p, X=np.zeros((20, 0), np.float32)))
    found = problems_of(clip_dir)
    assert list(found) == ["zero_width"] and found["zero_width"][0].startswith("empty width.npz: ")
    with pytest.raises(DataError, match=r"empty width\.npz: 'X' has no values per frame"):
        read_clip(path, "X")
    with pytest.raises(DataError, match=r"No values per frame.*empty width\.npz"):
        check_training_data(clip_dir, None, key="X", num_gloss=2, num_cat=1)


@pytest.mark.parametrize("scale", [1e30, 3e38])
def test_values_whose_squares_overflow_are_refused_by_name(clip_dir, scale):
    """1e30 was normalised to all zeros (the scale overflowed); 3e38 ended in a non-finite loss
    blamed on the learning rate. Both are refused before training, naming the clip."""
    values = np.random.default_rng(0).random((10, 156), dtype=np.float32) * np.float32(scale)
    path = add_clip(clip_dir, "huge", lambda p: np.savez(p, X=values))
    found = problems_of(clip_dir)
    assert list(found) == ["huge_values"] and found["huge_values"][0].startswith("huge.npz: ")
    with pytest.raises(DataError, match=r"huge\.npz: 'X' has values up to"):
        read_clip(path, "X")
    with pytest.raises(DataError, match=r"Values too large.*huge\.npz"):
        check_training_data(clip_dir, None, key="X", num_gloss=2, num_cat=1)


@pytest.mark.parametrize("width", [156, 84])
def test_normalisation_is_right_up_to_the_largest_accepted_value(width):
    """Just below the refusal limit the shoulder width and the spread used to overflow float32,
    which zeroed the clip; they are computed in float64 now."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, (6, width)) * 0.99 * LARGEST_USABLE_VALUE).astype(np.float32)
    out = normalize_clip(x, keypoint_layout(width))
    assert np.isfinite(out).all() and np.abs(out).max() > 0.1
    small = normalize_clip(x / np.float32(1e18), keypoint_layout(width))  # scale-free: the same clip
    np.testing.assert_allclose(out, small, rtol=1e-4, atol=1e-5)


def test_a_non_finite_loss_from_the_data_is_said_to_be_the_datas():
    names = ["a.npz", "b.npz"]
    assert batch_value_note(np.random.default_rng(0).random((2, 5, 156)), names) is None
    loud = np.ones((2, 5, 156), np.float32)
    loud[1, 2, 3] = 1e12
    assert "1.0e+12" in batch_value_note(loud, names) and "a.npz, b.npz" in batch_value_note(loud, names)
    loud[0, 0, 0] = np.nan
    assert "NaN" in batch_value_note(loud, names)


# --- names on a terminal -----------------------------------------------------------------------


def test_names_on_a_terminal_are_escaped_and_shortened():
    from slr.ui.console import NAME_LIMIT, shown_name

    shown = shown_name("a\x1b[2Jb\x00c\x9bd\u202ee\nf")
    assert shown == "a\\x1b[2Jb\\x00c\\x9bd\\u202ee\\nf"
    long = "start" + "x" * 200_000 + "end"
    shortened = shown_name(long)
    assert len(shortened) <= NAME_LIMIT and shortened.startswith("start") and shortened.endswith("end")
    head, note, tail = shortened.split("…")
    assert note == f"[{len(long) - len(head) - len(tail):,} characters left out]"


def test_validate_prints_hostile_names_escaped_and_short_but_json_keeps_them(clip_dir):
    name = "\x1b[2J\x1b]0;owned\x07" + "n" * 200_000
    with open(clip_dir / "labels.csv", "a") as f:
        f.write(f'"{name}",0,0\n')
    text = runner.invoke(app, ["validate", str(clip_dir)])
    assert text.exit_code == 1
    assert "\x1b" not in text.output and "\x07" not in text.output and "\\x1b[2J" in text.output
    assert max(len(line) for line in text.output.splitlines()) < 1100
    data = json.loads(runner.invoke(app, ["validate", str(clip_dir), "--json"]).output)
    (item,) = data["problems"]["missing_clip"]["items"]
    assert item["file"] == name + ".npz"


def test_errors_and_predictions_escape_names(tmp_path, capsys):
    from slr.analysis.predict import Prediction
    from slr.ui.predict_view import print_predictions

    result = runner.invoke(app, ["train", "--config", str(tmp_path / "\x1b[31mred.yaml")])
    assert result.exit_code == 2 and "\x1b" not in result.output and "\\x1b[31mred.yaml" in result.output
    print_predictions([Prediction(Path("clip\x1b[5m.npz"), 3, [(0, "x" * 100_000 + "\x00", 0.9)], (0, "c\x9b", 0.9))])
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x00" not in printed and "\x9b" not in printed
    assert "clip\\x1b[5m.npz" in printed and max(len(line) for line in printed.splitlines()) < 300


@pytest.mark.parametrize("layout", ["fortran", "big-endian", "int16", "compressed"])
def test_the_bounded_reader_reads_what_numpy_reads(tmp_path, layout):
    """Arrays within the limits are read from their checked header, not by numpy: the same values."""
    x = np.random.default_rng(0).random((7, 156)) * 100
    arrays = {
        "fortran": np.asfortranarray(x.astype(np.float32)),
        "big-endian": x.astype(">f8"),
        "int16": x.astype(np.int16),
        "compressed": x.astype(np.float32),
    }
    path = tmp_path / "clip.npz"
    (np.savez_compressed if layout == "compressed" else np.savez)(path, X=arrays[layout])
    with np.load(path) as archive:
        expected = archive["X"].astype(np.float32)
    read = read_clip(path, "X")
    np.testing.assert_array_equal(read, expected)
    assert read.flags.writeable
