"""Signals that ask a training run to stop: Ctrl-C (SIGINT), SIGTERM and SIGHUP, all alike.

SIGTERM is what cluster schedulers, ``docker stop`` and torchrun send before they kill; SIGHUP comes
when the terminal closes. Python's defaults would end the process at once, losing the epoch in
progress, without a word. Here each one is only recorded: the trainer writes a resumable
checkpoint at the next step boundary and the run exits with 128 + the signal's number (130, 143,
129), as a shell reports a process ended by that signal.

A second Ctrl-C aborts at once, without saving: a checkpoint being written is still a temporary
file that never replaced the last complete one (slr/atomic.py), so that one stays loadable.
Raising KeyboardInterrupt there instead would surface at an arbitrary point (inside a save, a
DataLoader, an atexit hook) and end the process in as many ways; ``os._exit`` ends it one way.
Repeats of SIGTERM and SIGHUP are ignored: torchrun, for one, follows the terminal's SIGINT with
its own SIGTERM to every rank, and that must not turn a save into an abort.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Optional

EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
_HOW = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP (terminal closed)"}


def _signals() -> list[signal.Signals]:
    return [getattr(signal, name) for name in EXIT_STATUS if hasattr(signal, name)]


class StopSignals:
    """Installed for the training loop; ``requested`` is the first stop signal's name, or None."""

    def __init__(self, notify: Optional[Callable[[str], None]] = None):
        self.notify = notify
        self.requested: Optional[str] = None
        self._previous: dict[int, object] = {}

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.requested or "SIGINT", 130)

    @property
    def description(self) -> str:
        return _HOW.get(self.requested or "SIGINT", self.requested or "interrupt")

    def install(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread (e.g. tests in threads)
        for sig in _signals():
            with contextlib.suppress(OSError, ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers found, unless a stop is under way. Then the process is on its way
        out with its status, and a further Ctrl-C must still end it with 130: this handler stays
        (a second Ctrl-C aborts), and at exit the signals are ignored, because the interpreter's
        shutdown puts back the default action for every Python handler and would die by the signal."""
        if self.requested is not None:
            atexit.register(_ignore_stop_signals)
            self._previous.clear()
            return
        for sig, previous in self._previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous.clear()

    def __enter__(self) -> "StopSignals":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            if name == "SIGINT":
                self._abort()
            return
        self.requested = name
        again = " (Ctrl-C again to abort without saving)" if name == "SIGINT" else ""
        self._say(f"{self.description} received: saving a resumable checkpoint after this step{again}")

    def _abort(self) -> None:
        _ignore_stop_signals()
        self._say("second interrupt: aborted without saving; the last complete checkpoint is kept")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(EXIT_STATUS["SIGINT"])

    def _say(self, text: str) -> None:
        # Called from a signal handler, maybe while the console is half-way through a write: a
        # message lost to a reentrant write is better than an exception raised into the loop.
        if self.notify is not None:
            with contextlib.suppress(BaseException):
                self.notify(text)


def _ignore_stop_signals() -> None:
    for sig in _signals():
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)
