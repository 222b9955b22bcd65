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
