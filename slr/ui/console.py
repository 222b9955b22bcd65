"""The two consoles slr writes to, and how errors are shown.

Rich renders panels and progress bars on a terminal; when output goes to a file or a pipe the same
calls produce plain lines, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from functools import lru_cache

from rich.console import Console
from rich.markup import escape

from slr.errors import spell_settings


#: The exit status of a command whose output pipe was closed (`slr predict ... | head -1`): that of
#: a process ended by SIGPIPE (128 + 13), as `yes | head -1` gives `yes` under `set -o pipefail`.
CLOSED_PIPE_STATUS = 141
_GONE = (errno.EPIPE, errno.EIO)  # EIO: the terminal it wrote to was closed (SIGHUP)
_keep_going = {"on": False}


def keep_going_without_stdout() -> None:
    """For training: when stdout goes away (`slr train ... | head -1`, a closed terminal), the run
    carries on with its output discarded; its checkpoints and log are what matters. Other commands
    end quietly with CLOSED_PIPE_STATUS."""
    _keep_going["on"] = True


def is_closed_output(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _GONE


def discard_stream(stream) -> None:
    """Point ``stream``'s descriptor at /dev/null, so that later writes and Python's flush at exit
    neither fail nor print "Exception ignored ... BrokenPipeError"."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


class _Console(Console):
    """A rich Console that survives its output going away (rich's own answer is exit status 1,
    silently, which stopped training after the first epoch)."""

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except OSError as exc:  # rich catches only BrokenPipeError; a closed terminal gives EIO
            if not is_closed_output(exc):
                raise
            self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        self.quiet = True
        del self._buffer[:]
        discard_stream(self.file)
        if not (_keep_going["on"] or self.stderr):
            raise SystemExit(CLOSED_PIPE_STATUS)


#: Longest name (path, clip, class) printed whole; longer ones keep their start and end.
NAME_LIMIT = 200
#: Longest line of a message printed whole (a message may quote a name, or many).
LINE_LIMIT = 1000
#: Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts colour and
#: cursor sequences, U+009B is a one-character CSI), DEL, and the bidirectional overrides that
#: make text read in another order than it is stored.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def _escape_control(match: re.Match) -> str:
    char = match.group()
    return _NAMED_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _shorten_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note_room = len(f"…[{len(text):,} characters left out]…")
    keep = max(limit - note_room, 2)
    note = f"…[{len(text) - keep:,} characters left out]…"
    return text[: keep - keep // 2] + note + text[len(text) - keep // 2 :]


def shown_name(name: object, limit: int = NAME_LIMIT) -> str:
    """A path, clip or class name as a terminal may print it: control characters escaped
    (`\\x1b`, `\\x00`, `\\n`), and over `limit` characters its middle left out.

    Every view prints names through this (or `shown_text`); JSON output is left to `json.dumps`,
    which escapes control characters itself.
    """
    return _shorten_middle(_CONTROLS.sub(_escape_control, str(name)), limit)


def shown_text(text: object, line_limit: int = LINE_LIMIT) -> str:
    """A message or line that may quote names: control characters escaped except line breaks,
    and each line over `line_limit` characters shortened in the middle."""
    lines = str(text).split("\n")
    return "\n".join(_shorten_middle(_CONTROLS.sub(_escape_control, line), line_limit) for line in lines)


@lru_cache(maxsize=None)
def out() -> Console:
    return _Console(highlight=False, soft_wrap=not _is_tty(1))


@lru_cache(maxsize=None)
def err() -> Console:
    return _Console(stderr=True, highlight=False, soft_wrap=True)


def flush_stdout_or_exit() -> None:
    """At the end of a command: output still buffered for a closed pipe ends it quietly, with
    CLOSED_PIPE_STATUS, instead of Python's "Exception ignored" message at exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError as exc:
            if not is_closed_output(exc):
                raise
            discard_stream(stream)
            if stream is sys.stdout and not _keep_going["on"]:
                raise SystemExit(CLOSED_PIPE_STATUS) from None
        except ValueError:  # closed by the caller
            pass


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def interactive() -> bool:
    """True when stdout is a terminal: show live progress bars and panels."""
    return out().is_terminal


def print_error(message: str) -> None:
    err().print(f"[bold red]error:[/] {escape(shown_text(spell_settings(message)))}", markup=True, highlight=False)


def print_notice(message: str) -> None:
    """A one-line notice, e.g. an option that does nothing on this hardware."""
    err().print(f"[yellow]notice:[/] {escape(shown_text(spell_settings(message)))}", markup=True, highlight=False)


def print_json(value) -> None:
    """A JSON document on stdout, for machines (`--json`)."""
    import json

    out().out(json.dumps(value, indent=2, ensure_ascii=False), highlight=False)
