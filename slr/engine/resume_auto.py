"""``resume: auto``: the same job script for a run's first start and for every requeue after it.

A scheduler (SLURM) stops a job and starts it again with the same command. With ``auto`` the run
continues from its output folder's ``<Model>_last.pt`` when there is one and starts afresh when
there is none, as Lightning's ``ckpt_path="last"`` does. What it never does is start afresh over a
checkpoint it could not use: a new run would move that run aside and begin from epoch 0, and a
requeued job doing so every time would never finish. So:

- no ``_last.pt`` in the folder: a new run (an earlier log or settings.json there is kept in
  ``earlier/`` as for any new run);
- this model's ``_last.pt``: resume from it. When it already trained every epoch, the resume says
  "nothing to do" and the job ends at once, as ``slr resume`` does;
- only another model's ``_last.pt`` (the folder holds another run): refused, naming both models;
- a ``_last.pt`` that cannot be read or resumed from: refused, and the file is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from slr.engine import checkpoint as ckpt
from slr.errors import CheckpointError, ConfigError, setting
from slr.models.registry import MODELS
from slr.settings import TrainSettings

AUTO = "auto"


def last_checkpoints(folder: Path) -> dict[str, Path]:
    """Model name -> its ``_last.pt`` in ``folder``, for the models that have one there."""
    return {
        model: folder / f"{spec.class_name}_last.pt"
        for model, spec in MODELS.items()
        if (folder / f"{spec.class_name}_last.pt").is_file()
    }


def find_resumable(settings: TrainSettings) -> Optional[Path]:
    """The checkpoint ``resume: auto`` continues from, or None for a new run (see the module text).

    The model is the one the settings name; when they name none (the model was not given), the
    folder's only ``_last.pt`` decides it, as ``--resume CKPT`` takes the model from CKPT.
    """
    folder = Path(settings.output_dir)
    found = last_checkpoints(folder)
    model_given = "model" in settings.model_fields_set
    if model_given and settings.model in found:
        path = found[settings.model]
    elif not found:
        return None
    elif model_given:
        others = ", ".join(f"{model} ({p.name})" for model, p in found.items())
        raise ConfigError(
            f"{setting('resume')} auto: {folder} holds the last checkpoint of another model, {others}, and none of "
            f"{settings.model}: a folder holds one run. Give this run its own {setting('output_dir')}, or resume "
            "that model"
        )
    elif len(found) > 1:
        names = ", ".join(p.name for p in found.values())
        raise ConfigError(
            f"{setting('resume')} auto: {folder} holds the last checkpoints of several models ({names}): "
            "name the model to resume"
        )
    else:
        path = next(iter(found.values()))
    _check_resumable(path)
    return path


def _check_resumable(path: Path) -> None:
    """Read it now: an unusable last checkpoint stops the job instead of being replaced by a new run."""
    try:
        ckpt.load_checkpoint(path, need="resume")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{setting('resume')} auto cannot continue from it ({_reason(exc, path)}). It is left as it is and "
            "no new run was started over it: resume from another copy of it, or move it away to start afresh",
            path,
        ) from None


def _reason(exc: CheckpointError, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text
