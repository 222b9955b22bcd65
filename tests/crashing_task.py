"""A per-video task for `extract_videos(task=...)` / `extract_from_settings(task=...)` that really
kills its process for a video whose name says so, and otherwise extracts it as slr does. The spawned
worker processes can import it: they get the parent's sys.path, which holds tests/."""

from __future__ import annotations

import os
import signal

from slr.extract.runner import extract_one


def crash_on_marked(video, target, options, features, on_frames=None):
    """By the video's name: 'segv' SIGSEGV (as a crash in MediaPipe's or OpenCV's native code ends a
    process), 'exit' the process ends at once with status 3, 'killed-once' SIGKILL the first time only
    (as the OOM killer ends an innocent process). Each try of a crashing video is logged in tried.log
    beside the videos."""
    marks = [mark for mark in ("segv", "exit", "killed-once") if mark in video.stem]
    if marks:
        with open(video.parent / "tried.log", "a") as log:
            log.write(video.name + "\n")
    if "segv" in marks:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "exit" in marks:
        os._exit(3)
    if "killed-once" in marks and not video.with_suffix(".killed").exists():
        video.with_suffix(".killed").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return extract_one(video, target, options, features, on_frames=on_frames)
