"""`slr predict`: the most likely glosses and the category of each clip or video, by name, with
probabilities, what to doubt about each answer, and with `--window`, answers over sliding windows.

Clips are read, normalised and shortened exactly as in evaluation, then batched with padding and a
mask; the models ignore padded frames, so a clip's answer does not depend on the batch it is in.
An input that cannot be used (unreadable, a video that crashes the extractor) is named, and the
others are still predicted. The model is a `Classifier` (slr/analysis/classifier.py): anything
that turns arrays into probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from slr.data.clip_limits import ClipLimits, clip_limits
from slr.errors import ConfigError, DataError, setting
from slr.settings import ASSUMED_CLIP_FPS, PredictSettings

if TYPE_CHECKING:
    from slr.analysis.classes import ClassNames
    from slr.analysis.classifier import Classifier
    from slr.analysis.sanity import Sanity
    from slr.analysis.windows import Segment, WindowAnswer


@dataclass
class Prediction:
    clip: Path
    frames: int  # frames in the file (before any --max-frames shortening)
    glosses: list[tuple[int, str, float]]  # top-k: id, name, probability, most likely first
    category: Optional[tuple[int, str, float]]  # None: the model has one category (no cat in its labels)
    sanity: Optional["Sanity"] = None
    length_note: Optional[str] = None  # much longer or shorter than the training clips (no --window)
    seconds: Optional[float] = None  # the input's duration, where its frame times are known
    windows: list["WindowAnswer"] = field(default_factory=list)  # with --window
    segments: list["Segment"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        answer = {
            "clip": str(self.clip),
            "frames": self.frames,
            "top_glosses": [{"id": i, "name": n, "prob": p} for i, n, p in self.glosses],
            "gloss": {"id": self.glosses[0][0], "name": self.glosses[0][1], "prob": self.glosses[0][2]},
            "cat": ({"id": self.category[0], "name": self.category[1], "prob": self.category[2]}
                    if self.category is not None else None),
        }
        if self.sanity is not None:
            answer.update(self.sanity.to_dict())
        answer["length_note"] = self.length_note
        if self.seconds is not None:
            answer["seconds"] = round(self.seconds, 3)
        if self.windows:
            answer["windows"] = [w.to_dict() for w in self.windows]
            answer["segments"] = [s.to_dict() for s in self.segments]
        return answer


@dataclass
class Input:
    """One clip or video, read: the model's input, the 78-point keypoints where known (for the
    detection shares), and the frame times in seconds where known."""

    path: Path
    x: np.ndarray
    keypoints: Optional[np.ndarray]
    times_s: Optional[np.ndarray] = None


@dataclass
class PredictResult:
    """What `slr predict` found: the predictions, the inputs that could not be used (path, message
    naming it), and notices for the user."""

    predictions: list[Prediction]
    problems: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def problem_error(self) -> Optional[DataError]:
        """One error naming every input that could not be used, or None."""
        from slr.analysis.scoring import refuse_clips

        try:
            refuse_clips(self.problems, len(self.problems) + len(self.predictions))
        except DataError as error:
            return error
        return None


def predict_clips(
    checkpoint: Path,
    clips: Sequence[Path],
    *,
    top_k: int = 5,
    classes: Path | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    video: Optional[dict[str, Any]] = None,
    notices: Optional[list[str]] = None,
    limits: ClipLimits | None = None,
    ensemble: Sequence[Path] = (),
) -> list[Prediction]:
    """Every clip's prediction, or one `DataError` naming every clip that cannot be used. `video`:
    extraction settings for the videos among `clips` (`overrides`, `backbone_weights`); `notices`
    receives what the caller should tell the user; `ensemble`: more checkpoints whose probabilities
    are averaged with `checkpoint`'s (slr.analysis.ensemble)."""
    from slr.analysis.classifier import load_classifier

    result = predict_inputs(load_classifier(checkpoint, device, batch_size, ensemble), clips, top_k=top_k, classes=classes,
                            video=video, limits=limits)
    if notices is not None:
        notices.extend(result.notices)
    error = result.problem_error()
    if error is not None:
        raise error
    return result.predictions


