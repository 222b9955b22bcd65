"""Models: SignTransformer (keypoints) and InceptionV3GRU (CNN features or frames).

Every model is called as ``model(x, mask) -> (gloss_logits, cat_logits)``; build them through
``build_model`` so that the settings are the only description of a model.

Names are imported on first use, so ``slr.models.transformer`` can be used without the registry
(and its pydantic settings), e.g. by benchmarks/model_choices.py on a bare GPU image.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SignTransformer": "slr.models.transformer",
    "InceptionV3GRU": "slr.models.iv3_gru",
    "MODELS": "slr.models.registry",
    "ModelSpec": "slr.models.registry",
    "build_model": "slr.models.registry",
    "count_parameters": "slr.models.registry",
    "model_spec": "slr.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'slr.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
