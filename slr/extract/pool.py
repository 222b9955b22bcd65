"""Worker processes that outlive a video killing one of them.

MediaPipe and OpenCV are native code: a strange video can segfault the process reading it, and the
kernel's OOM killer ends processes without asking. ProcessPoolExecutor gives up its whole pool when
one worker dies; here each worker holds one video at a time over its own pipe, so a death names
exactly that video and the other workers go on. With other workers beside it, the video is tried
once more at the end, alone in a fresh process (an innocent one killed for the memory another used
is extracted then); a video that dies alone (or with one worker) is reported as `Died`. Many
different videos dying in a row with nothing finishing in between means the install or the machine,
not the videos, is broken: that stops the run with one error.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from slr.errors import SlrError

Job = tuple[Path, Path]  # (video, clip)


@dataclass(frozen=True)
class Died:
    """A video's process ended without an answer."""

    exitcode: int

    def describe(self) -> str:
        if self.exitcode < 0:
            try:
                name = signal.Signals(-self.exitcode).name
            except ValueError:
                name = "unknown signal"
            why = ": the system may have run out of memory" if name == "SIGKILL" else ""
            return f"signal {-self.exitcode}, {name}{why}"
        return f"exit status {self.exitcode}"


def _serve(conn: Connection, setup: Callable[[int], None], threads: int, work: Callable[..., Any]) -> None:
    """A worker: videos in, ("frames", n) messages and one ("done", result) per video out.

    A worker whose parent is gone (killed, even by SIGKILL) ends at once and silently: there is no one
    to tell, and a `BrokenPipeError` traceback would be printed under the parent's last words."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us
    _end_with_parent()
    try:
        setup(threads)
        while (job := conn.recv()) is not None:
            conn.send(("done", work(*job, on_frames=lambda n: conn.send(("frames", n)))))
    except (EOFError, OSError):  # the pipe closed: the parent ended (a worker's own errors are results)
        os._exit(0)


def _end_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent dies, instead of letting it finish a video nobody
    waits for (elsewhere the closed pipe ends it at its next progress message)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the call above: nobody to work for
        os._exit(0)


class _Worker:
    def __init__(self, context: Any, setup: Callable[[int], None], threads: int, work: Callable[..., Any]):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, setup, threads, work), daemon=True)
        try:
            self.process.start()
        except OSError as exc:  # out of processes or memory: no video is to blame
            raise SlrError(f"could not start an extraction process: {exc.strerror or exc}") from None
        child.close()
        self.job: Optional[Job] = None

    def give(self, job: Job) -> None:
        self.job = job
        try:
            self.conn.send(job)
        except OSError:  # it died already: its end is seen when waited on
            pass

    def answer(self, on_frames: Callable[[int], None]) -> tuple[bool, Any]:
        """(True, result) once the video is done; (False, None) while working or once dead."""
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "done":
                    self.job = None
                    return True, value
                on_frames(value)
        except (EOFError, OSError):  # the pipe closed with the process
            pass
        return False, None

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_jobs(jobs: list[Job], work: Callable[..., Any], setup: Callable[[int], None], workers: int,
             on_frames: Callable[[int], None]) -> Iterator[tuple[Job, Any]]:
    """Yield (job, work's result) for each job, or (job, Died) for a video that killed its process alone.

    `work(video, clip, on_frames=...)` and `setup(threads)` run in the workers (spawned, so both must be
    importable top-level functions or partials of them)."""
    import multiprocessing

    # spawn, not fork: MediaPipe's graph and torch's thread pools do not survive a fork safely.
    context = multiprocessing.get_context("spawn")
    cpus = os.cpu_count() or 1
    limit = workers + 2  # every worker dying at once, and then two more: not the videos' fault
    dead_in_a_row: list[Job] = []  # different videos, none finished since
    suspects: list[Job] = []  # died among other workers: tried again alone, after the others
    for width, todo, alone in ((workers, jobs, False), (1, suspects, True)):  # suspects: filled by the first
        waiting, idle, busy = deque(todo), [], []
        try:
            while waiting or busy:
                while waiting and len(busy) < width:
                    while idle and not idle[-1].process.is_alive():
                        idle.pop().close()
                    worker = idle.pop() if idle else _Worker(context, setup, max(1, cpus // width), work)
                    worker.give(waiting.popleft())
                    busy.append(worker)
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in list(busy):
                    job = worker.job
                    finished, result = worker.answer(on_frames)
                    if not finished and worker.process.is_alive():
                        continue
                    busy.remove(worker)
                    if finished:
                        dead_in_a_row.clear()
                        if alone:  # a fresh process for each suspect
                            worker.close()
                        else:
                            idle.append(worker)
                        yield job, result
                        continue
                    worker.close()
                    died = Died(worker.process.exitcode)
                    if job not in dead_in_a_row:
                        dead_in_a_row.append(job)
                    if len(dead_in_a_row) >= limit:
                        raise SlrError(_stopped(dead_in_a_row, died))
                    if width == 1:
                        yield job, died  # no other video was being extracted: no doubt
                    else:
                        suspects.append(job)
        finally:  # finished: the idle ones end; stopped (an error, Ctrl-C): the busy ones are killed
            for worker in busy:
                worker.process.kill()
            for worker in idle + busy:
                worker.close()


def _stopped(videos: list[Job], died: Died) -> str:
    names = ", ".join(video.name for video, _ in videos)
    return (f"the extraction process died on {len(videos)} videos in a row with none finishing in between "
            f"(last: {died.describe()}): {names}. That points at the install (mediapipe, OpenCV) or the machine "
            f"rather than the videos, so the extraction stopped; the clips written so far are kept and a "
            f"re-run skips them")
