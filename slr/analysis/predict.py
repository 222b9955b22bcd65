"""`slr predict`: the most likely glosses and the category of each clip, by name, with probabilities.

Clips are read, normalised and shortened exactly as in evaluation, then batched with padding and a
mask; the models ignore padded frames, so a clip's answer does not depend on the batch it is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from slr.data.clip_limits import ClipLimits, clip_limits
from slr.errors import ConfigError, DataError
from slr.settings import PredictSettings


@dataclass
class Prediction:
    clip: Path
    frames: int  # frames in the file (before any --max-frames shortening)
    glosses: list[tuple[int, str, float]]  # top-k: id, name, probability, most likely first
    category: Optional[tuple[int, str, float]]  # None: the model has one category (no cat in its labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip": str(self.clip),
            "frames": self.frames,
            "top_glosses": [{"id": i, "name": n, "prob": p} for i, n, p in self.glosses],
            "gloss": {"id": self.glosses[0][0], "name": self.glosses[0][1], "prob": self.glosses[0][2]},
            "cat": ({"id": self.category[0], "name": self.category[1], "prob": self.category[2]}
                    if self.category is not None else None),
        }


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
) -> list[Prediction]:
    """`video`: extraction settings for the videos among `clips` (`overrides`, `backbone_weights`);
    `notices` receives what the caller should tell the user."""
    from slr.analysis.classes import resolve_class_names
    from slr.analysis.inference import dataset_from_arrays, load_model, pick_device
    from slr.analysis.scoring import class_probabilities
    from slr.data.clips import clip_stem

    if not clips:
        raise ConfigError("give at least one CLIP.npz to predict")
    loaded = load_model(checkpoint, pick_device(device))
    names = resolve_class_names(loaded.state, classes)
    paths = [Path(c) for c in clips]
    arrays = read_inputs(paths, loaded, video or {}, notices, limits)
    dataset = dataset_from_arrays(loaded, arrays, [clip_stem(p.name) for p in paths])
    gloss_probs, cat_probs = class_probabilities(loaded, dataset, batch_size, [str(p) for p in paths])

    top_p, top_i = gloss_probs.topk(min(top_k, loaded.num_gloss), dim=-1)
    cat_p, cat_i = cat_probs.max(dim=-1)
    predictions: list[Prediction] = []
    for row, path in enumerate(paths):
        ranked = zip(top_p[row].tolist(), top_i[row].tolist())
        glosses = [(int(i), names.gloss_name(int(i)), float(p)) for p, i in ranked]
        category = ((int(cat_i[row]), names.cat_name(int(cat_i[row])), float(cat_p[row]))
                    if loaded.num_cat > 1 else None)  # one category (labels without cat): nothing to say
        predictions.append(Prediction(path, int(arrays[row].shape[0]), glosses, category))
    return predictions


def read_clips(
    paths: Sequence[Path], key: str, fallback_key: str | None, width: int, limits: ClipLimits | None = None
) -> list[np.ndarray]:
    """Every clip as float32 `[T, D]` (`read_clip` refuses NaN and inf, also those of the cast);
    one `DataError` names every clip that is missing, unreadable, of the wrong width or not finite."""
    from slr.analysis.scoring import refuse_clips
    from slr.data.clips import read_clip
    from slr.data.files import describe_non_file

    arrays: list[np.ndarray] = []
    problems: list[tuple[str, str]] = []
    for path in paths:
        try:
            if not path.is_file():
                what = describe_non_file(path)  # "not found", "a directory", "a broken link to ...", ...
                raise DataError(what if what.startswith("not ") else f"is {what}", path)
            arrays.append(read_clip(path, key, fallback_key, width=width, limits=limits))
        except DataError as exc:
            problems.append((str(path), str(exc)))
    refuse_clips(problems, len(paths))
    return arrays


def read_inputs(paths: Sequence[Path], loaded: Any, video: dict[str, Any], notices: Optional[list[str]],
                limits: ClipLimits | None = None) -> list[np.ndarray]:
    """Clips read from their files and videos extracted as the training clips were, in order; one
    `DataError` names every clip or video that cannot be used."""
    from slr.analysis.predict_video import extract_video_arrays, is_video
    from slr.analysis.scoring import refuse_clips

    videos = [p for p in paths if is_video(p)]
    clip_paths = [p for p in paths if not is_video(p)]
    by_path: dict[Path, np.ndarray] = {}
    problems: list[tuple[str, str]] = []
    if clip_paths:
        try:
            by_path.update(zip(clip_paths, read_clips(clip_paths, loaded.key, loaded.fallback_key, loaded.input_dim, limits)))
        except DataError as exc:
            problems.append(("clips", str(exc)))
    if videos:
        arrays, video_problems, told = extract_video_arrays(
            videos, loaded.state, loaded.input_kind, video.get("overrides", {}), video.get("backbone_weights")
        )
        problems += video_problems
        if notices is not None:
            notices.extend(told)
        for path, array in zip(videos, arrays):
            if array is not None and array.shape[1] != loaded.input_dim:
                problems.append((str(path), f"{path}: extracted {array.shape[1]} values per frame, the model takes "
                                            f"{loaded.input_dim}"))
            elif array is not None:
                by_path[path] = array
    refuse_clips(problems, len(paths))
    return [by_path[p] for p in paths]


def run_predict(settings: PredictSettings, notices: Optional[list[str]] = None) -> list[Prediction]:
    """`slr predict`: the predictions; the caller shows them (and `notices`, about videos)."""
    from slr.engine.threads import apply_threads

    apply_threads(settings.threads)
    return predict_clips(
        settings.checkpoint,
        settings.clips,
        top_k=settings.top_k,
        classes=settings.classes,
        batch_size=settings.batch_size,
        device=settings.device,
        video={"overrides": settings.extraction_overrides(), "backbone_weights": settings.backbone_weights},
        notices=notices,
        limits=clip_limits(settings),
    )
