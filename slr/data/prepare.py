"""What a clip goes through between its file and a trained model, outside training: one description
and one function that applies it.

`preprocessing(...)` resolves a run's settings for its clips (e.g. `--mirror-left-handed auto` to on
or off for the clips' layout) into a plain, JSON-ready description whose `steps` are listed in the
order they are applied. `prepare_clip(x, description)` applies exactly those steps. Evaluation and
prediction build their clip transform from the same description (`transform_for`), and `slr export`
stores it in the exported file's metadata, so a deployment that calls `prepare_clip` feeds the
exported model what `slr predict` feeds the PyTorch one; the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from slr.data.augment import Transform, build_transform, clip_layout, mirrors_left_handed
from slr.data.frames import fit_length

#: The rule `mirror_left_handed` applies, in words (the code: `slr.data.augment`, `_left_hand_leads`).
MIRROR_RULE = (
    "after normalisation, where the clip's left hand moves more than its right (the sum, over its points, of "
    "each point's distance moved between consecutive frames in which it is seen), flip x (about 0 when "
    "normalised, else about 0.5) and swap the hands and the layout's left/right points"
)


def preprocessing(settings: Any, input_kind: str, width: int,
                  declared: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The clip pipeline of evaluation and prediction for a run with these (training) settings and
    clips ``width`` values wide; ``declared``: the run's layout file declaration, if any."""
    layout = clip_layout(width, declared) if input_kind == "keypoints" else None
    normalize = bool(settings.normalize) and layout is not None
    mirror = layout is not None and mirrors_left_handed(settings.mirror_left_handed, layout)
    hands = bool(settings.hand_centred) and layout is not None and bool(layout.hands)
    steps: list[dict[str, Any]] = [
        {"step": "shorten", "max_frames": settings.max_frames or None, "long_clips": settings.long_clips,
         "rule": "clips longer than max_frames: 'sample' keeps max_frames frames evenly spread, ends included; "
                 "'crop' keeps the centred max_frames frames (slr.data.frames.fit_length)"},
    ]
    if normalize:
        steps.append({"step": "normalize", "weighting": settings.normalize_weighting,
                      "rule": "centre on the shoulders' midpoint, scale by their width; without shoulders on the "
                              "detected points, each counting equally or (weighting 'motion') by its spread over "
                              "the clip (slr.data.augment.normalize_clip)"})
    if mirror:
        steps.append({"step": "mirror_left_handed", "rule": MIRROR_RULE})
    if hands:
        steps.append({"step": "hand_centred",
                      "rule": "each hand centred on its wrist over the clip and scaled by its mean wrist to "
                              "middle-knuckle distance"})
    return {
        "input_kind": input_kind,
        "input_dim": int(width),
        "layout": layout.name if layout is not None else None,
        "keypoint_layout": declared,  # a layout file's declaration, else None (the width says)
        # every setting resolved, also the steps that are off, so nothing is left to a default
        "max_frames": settings.max_frames or None,  # None: no limit (settings spell it 0)
        "long_clips": settings.long_clips,
        "normalize": normalize,
        "normalize_weighting": settings.normalize_weighting,
        "mirror_left_handed": mirror,
        "mirror_left_handed_setting": settings.mirror_left_handed,
        "hand_centred": hands,
        "steps": steps,
    }


def _description(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The description itself, or an export's metadata that holds it under "preprocessing"."""
    return metadata["preprocessing"] if "preprocessing" in metadata else metadata


def transform_for(metadata: Mapping[str, Any]) -> Optional[Transform]:
    """The clip transform (normalise, mirror, hand-centre) the description asks for; None if none."""
    from slr.settings import AugmentSettings

    d = _description(metadata)
    if d["input_kind"] != "keypoints":
        return None
    steps = {s["step"]: s for s in d["steps"]}
    resolved = AugmentSettings(
        normalize="normalize" in steps,
        # descriptions written before the choice existed counted every point alike
        normalize_weighting=steps.get("normalize", {}).get("weighting", "equal"),
        augment=False,
        mirror_left_handed="on" if "mirror_left_handed" in steps else "off",
        hand_centred="hand_centred" in steps,
    )
    return build_transform(resolved, "keypoints", int(d["input_dim"]), train=False, declared=d["keypoint_layout"])


def prepare_clip(x: np.ndarray, metadata: Mapping[str, Any]) -> np.ndarray:
    """A clip `[T, D]` as read from its file (the npz key the metadata names) made ready for the model:
    every step of the description, in order. The result is float32 `[T', D]`; batch clips by padding
    with zeros and a mask."""
    d = _description(metadata)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != int(d["input_dim"]):
        raise ValueError(f"expected a clip [T, {d['input_dim']}], got {list(x.shape)}")
    rng = np.random.default_rng(0)  # unused outside training: shortening is centred, nothing is random
    x = np.array(fit_length(x, d["max_frames"], d["long_clips"], rng, random_crop=False), dtype=np.float32)
    transform = transform_for(d)
    return x if transform is None else np.ascontiguousarray(transform(x, rng), dtype=np.float32)
