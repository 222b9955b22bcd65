"""Errors that reach the user as one message and an exit status, never as a traceback.

Library code raises these; the CLI prints ``str(error)`` and exits with ``error.exit_code``.
"""

from __future__ import annotations

import re
from pathlib import Path

#: How library messages name a setting: ``{{lr}}``, or with a value ``{{lr=0.003}}``. The library never
#: spells a flag; the command layer shows each reference as the flag that sets it (``--lr 0.003``),
#: see :func:`spell_settings`.
_SETTING_REF = re.compile(r"\{\{([a-z][a-z0-9_]*)(?:=([^{}]*))?\}\}")


def setting(name: str, value: object = ...) -> str:
    """Refer to a setting (by its field name) inside a message, optionally with a value."""
    if value is ...:
        return "{{" + name + "}}"
    if value is None:
        value = "none"
    return "{{" + f"{name}={value}" + "}}"


def as_flag(name: str, value: str | None = None) -> str:
    """The command line's spelling: ``--name-with-dashes [value]``; booleans as ``--x`` / ``--no-x``."""
    flag = "--" + name.replace("_", "-")
    if value is None:
        return flag
    if value in ("True", "False"):
        return flag if value == "True" else "--no-" + name.replace("_", "-")
    return f"{flag} {value}"


#: A suggested command, ``[[validate DIR {{num_gloss=15}}]]``: the command layer writes it as
#: `slr validate DIR --num-gloss 15`.
_COMMAND_REF = re.compile(r"\[\[([a-z][a-z_-]*(?: [^\[\]]*)?)\]\]")


def command(name: str, *args: str) -> str:
    """Refer to a command of slr (arguments already quoted; settings as :func:`setting` references)."""
    return "[[" + " ".join((name, *args)) + "]]"


def spell_settings(text: str, spell=as_flag) -> str:
    """Replace each ``{{name}}`` / ``{{name=value}}`` by how the user sets it (flags by default), and
    each ``[[command ...]]`` by the command line that runs it."""
    text = _SETTING_REF.sub(lambda m: spell(m.group(1), m.group(2)), text)
    return _COMMAND_REF.sub(lambda m: f"`slr {m.group(1)}`", text)


class SlrError(Exception):
    """A problem the user can fix: bad input, bad settings, a refused checkpoint."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class ConfigError(SlrError):
    """An invalid settings file or value."""


class DataError(SlrError):
    """Clip files or labels that cannot be used."""


class CheckpointError(SlrError):
    """A checkpoint that cannot be loaded or does not fit the run."""


class TrainingStopped(SlrError):
    """Training stopped on purpose (non-finite loss); what was saved stays usable."""

    exit_code = 1
