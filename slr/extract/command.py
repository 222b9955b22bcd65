"""`slr extract` end to end: the settings -> the videos, the options, the clips, labels.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from slr.errors import ConfigError, DataError, setting
from slr.extract.backend import import_cv2, import_mediapipe
from slr.extract.clip import ExtractOptions
from slr.extract.keypoints import HolisticOptions
from slr.extract.runner import ExtractionResult, ExtractObserver, FeatureSource, extract_videos
from slr.settings import ExtractSettings


def options_from(settings: Any, features: bool) -> ExtractOptions:
    """ExtractOptions from any settings object with the keypoint-extraction fields."""
    holistic = HolisticOptions(**{k: getattr(settings, k) for k in HolisticOptions.__dataclass_fields__})
    # mirrored features only where asked for (slr extract; prediction never needs them)
    mirror = features and bool(getattr(settings, "mirror_features", False))
    return ExtractOptions(fps=settings.fps, holistic=holistic, features=features, mirror_features=mirror)


def feature_device(preference: str) -> str:
    if preference == "cpu":
        return "cpu"
    from slr.engine.hardware import select_device

    return str(select_device(preference).device)


def extract_from_settings(settings: ExtractSettings, observer: Optional[ExtractObserver] = None,
                          task: Optional[Callable[..., Any]] = None) -> ExtractionResult:
    if settings.mirror_features and not settings.features and "mirror_features" in settings.model_fields_set:
        # asked for by name, it would otherwise do nothing
        raise ConfigError(f"{setting('mirror_features')} stores the features of mirrored frames beside the features: "
                          f"it needs {setting('features')}")
    import_mediapipe()  # refuse at once, with the install command, when the extra is missing
    import_cv2()
    from slr.extract.labels import clip_text_stem, label_rows, write_labels
    from slr.extract.labels_file import read_labels_file
    from slr.extract.video import find_videos

    if not settings.videos:
        raise ConfigError("give at least one VIDEO (a video file or a folder of videos)")
    output_dir = Path(settings.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError("the output folder is a file", output_dir)
    videos, problems = find_videos(list(settings.videos))
    if not videos:  # nothing to do at all: one error (exit 2), before the output folder is made
        raise DataError("nothing to extract: " + "; ".join(f"{path}: {why}" for path, why in problems))
    labels = None
    if settings.classes_csv is not None:  # read before extracting: a bad classes file stops nothing late
        labels = label_rows(videos, Path(settings.classes_csv), settings.name_pattern)
        read_labels_file(output_dir / "labels.csv")  # ... nor an earlier labels.csv that cannot be kept whole
    features = (
        FeatureSource(settings.backbone_weights, settings.feature_batch_size, feature_device(settings.device))
        if settings.features
        else None
    )
    result = extract_videos(
        videos,
        output_dir,
        options_from(settings, settings.features),
        features=features,
        workers=settings.workers,
        overwrite=settings.overwrite,
        observer=observer,
        problems=problems,
        task=task,
    )
    if labels is not None:
        usable = {clip_text_stem(o.clip) for o in result.outcomes if o.status != "failed"}
        rows = {stem: ids for stem, ids in labels.rows.items() if stem in usable}
        target = output_dir / "labels.csv"
        if rows or target.is_file():  # a header without rows is no labels file (validate refuses it)
            write_labels(target, rows)
            result.labels_csv = target
        result.labelled = len(rows)
        result.unmatched = labels.unmatched
    return result


def stored_extraction(state: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The extraction meta a checkpoint recorded from its training clips (None for older ones)."""
    extraction = state.get("extraction")
    return extraction if isinstance(extraction, dict) else None
