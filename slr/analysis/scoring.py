"""Running a checkpoint's model over clips for `slr evaluate` and `slr predict`, refusing bad values.

A clip with NaN or infinite values gives NaN probabilities: meaningless metrics, and `"prob": NaN`
in JSON output, which is not JSON. So every clip is checked as the model would see it (read into
float32, shortened and normalised) before it is run, and every clip that cannot be used is named in
one message, as training does. Outputs that are not finite although the inputs are come from the
model itself, so that message names the checkpoint instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from slr.data.dataset import ClipDataset, ClipSample, collate_clips
from slr.errors import CheckpointError, DataError

if TYPE_CHECKING:
    from slr.analysis.inference import LoadedModel

#: Refused clips shown one per line with the reason; any beyond are named together on one more line.
LINES_SHOWN = 20


def non_finite_frames(x: np.ndarray | torch.Tensor) -> int:
    """How many frames (rows) of a `[T, D]` clip hold a NaN or an infinity."""
    if isinstance(x, torch.Tensor):
        return int((~torch.isfinite(x)).any(dim=1).sum())
    return int((~np.isfinite(x)).any(axis=1).sum())


def refuse_clips(problems: Sequence[tuple[str, str]], total: int, where: Optional[Path] = None) -> None:
    """Raise one `DataError` naming every unusable clip; `problems` are (clip, message naming it)."""
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(problems[0][1])
    lines = [message for _, message in problems[:LINES_SHOWN]]
    rest = [clip for clip, _ in problems[LINES_SHOWN:]]
    if rest:
        lines.append(f"and {len(rest)} more: {', '.join(rest)}")
    raise DataError(f"{len(problems)} of {total} clips cannot be used:\n  " + "\n  ".join(lines), where)


def class_probabilities(
    loaded: "LoadedModel",
    dataset: ClipDataset,
    batch_size: int,
    labels: Sequence[str],
    where: Optional[Path] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities of both heads, `[N, num_gloss]` and `[N, num_cat]`, for every clip in order.

    `labels[i]` names clip i in messages. Clips that cannot be read or hold NaN / inf values are all
    named in one `DataError` (`where`: the directory, if any); the model is not run once one is found,
    but the remaining clips are still read so that the message names every one.
    """
    problems: list[tuple[str, str]] = []
    pending: list[ClipSample] = []
    gloss: list[torch.Tensor] = [torch.zeros(0, loaded.num_gloss)]
    cat: list[torch.Tensor] = [torch.zeros(0, loaded.num_cat)]

    def run_pending() -> None:
        batch = collate_clips(pending)
        pending.clear()
        gloss_logits, cat_logits = loaded.logits(batch)
        finite = torch.isfinite(gloss_logits).all(dim=1) & torch.isfinite(cat_logits).all(dim=1)
        if not bool(finite.all()):
            rows = (~finite).nonzero().flatten().tolist()
            clips = [labels[int(batch.index[r])] for r in rows]
            more = f" and {len(clips) - 1} other clip(s)" if len(clips) > 1 else ""
            raise CheckpointError(
                f"the model gives NaN or infinite outputs for {clips[0]}{more}, whose values are finite: "
                "the checkpoint's weights cannot be used (damaged, or from a diverged run)",
                loaded.path,
            )
        gloss.append(torch.softmax(gloss_logits, dim=-1))
        cat.append(torch.softmax(cat_logits, dim=-1))

    # numpy would warn (overflow in the float32 cast or in normalising) without naming the clip;
    # the check below reports the same clips, by name.
    with np.errstate(all="ignore"):
        for i in range(len(dataset)):
            try:
                sample = dataset[i]
            except DataError as exc:
                problems.append((labels[i], str(exc)))
                continue
            bad = non_finite_frames(sample.x)
            if bad:
                why = f"NaN or infinite values in {bad} of {len(sample.x)} frames (as read into float32 and normalised)"
                problems.append((labels[i], f"{labels[i]}: {why}"))
            elif not problems:  # once a clip is refused nothing is reported: skip the model
                pending.append(sample)
                if len(pending) == batch_size:
                    run_pending()
        if pending and not problems:
            run_pending()
    refuse_clips(problems, len(dataset), where)
    return torch.cat(gloss), torch.cat(cat)
