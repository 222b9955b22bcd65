"""Many videos -> clips: one process per worker, progress told to an observer, failures collected.

Each video is extracted in a worker process (its own Holistic graph, and InceptionV3 when features
are asked for) and written atomically. A video that cannot be read, or that kills the process
reading it (pool.py), is recorded and the others go on; clips already complete with the same
settings are skipped. The library never prints: it tells
an `ExtractObserver` what happens and returns an `ExtractionResult`.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from slr.errors import SlrError
from slr.extract.clip import ExtractOptions, extract_clip
from slr.extract.writer import clip_path, completed_settings, remove_stale_temporaries, write_clip


class ExtractObserver(Protocol):
    def start(self, videos: int, skipped: int) -> None: ...
    def frames(self, count: int) -> None: ...
    def video_done(self, outcome: "VideoOutcome") -> None: ...
    def finish(self) -> None: ...


class NoObserver:
    def start(self, videos: int, skipped: int) -> None:
        pass

    def frames(self, count: int) -> None:
        pass

    def video_done(self, outcome: "VideoOutcome") -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class VideoOutcome:
    video: Path
    clip: Path
    status: str  # "written", "skipped" (complete already), "failed"
    frames: int = 0
    seconds: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)  # pose, left_hand, right_hand, face
    error: Optional[str] = None
    incomplete: Optional[str] = None  # written, but frames the container declares could not be decoded


@dataclass
class ExtractionResult:
    output_dir: Path
    outcomes: list[VideoOutcome]
    notices: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # named inputs that are not videos
    seconds: float = 0.0
    workers: int = 1
    labels_csv: Optional[Path] = None  # written when a classes file was given
    labelled: int = 0
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (video name, why it has no label)

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def written(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "written"]

    @property
    def incomplete(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.incomplete]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems and not self.incomplete


@dataclass(frozen=True)
class FeatureSource:
    weights: Optional[Path]
    batch_size: int = 16
    device: str = "cpu"


def default_workers(videos: int) -> int:
    """One process per usable CPU, never more than there are videos."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, videos))


def extract_videos(
    videos: list[Path],
    output_dir: Path,
    options: ExtractOptions,
    *,
    features: Optional[FeatureSource] = None,
    workers: Optional[int] = None,
    overwrite: bool = False,
    observer: Optional[ExtractObserver] = None,
    problems: Optional[list[tuple[Path, str]]] = None,
    task: Optional[Callable[..., VideoOutcome]] = None,
) -> ExtractionResult:
    """`task` replaces `extract_one` as the work done for each video in the workers (tests make it crash)."""
    observer = observer or NoObserver()
    output_dir = Path(output_dir)
    started = time.perf_counter()
    options.holistic.check()
    if options.features:
        from slr.extract.features import resolve_weights
        from slr.models.backbone import read_state_dict

        # refuse a missing or unreadable file before any work, not once per video in the workers
        read_state_dict(resolve_weights(features.weights if features else None))
    _check_distinct_targets([(video, clip_path(output_dir, video)) for video in videos])  # ... and any folder
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    result = ExtractionResult(output_dir, [], problems=list(problems or []))
    todo: list[tuple[Path, Path]] = []
    wanted = options.as_meta()
    for video in videos:
        target = clip_path(output_dir, video)
        done = None if overwrite else completed_settings(target, options.features, options.mirror_features)
        if done is None:
            todo.append((video, target))
        elif done == wanted:
            result.outcomes.append(VideoOutcome(video, target, "skipped"))
        else:
            result.outcomes.append(VideoOutcome(video, target, "skipped"))
            result.notices.append(
                f"{target}: kept; it was made with other settings ({_differences(done, wanted)}); "
                f"{_overwrite()} redoes it"
            )
    count = min(workers or default_workers(len(todo)), max(1, len(todo)))  # no idle processes
    result.workers = count
    observer.start(len(todo), len(result.outcomes))
    for outcome in _run_in_workers(todo, options, features, count, observer, task or extract_one):
        result.outcomes.append(outcome)
        observer.video_done(outcome)
    observer.finish()
    remove_stale_temporaries(output_dir)  # a worker killed while writing a clip left its temporary file
    order = {v: i for i, v in enumerate(videos)}
    result.outcomes.sort(key=lambda o: order.get(o.video, len(order)))
    result.seconds = time.perf_counter() - started
    return result


