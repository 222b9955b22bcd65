"""The two consoles slr writes to, and how errors are shown.

Rich renders panels and progress bars on a terminal; when output goes to a file or a pipe the same
calls produce plain lines, so logs stay readable.
"""

from __future__ import annotations

import os
from functools import lru_cache

from rich.console import Console
from rich.markup import escape

from slr.errors import spell_settings


@lru_cache(maxsize=None)
def out() -> Console:
    return Console(highlight=False, soft_wrap=not _is_tty(1))


@lru_cache(maxsize=None)
def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def interactive() -> bool:
    """True when stdout is a terminal: show live progress bars and panels."""
    return out().is_terminal


def print_error(message: str) -> None:
    err().print(f"[bold red]error:[/] {escape(spell_settings(message))}", markup=True, highlight=False)


def print_notice(message: str) -> None:
    """A one-line notice, e.g. an option that does nothing on this hardware."""
    err().print(f"[yellow]notice:[/] {escape(spell_settings(message))}", markup=True, highlight=False)


def print_json(value) -> None:
    """A JSON document on stdout, for machines (`--json`)."""
    import json

    out().out(json.dumps(value, indent=2, ensure_ascii=False), highlight=False)