def predict_inputs(
    classifier: "Classifier",
    clips: Sequence[Path],
    *,
    top_k: int = 5,
    classes: Path | None = None,
    video: Optional[dict[str, Any]] = None,
    limits: ClipLimits | None = None,
    uncertain_below: float = 0.0,
    window: Optional[float] = None,
    stride: Optional[float] = None,
    clip_fps: Optional[float] = None,
) -> PredictResult:
    """The predictions of every input that can be used, and a problem for each one that cannot."""
    from slr.analysis.classes import resolve_class_names

    if not clips:
        raise ConfigError("give at least one CLIP.npz to predict")
    names = resolve_class_names(classifier.state, classes)
    paths = [Path(c) for c in clips]
    result = PredictResult([])
    inputs = read_inputs(paths, classifier, video or {}, result, limits)
    if not inputs:
        return result
    gloss, cat, failed = _probabilities(classifier, [i.x for i in inputs], [str(i.path) for i in inputs])
    result.problems += [(str(inputs[r].path), message) for r, message in failed.items()]
    answer = Answerer(names, min(top_k, classifier.num_gloss), uncertain_below, classifier.num_cat > 1)
    from slr.analysis.windows import recorded_fps, training_frames, length_note

    trained, fps = training_frames(classifier.state), recorded_fps(classifier.state)
    for row, item in enumerate(inputs):
        if row in failed:
            continue
        glosses, category, sanity = answer(gloss[row], cat[row], item.keypoints)
        times = item.times_s
        if times is None and (window is not None or clip_fps or fps):  # a guessed rate only where windows need one
            times = _assumed_times(item, clip_fps, fps, result.notices)
        prediction = Prediction(item.path, int(item.x.shape[0]), glosses, category, sanity,
                                seconds=_duration(times))
        if window is None:
            prediction.length_note = length_note(prediction.frames, trained, fps)
        else:
            _predict_windows(classifier, item, times, window, stride, answer, prediction, result)
        result.predictions.append(prediction)
    return result


class Answerer:
    """Turns one row of probabilities into the top glosses, the category and the doubts about them."""

    def __init__(self, names: "ClassNames", top_k: int, uncertain_below: float, categories: bool = True):
        self.names, self.top_k, self.uncertain_below = names, top_k, uncertain_below
        self.categories = categories  # False: one category (labels without cat), nothing to say about it

    def __call__(self, gloss: np.ndarray, cat: np.ndarray, keypoints: Optional[np.ndarray]):
        from slr.analysis.sanity import detection_shares, judge

        order = np.argsort(-gloss, kind="stable")[: self.top_k]
        glosses = [(int(i), self.names.gloss_name(int(i)), float(gloss[i])) for i in order]
        c = int(np.argmax(cat))
        category = (c, self.names.cat_name(c), float(cat[c])) if self.categories else None
        return glosses, category, judge(glosses[0], category, self.names, self.uncertain_below,
                                        detection_shares(keypoints))


def _probabilities(classifier: "Classifier", arrays: list[np.ndarray], labels: list[str]):
    """Probabilities of every array; where some cannot be used, those are found one by one (and
    named in `failed`: row -> message) so that the others are still answered."""
    try:
        gloss, cat = classifier.probabilities(arrays, labels)
        return gloss, cat, {}
    except DataError:
        if len(arrays) == 1:
            raise
    gloss = np.zeros((len(arrays), classifier.num_gloss), dtype=np.float32)
    cat: Optional[np.ndarray] = None
    failed: dict[int, str] = {}
    for row, (array, label) in enumerate(zip(arrays, labels)):
        try:
            g, c = classifier.probabilities([array], [label])
        except DataError as error:
            failed[row] = str(error)
            continue
        gloss[row] = g[0]
        if cat is None:
            cat = np.zeros((len(arrays), c.shape[1]), dtype=np.float32)
        cat[row] = c[0]
    return gloss, cat if cat is not None else np.zeros((len(arrays), 1), dtype=np.float32), failed


def _duration(times: Optional[np.ndarray]) -> Optional[float]:
    if times is None or not len(times):
        return None
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return float(times[-1] - times[0]) + step


def _assumed_times(item: Input, clip_fps: Optional[float], recorded: Optional[float],
                   notices: list[str]) -> np.ndarray:
    """Frame times of a clip that records none: `--clip-fps`, the checkpoint's extraction rate, or
    ASSUMED_CLIP_FPS (said once per run)."""
    from slr.analysis.windows import evenly_spaced

    fps = clip_fps or recorded
    if fps is None:
        fps = ASSUMED_CLIP_FPS
        told = f"clips without timestamps are taken as {ASSUMED_CLIP_FPS:g} frames per second"
        if not any(told in n for n in notices):
            notices.append(f"{item.path}: records no frame times; {told} ({setting('clip_fps')} sets it)")
    return evenly_spaced(int(item.x.shape[0]), fps)


