"""Messages for hostile input that needs no video: a bad backbone weights file, an empty path."""

from __future__ import annotations

import datetime
import pickle

import pytest
from typer.testing import CliRunner

from slr.cli import app
from slr.errors import ConfigError
from slr.models.backbone import read_state_dict


@pytest.mark.parametrize("content, said", [
    (pickle.dumps({"w": datetime.datetime(2020, 1, 1)}), "the file holds pickled Python objects, not just tensors"),
    (b"hello, not weights", "not a PyTorch weights file"),
    (b"", "not a PyTorch weights file"),
])
def test_a_bad_backbone_weights_file_is_named_without_torchs_advice(tmp_path, content, said):
    path = tmp_path / "inception.pth"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read backbone weights") and said in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert "\n" not in message


@pytest.mark.parametrize("command", [["extract", "video.mp4"], ["train", "transformer"], ["evaluate", "x.pt"]])
def test_an_empty_output_dir_is_refused(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--output-dir", ""])
    assert result.exit_code == 2
    assert "--output-dir: an empty path names no file or folder (write . for the current folder)" in result.output
    assert list(tmp_path.iterdir()) == []


# -- a non-UTF-8 locale: clip names read as labels.csv writes them ----------------------------------------


def iso_8859_1_locale(tmp_path_factory) -> dict[str, str]:
    """Environment for a child process under en_US.ISO-8859-1, built here with localedef (no root)."""
    import shutil
    import subprocess

    if shutil.which("localedef") is None:
        pytest.skip("localedef (glibc's locale compiler) is not installed; it builds en_US.ISO-8859-1 here")
    folder = tmp_path_factory.mktemp("locales")
    made = subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                          capture_output=True, text=True)
    if not (folder / "en_US.ISO-8859-1").exists():
        pytest.skip(f"localedef could not build en_US.ISO-8859-1 (glibc's locale sources missing?): {made.stderr}")
    import os

    return {**os.environ, "LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1", "PYTHONUTF8": "0"}


@pytest.mark.slow  # starts slr in child processes
def test_non_ascii_clip_names_are_found_under_a_latin1_locale(synthetic_dir, tmp_path, tmp_path_factory):
    import shutil
    import subprocess
    import sys

    env = iso_8859_1_locale(tmp_path_factory)
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"], env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "iso8859-1"  # the setting the test is about
    clips = tmp_path / "clips"
    shutil.copytree(synthetic_dir, clips)
    labels = (clips / "labels.csv").read_text(encoding="utf-8").splitlines()
    renamed = []
    for i, line in enumerate(labels[1:6], start=1):  # five clips get names with é and ñ (UTF-8 on disk)
        old = line.split(",")[0]
        new = f"clip_{i:04d}_café_niño_{i}"
        (clips / f"{old}.npz").rename(clips / f"{new}.npz")
        labels[i] = line.replace(old, new, 1)
        renamed.append(new)
    (clips / "labels.csv").write_text("\n".join(labels) + "\n", encoding="utf-8")

    validate = subprocess.run([sys.executable, "-m", "slr", "validate", str(clips), "--num-gloss", "5", "--num-cat",
                               "2", "--json"], env=env, capture_output=True, timeout=300)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert b"missing_clip" not in validate.stdout and b"unlabelled_clip" not in validate.stdout
    load = subprocess.run([sys.executable, "-c", "import sys; from slr.data.dataset import ClipDataset; "
                           "d = ClipDataset(sys.argv[1]); print(len(d)); [d[i] for i in range(len(d))]", str(clips)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert load.returncode == 0 and load.stdout.strip() == "40", load.stderr


@pytest.mark.slow  # starts slr in a child process
def test_help_written_to_a_file_names_every_flag_in_full(tmp_path):
    import os
    import subprocess
    import sys

    from slr.cli_params import flag_name
    from slr.settings import TrainSettings

    help_file = tmp_path / "help.txt"
    with open(help_file, "w") as handle:  # `slr train --help > file`
        done = subprocess.run([sys.executable, "-m", "slr", "train", "--help"], stdout=handle, stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=120, env={k: v for k, v in os.environ.items()
                                                                         if k not in ("COLUMNS", "LINES")})
    assert done.returncode == 0
    text = help_file.read_text()
    assert "…" not in text
    for name, info in TrainSettings.model_fields.items():
        if not (info.json_schema_extra or {}).get("positional"):
            assert flag_name(name, info) in text


def test_the_full_examples_link_command_points_at_the_data(tmp_path):
    """The command examples/asl-words-full.yaml suggests, run in a checkout beside shared/, links the
    data (it dangled: a link's target is read from the link's folder, data/, not the checkout)."""
    import re
    import subprocess
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "examples" / "asl-words-full.yaml").read_text()
    (suggested,) = re.findall(r"`((?:mkdir[^`]*&& )?ln -s [^`]+)`", text.replace("\n# ", " "))
    checkout, data = tmp_path / "slr", tmp_path / "shared" / "data" / "asl-words"
    (data / "train").mkdir(parents=True)
    (data / "train" / "labels.csv").write_text("file,gloss,cat\n")
    checkout.mkdir()
    subprocess.run(suggested, shell=True, cwd=checkout, check=True)
    assert (checkout / "data" / "asl-words" / "train" / "labels.csv").is_file()


@pytest.mark.slow  # runs pytest in a child process
def test_a_skip_for_missing_real_data_names_the_variable_to_set(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = {**os.environ, "SLR_VIDEOS": str(tmp_path / "no-videos"), "SLR_ASL_WORDS": str(tmp_path / "no-clips")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tests / "test_extract.py"), str(tests / "test_clips_validate.py"), "-k",
                           "what_the_real_videos_show or real"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tests.parent)
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips, done.stdout
    for line in skips:
        assert "SLR_VIDEOS" in line or "SLR_ASL_WORDS" in line, line
