"""Errors that reach the user as one message and an exit status, never as a traceback.

Library code raises these; the CLI prints ``str(error)`` and exits with ``error.exit_code``.
"""

from __future__ import annotations

import re
from pathlib import Path

#: How library messages name a setting: ``{{lr}}``. The library never spells a flag; the command
#: layer shows each reference as the flag that sets it (``--lr``), see :func:`spell_settings`.
_SETTING_REF = re.compile(r"\{\{([a-z][a-z0-9_]*)\}\}")


def setting(name: str) -> str:
    """Refer to a setting by its field name inside a message (``f"lower {setting('lr')}"``)."""
    return "{{" + name + "}}"


def spell_settings(text: str, spell=lambda name: "--" + name.replace("_", "-")) -> str:
    """Replace each ``{{name}}`` by how the user sets it; the command line's flags by default."""
    return _SETTING_REF.sub(lambda m: spell(m.group(1)), text)


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
