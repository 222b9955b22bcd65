"""Errors that reach the user as one message and an exit status, never as a traceback.

Library code raises these; the CLI prints ``str(error)`` and exits with ``error.exit_code``.
"""

from __future__ import annotations

from pathlib import Path


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
