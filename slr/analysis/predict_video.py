"""`slr predict` on videos: each video is extracted as the checkpoint's training clips were, then
classified like a clip.

The extraction settings come from the checkpoint (`extraction`, recorded from the training clips'
meta); settings given to predict replace them one by one. The videos go through `slr extract`'s
runner (`extract_videos`, in a worker process, into a temporary folder), so a video's answer is
the answer for its clip, and a video that crashes the extractor is named, not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from slr.errors import setting


def is_video(path: Path) -> bool:
    from slr.extract.video import VIDEO_SUFFIXES

    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_options(state: Mapping[str, Any], overrides: Mapping[str, Any], features: bool):
    """The ExtractOptions for this checkpoint's videos, and notices about where they came from."""
    from slr.extract.clip import ExtractOptions
    from slr.extract.command import stored_extraction
    from slr.settings import KeypointExtractionSettings

    notices: list[str] = []
    stored = stored_extraction(state)
    base: dict[str, Any] = {}
    if stored is None:
        notices.append(
            "the checkpoint does not record how its training clips were extracted (their meta holds no "
            "extraction settings): videos are extracted with the default extraction settings"
        )
    else:
        known = KeypointExtractionSettings.model_fields
        base = {k: v for k, v in (stored.get("settings") or {}).items() if k in known}
    resolved = KeypointExtractionSettings.model_validate({**base, **overrides})
    from slr.extract.command import options_from

    return options_from(resolved, features), stored, notices


@dataclass
class VideoClip:
    """A video as `slr extract` would write it: the model's input, the keypoints, the frame times."""

    x: np.ndarray  # [T, D]: keypoints X, or X2048 for a features model
    keypoints: np.ndarray  # [T, 156]
    times_s: np.ndarray  # [T], seconds from the first frame


def extract_video_arrays(
    videos: list[Path],
    state: Mapping[str, Any],
    input_kind: str,
    overrides: Mapping[str, Any],
    backbone_weights: Optional[Path],
    task: Optional[Any] = None,
) -> tuple[list[Optional[VideoClip]], list[tuple[str, str]], list[str]]:
    """For each video its clip (model input `[T, D]`, keypoints, frame times), or None with a
    problem (video, message) when it cannot be read; and notices.

    The videos go through `slr extract`'s own runner, into a temporary folder: each in a worker
    process, so a video that crashes MediaPipe or OpenCV is a problem named like any other, not
    the end of `slr predict`. `task`: as `extract_videos`' (tests make it crash)."""
    import tempfile

    from slr.data.clip_meta import read_meta
    from slr.extract.backend import import_cv2, import_mediapipe
    from slr.extract.runner import FeatureSource, extract_videos

    import_mediapipe()
    import_cv2()
    features = input_kind == "features"
    options, stored, notices = video_options(state, overrides, features)
    source = None
    if features:
        from slr.extract.features import resolve_weights

        stored_features = (stored or {}).get("features") or {}
        batch = int(stored_features.get("batch_size", 16)) if isinstance(stored_features, dict) else 16
        weights = resolve_weights(backbone_weights)
        source = FeatureSource(weights, batch_size=batch)
        trained_on = stored_features.get("weights") if isinstance(stored_features, dict) else None
        if trained_on and trained_on != weights.name:
            notices.append(
                f"the training clips' features came from InceptionV3 weights {trained_on!r}; these videos' come "
                f"from {weights} ({setting('backbone_weights')})"
            )
    arrays: list[Optional[VideoClip]] = [None] * len(videos)
    problems: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="slr-predict-") as tmp:
        # one clip name per folder: videos of the same name (from other folders) go in rounds
        for round_number, members in enumerate(_rounds_of_distinct_names(videos)):
            result = extract_videos([videos[i] for i in members], Path(tmp) / str(round_number), options,
                                    features=source, workers=1, task=task)
            for i, outcome in zip(members, result.outcomes):  # outcomes come in the order given
                if outcome.status == "failed":
                    problems.append((str(videos[i]), outcome.error or f"{videos[i]}: could not be extracted"))
                    continue
                with np.load(outcome.clip, allow_pickle=False) as clip:  # written just now by slr extract
                    stamps = np.asarray(clip["timestamps_ms"], dtype=np.float64)
                    arrays[i] = VideoClip(np.array(clip["X2048" if features else "X"]), np.array(clip["X"]),
                                          (stamps - stamps[0]) / 1000.0)
                frame_size = (read_meta(outcome.clip) or {}).get("frame_size")
                told = aspect_notice(videos[i], frame_size, (stored or {}).get("frame_size"))
                if told is not None:
                    notices.append(told)
    return arrays, problems, notices


def _rounds_of_distinct_names(videos: list[Path]) -> list[list[int]]:
    """Indices of `videos` in rounds whose clip names (the videos' stems) are all different."""
    rounds: list[list[int]] = []
    names: list[set[str]] = []
    for i, video in enumerate(videos):
        for members, taken in zip(rounds, names):
            if video.stem not in taken:
                members.append(i)
                taken.add(video.stem)
                break
        else:
            rounds.append([i])
            names.append({video.stem})
    return rounds


#: Aspect ratios closer than this (as a ratio) count as the same frame shape.
ASPECT_TOLERANCE = 1.15


def aspect_notice(video: Path, frame_size: Any, trained_frame_size: Any) -> Optional[str]:
    """A notice where the video's frame shape differs from the training clips' videos' (known from
    the checkpoint's extraction record): keypoints are fractions of the frame's width and height
    (and InceptionV3 sees the frame squeezed to a square), so at another aspect ratio a sign's
    proportions are not those the model learnt."""
    def aspect(size: Any) -> Optional[float]:
        try:
            width, height = float(size["width"]), float(size["height"])
        except (KeyError, TypeError, ValueError):
            return None
        return width / height if width > 0 and height > 0 else None

    here, trained = aspect(frame_size), aspect(trained_frame_size)
    if here is None or trained is None or max(here, trained) / min(here, trained) < ASPECT_TOLERANCE:
        return None
    return (f"{video}: {frame_size['width']}x{frame_size['height']} frames (aspect {here:.2f}); the training "
            f"clips came from {trained_frame_size['width']}x{trained_frame_size['height']} videos "
            f"({trained:.2f}). Keypoints are fractions of the frame's width and height, so the sign's "
            f"height against its width is {here / trained:.2f}x what the model learnt: crop or pad the video "
            f"to the training videos' shape for a fair answer")