def _predict_windows(classifier: "Classifier", item: Input, times: np.ndarray, window: float,
                     stride: Optional[float], answer: Answerer, prediction: Prediction, result: PredictResult) -> None:
    from slr.analysis.windows import WindowAnswer, default_stride, segments, window_spans

    spans = window_spans(times, window, stride or default_stride(window))
    spans = [s for s in spans if s.end > s.start]
    labels = [f"{item.path} [{s.start_s:.2f}-{s.end_s:.2f} s]" for s in spans]
    gloss, cat = classifier.probabilities([item.x[s.start:s.end] for s in spans], labels)
    for row, span in enumerate(spans):
        keypoints = None if item.keypoints is None else item.keypoints[span.start:span.end]
        glosses, category, sanity = answer(gloss[row], cat[row], keypoints)
        prediction.windows.append(WindowAnswer(span, glosses, category, sanity))
    prediction.segments = segments(prediction.windows)


def read_clips(
    paths: Sequence[Path], key: str, fallback_key: str | None, width: int, limits: ClipLimits | None = None
) -> tuple[dict[Path, np.ndarray], list[tuple[str, str]]]:
    """Every clip as float32 `[T, D]` (`read_clip` refuses NaN and inf, also those of the cast),
    and a problem (clip, message) for each that is missing, unreadable, of the wrong width or not finite."""
    from slr.data.clips import read_clip
    from slr.data.files import describe_non_file

    arrays: dict[Path, np.ndarray] = {}
    problems: list[tuple[str, str]] = []
    for path in paths:
        try:
            if not path.is_file():
                what = describe_non_file(path)  # "not found", "a directory", "a broken link to ...", ...
                raise DataError(what if what.startswith("not ") else f"is {what}", path)
            arrays[path] = read_clip(path, key, fallback_key, width=width, limits=limits)
        except DataError as exc:
            problems.append((str(path), str(exc)))
    return arrays, problems


def read_inputs(paths: Sequence[Path], classifier: "Classifier", video: dict[str, Any], result: PredictResult,
                limits: ClipLimits | None = None) -> list[Input]:
    """Clips read from their files and videos extracted as the training clips were, in order; each
    one that cannot be used is a problem in `result`, and `result.notices` gets what to tell."""
    from slr.analysis.predict_video import extract_video_arrays, is_video
    from slr.analysis.windows import stored_timestamps

    videos = [p for p in paths if is_video(p)]
    clip_paths = [p for p in paths if not is_video(p)]
    found: dict[Path, Input] = {}
    if clip_paths:
        arrays, problems = read_clips(clip_paths, classifier.key, classifier.fallback_key, classifier.input_dim,
                                      limits)
        result.problems += problems
        for path, array in arrays.items():
            keypoints = array if classifier.input_kind == "keypoints" else None
            found[path] = Input(path, array, keypoints, stored_timestamps(path, len(array)))
    if videos:
        extracted, problems, told = extract_video_arrays(
            videos, classifier.state, classifier.input_kind, video.get("overrides", {}), video.get("backbone_weights")
        )
        result.problems += problems
        result.notices += told
        for path, clip in zip(videos, extracted):
            if clip is None:
                continue
            if clip.x.shape[1] != classifier.input_dim:
                result.problems.append((str(path), f"{path}: extracted {clip.x.shape[1]} values per frame, the "
                                                   f"model takes {classifier.input_dim}"))
            else:
                found[path] = Input(path, clip.x, clip.keypoints, clip.times_s)
    return [found[p] for p in paths if p in found]


def run_predict(settings: PredictSettings) -> PredictResult:
    """`slr predict`: the predictions and the inputs that could not be used; the caller shows them
    (and the notices, about videos and frame times)."""
    from slr.analysis.classifier import load_classifier
    from slr.engine.threads import apply_threads

    apply_threads(settings.threads)
    classifier = load_classifier(settings.checkpoint, settings.device, settings.batch_size, settings.ensemble)
    return predict_inputs(
        classifier,
        settings.clips,
        top_k=settings.top_k,
        classes=settings.classes,
        video={"overrides": settings.extraction_overrides(), "backbone_weights": settings.backbone_weights},
        limits=clip_limits(settings),
        uncertain_below=settings.uncertain_below,
        window=settings.window,
        stride=settings.stride,
        clip_fps=settings.clip_fps,
    )
