"""Atomic writes: the new file gets the mode an ordinary write would give it."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from slr.engine import checkpoint as ckpt
from slr.atomic import write_atomically

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_file_gets_0666_minus_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = tmp_path / "log.csv"
    write_atomically(path, lambda f: f.write(b"epoch\n"))
    assert _mode(path) == expected
    assert path.read_bytes() == b"epoch\n"
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary left behind


def test_checkpoint_is_readable_by_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "SignTransformer_last.pt"
    ckpt.save_checkpoint({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model_state": {"w": torch.zeros(2)}}, path)
    assert _mode(path) == 0o644


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "settings.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_atomically(path, lambda f: f.write(b'{"a": 1}'))
    assert _mode(path) == 0o640
    assert path.read_text() == '{"a": 1}'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]