def _overwrite() -> str:
    from slr.errors import setting

    return setting("overwrite")


def _differences(done: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(set(done) | set(wanted))
    return ", ".join(f"{k} {done.get(k)} here, {wanted.get(k)} now" for k in keys if done.get(k) != wanted.get(k))


def _check_distinct_targets(todo: list[tuple[Path, Path]]) -> None:
    seen: dict[Path, Path] = {}
    for video, target in todo:
        if target in seen:
            raise SlrError(f"{seen[target]} and {video} would both be written to {target}; extract them into separate folders")
        seen[target] = video


# -- one video ---------------------------------------------------------------------------------

_worker_state: dict[str, Any] = {}


def _init_worker(options: ExtractOptions, features: Optional[FeatureSource], threads: int) -> None:
    _worker_state.update(extractor=None)
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        if features is not None and options.features:
            import torch

            torch.set_num_threads(threads)


def _feature_extractor(options: ExtractOptions, features: Optional[FeatureSource]):
    if not options.features:
        return None, None
    extractor = _worker_state.get("extractor")
    if extractor is None:
        from slr.extract.features import PREPROCESSING, FeatureExtractor

        assert features is not None
        extractor = FeatureExtractor(features.weights, features.batch_size, features.device)
        extractor.info = {
            "key": "X2048",
            "model": "torchvision inception_v3, pooled output before the classifier",
            "weights": extractor.weights_file.name,
            "preprocessing": PREPROCESSING,
            "batch_size": features.batch_size,
        }
        _worker_state["extractor"] = extractor
    return extractor, extractor.info


def extract_one(video: Path, target: Path, options: ExtractOptions, features: Optional[FeatureSource],
                on_frames=None) -> VideoOutcome:
    started = time.perf_counter()
    try:
        extractor, info = _feature_extractor(options, features)
        clip = extract_clip(video, options, features=extractor, feature_info=info, on_frames=on_frames)
        write_clip(target, clip)
    except Exception as exc:  # this video fails, the others go on (OpenCV and MediaPipe raise many kinds)
        if isinstance(exc, SlrError):
            message = str(exc)
        elif isinstance(exc, OSError):
            message = f"{exc.filename or video}: {exc.strerror or exc}"
        else:
            message = f"{video}: {type(exc).__name__}: {exc}"
        return VideoOutcome(video, target, "failed", seconds=time.perf_counter() - started, error=message)
    outcome = VideoOutcome(video, target, "written", clip.frames, time.perf_counter() - started, clip.detection_rates())
    if clip.meta["incomplete"]:
        declared, decoded = clip.meta["declared_frames"], clip.meta["source_frames"]
        outcome.incomplete = (f"{video}: only {decoded} of the {declared} frames its container declares could be "
                              f"decoded (a half-copied or damaged file?); the clip holds those, and a re-run "
                              f"extracts it again")
    return outcome


def _run_in_workers(todo, options, features, count, observer, task):
    """Each video in a worker process, even with one worker: a video that kills its process (a segfault
    in native code, the OOM killer) is then a failed video, not the end of slr."""
    from slr.extract.pool import Died, run_jobs

    work = functools.partial(task, options=options, features=features)
    for (video, target), result in run_jobs(todo, work, functools.partial(_init_worker, options, features), count,
                                            observer.frames):
        if isinstance(result, Died):
            result = VideoOutcome(video, target, "failed", error=(
                f"{video}: the extraction process died while reading it ({result.describe()}); "
                f"the other videos went on"))
        yield result
