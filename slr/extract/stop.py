"""SIGTERM and SIGHUP during `slr extract`: stop as Ctrl-C does, with one line, no worker tracebacks.

Python's default for SIGTERM (a scheduler, `kill`, `timeout`) and SIGHUP (the terminal closed) ends
the process at once: no word, and the worker processes, finding their pipe gone, printed
`BrokenPipeError` tracebacks. Here both raise `ExtractInterrupted` in the main process, which goes
up through the worker pool (that kills its workers on the way) to the command line. There is no
partial clip to save: each is written whole or not at all (writer.py), so stopping at once loses
only the videos in progress, and a re-run skips the clips already written.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

EXIT_STATUS = {"SIGTERM": 143, "SIGHUP": 129}


class ExtractInterrupted(KeyboardInterrupt):
    """A stop signal arrived; like Ctrl-C's KeyboardInterrupt, nothing below may swallow it."""

    def __init__(self, name: str):
        super().__init__(name)
        self.signal_name = name
        self.exit_code = EXIT_STATUS[name]


def _raise(number: int, frame: object) -> None:
    name = signal.Signals(number).name
    for other in EXIT_STATUS:  # the first one counts; a repeat while stopping would interrupt the cleanup
        if hasattr(signal, other):
            signal.signal(getattr(signal, other), signal.SIG_IGN)
    raise ExtractInterrupted(name)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `ExtractInterrupted` (main thread only)."""
    previous = {}
    try:
        for name in EXIT_STATUS:
            if hasattr(signal, name):
                previous[name] = signal.signal(getattr(signal, name), _raise)
    except ValueError:  # not the main thread: signals cannot be handled here
        pass
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
