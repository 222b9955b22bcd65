"""Library messages name settings as ``{{name}}``; the command line shows them as flags. Tests that
call the library check the message as a user of the command line reads it."""

from __future__ import annotations

import contextlib
import re

import pytest

from slr.errors import spell_settings


def shown(value) -> str:
    """An error or message as the command line prints it."""
    return spell_settings(str(value))


@contextlib.contextmanager
def raises_shown(kind, match: str):
    """pytest.raises(kind, match=...), matched against the message as the command line prints it."""
    with pytest.raises(kind) as info:
        yield info
    text = shown(info.value)
    assert re.search(match, text), f"{match!r} not in {text!r}"
