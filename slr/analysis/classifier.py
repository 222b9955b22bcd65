""""A model" as prediction sees it: one object that turns clips (arrays) into probabilities.

`slr predict` (whole clips, windows) and `slr live` ask nothing else of it, so any object with the
same attributes and `probabilities` (several checkpoints averaged, an exported model) can take
its place; `load_classifier` is the one place that decides which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from slr.analysis.inference import LoadedModel


@dataclass
class Classifier:
    """A checkpoint's model with its input pipeline (the evaluation one: slr.analysis.inference)."""

    loaded: LoadedModel
    batch_size: int = 64

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def state(self) -> dict[str, Any]:
        """The checkpoint's entries (class names, extraction record, training clip lengths)."""
        return self.loaded.state

    @property
    def input_kind(self) -> str:
        return self.loaded.input_kind

    @property
    def key(self) -> str:
        """The clip key its input is read from (X, or X2048 with fallback_key X)."""
        return self.loaded.key

    @property
    def fallback_key(self) -> Optional[str]:
        return self.loaded.fallback_key

    @property
    def input_dim(self) -> int:
        return self.loaded.input_dim

    @property
    def num_gloss(self) -> int:
        return self.loaded.num_gloss

    @property
    def num_cat(self) -> int:
        return self.loaded.num_cat

    def probabilities(self, arrays: Sequence[np.ndarray], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Gloss and category probabilities `[N, num_gloss]`, `[N, num_cat]` of raw clips `[T, D]`
        (normalised, shortened and padded here as in evaluation); `labels` name them in messages."""
        from slr.analysis.inference import dataset_from_arrays
        from slr.analysis.scoring import class_probabilities

        dataset = dataset_from_arrays(self.loaded, list(arrays), [str(label) for label in labels])
        gloss, cat = class_probabilities(self.loaded, dataset, self.batch_size, list(labels))
        return gloss.numpy(), cat.numpy()


def load_classifier(checkpoint: Path, device: str = "cpu", batch_size: int = 64,
                    ensemble: Sequence[Path] = ()) -> Classifier:
    """`checkpoint`'s model, or with `ensemble` (more checkpoints) the average of them all."""
    from slr.analysis.ensemble import load_models
    from slr.analysis.inference import pick_device

    return Classifier(load_models(checkpoint, ensemble, pick_device(device)), batch_size)
