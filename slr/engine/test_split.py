"""The test split of a training run: scored once, at the end, with the checkpoint validation chose.

The best epoch is chosen on the validation clips, so its validation accuracy is the best of many
tries on the same clips: an optimistic number. Clips used for neither training nor that choice
(`--labels-test-csv`, or the `labels_test.csv` that `slr split --test` wrote beside the
`labels_val.csv` this run validates on) give an honest one. They are checked before training
starts (a typo costs nothing), read from the validation directory as the validation clips are
read, scored once with `_best.pt` after the last epoch, and the result is stored in `_best.pt`
under `test`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader

from slr.data.clip_limits import clip_limits
from slr.data.dataset import ClipDataset
from slr.data.labels import read_labels
from slr.data.validate import check_training_data
from slr.engine import checkpoint as ckpt
from slr.errors import setting
from slr.models.registry import model_spec
from slr.settings import TrainSettings

#: Where the result is kept in the chosen checkpoint (slr/engine/checkpoint.py).
ENTRY = "test"


@dataclass
class HeldOutClips:
    labels_csv: Path
    dataset: ClipDataset
    notices: list[str]


@dataclass
class HeldOutAccuracy:
    labels_csv: Path
    clips: int
    gloss_acc: float
    cat_acc: float
    epoch: int  # the epoch of the checkpoint scored (the one chosen on validation)
    checkpoint: Path

    def to_entry(self) -> dict[str, Any]:
        return {"labels_csv": str(self.labels_csv), "clips": self.clips, "gloss_acc": self.gloss_acc,
                "cat_acc": self.cat_acc, "epoch": self.epoch}


def find_test_labels(settings: TrainSettings) -> Optional[Path]:
    """--labels-test-csv, else `<stem>_test.csv` beside a `<stem>_val.csv` validation labels file, if present."""
    if settings.labels_test_csv is not None:
        return Path(settings.labels_test_csv)
    val = settings.labels_val_csv
    if val is None or not Path(val).stem.endswith("_val"):
        return None
    val = Path(val)
    found = val.with_name(val.stem[: -len("_val")] + "_test" + val.suffix)
    return found if found.is_file() else None


def prepare_test_split(settings: TrainSettings, val: ClipDataset) -> Optional[HeldOutClips]:
    """The checked test clips (in the validation directory, read as `val` reads its clips), or None."""
    labels_csv = find_test_labels(settings)
    if labels_csv is None:
        return None
    spec = model_spec(settings.model)
    keypoints = spec.input_kind == "keypoints"
    key, fallback = (settings.kp_key, None) if keypoints else (settings.feature_key, settings.kp_key)  # as training
    directory = Path(getattr(settings, f"{spec.input_kind}_val"))
    flag = setting("labels_test_csv")
    check_training_data(directory, labels_csv, key=key, fallback_key=fallback, require_dim=val.input_dim,
                        num_gloss=settings.num_gloss, num_cat=settings.num_cat, keep_clips=False,
                        limits=clip_limits(settings), role=f"the test data ({flag} {labels_csv})")
    dataset = ClipDataset(directory, labels_csv, key=key, fallback_key=fallback, dim=val.input_dim,
                          max_frames=settings.max_frames, long_clips=settings.long_clips, train=False,
                          seed=settings.seed, cache=False, limits=clip_limits(settings))
    dataset.transform = val.transform  # exactly the validation clips' pipeline
    found = "" if settings.labels_test_csv is not None else f" (found beside {settings.labels_val_csv})"
    notices = [f"test split: {len(dataset)} clips of {labels_csv}{found}, scored once with the checkpoint "
               "validation chooses, after the last epoch"]
    shared = _shared_clips(labels_csv, _train_labels(settings, spec.input_kind))
    if shared:
        notices.append(f"{flag} {labels_csv}: {shared} of its clips are training clips too: its accuracy will not "
                       "be that of clips never seen")
    return HeldOutClips(labels_csv, dataset, notices)


def _train_labels(settings: TrainSettings, kind: str) -> Path:
    if settings.labels_train_csv is not None:
        return Path(settings.labels_train_csv)
    return Path(getattr(settings, f"{kind}_train")) / "labels.csv"


def _shared_clips(test_csv: Path, train_csv: Path) -> int:
    if not train_csv.is_file():
        return 0
    try:
        names = [{str(f).removesuffix(".npz") for f in read_labels(path)["file"]} for path in (test_csv, train_csv)]
        return len(names[0] & names[1])
    except Exception:  # noqa: BLE001 - both files were checked already; this count is only a warning
        return 0


@torch.no_grad()
def score_test_split(test: HeldOutClips, best: Path, device: torch.device, batch_size: int) -> HeldOutAccuracy:
    """The chosen checkpoint's accuracy on the test clips; stored in that checkpoint as `test`."""
    state = ckpt.load_checkpoint(best, need="model")
    model = ckpt.build_trained_model(state, best, device)
    loader = DataLoader(test.dataset, batch_size=batch_size, shuffle=False, collate_fn=test.dataset.collate)
    gloss_right = cat_right = clips = 0
    for batch in loader:
        batch = batch.to(device)
        gloss_logits, cat_logits = model(batch.x, batch.mask)
        gloss_right += int((gloss_logits.argmax(dim=-1) == batch.gloss).sum())
        cat_right += int((cat_logits.argmax(dim=-1) == batch.cat).sum())
        clips += int(batch.gloss.shape[0])
    epoch = int(state.get("best_epoch") or state.get("epoch") or 0)
    result = HeldOutAccuracy(test.labels_csv, clips, gloss_right / max(clips, 1), cat_right / max(clips, 1), epoch, best)
    ckpt.save_checkpoint({**state, ENTRY: result.to_entry()}, best)
    return result
