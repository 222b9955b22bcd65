"""``*_best.pt`` and what ``*_last.pt`` says of it agree, also after a kill between their writes.

An improving epoch writes ``_last.pt`` and then ``_best.pt``, both from the same state. A process
killed between the two (or while ``_best.pt`` is being written, or on a full disk) leaves a
``_last.pt`` that names its own epoch as the best beside a ``_best.pt`` of an older epoch, or none.
Nothing is lost: in that case the best weights are exactly those in ``_last.pt``. Before a run
resumes from it, the best is therefore rewritten from it, so that the run never reports a best
checkpoint it does not have. ``_last.pt`` is always the one written first: a kill never leaves a
``_best.pt`` newer than the history that ``_last.pt`` carries on from.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Optional

from slr.atomic import write_atomically
from slr.errors import SlrError

LAST, BEST = "_last.pt", "_best.pt"


def best_beside(last: Path) -> Optional[Path]:
    """``X_best.pt`` for ``X_last.pt``; None for a checkpoint under another name (a copy elsewhere)."""
    last = Path(last)
    return last.with_name(last.name[: -len(LAST)] + BEST) if last.name.endswith(LAST) else None


def _held_epoch(best: Path) -> Optional[int]:
    from slr.engine.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(best, need="weights")["epoch"])
    except (SlrError, OSError, KeyError, TypeError, ValueError):
        return None  # absent, half-written or damaged: it holds no usable best


def reconcile_best(state: Mapping[str, Any], last: Path) -> list[str]:
    """Rewrite ``_best.pt`` from ``last`` when ``last`` names itself the best and ``_best.pt`` is
    not that epoch; return a note saying so (or saying why it cannot be done)."""
    best = best_beside(last)
    best_epoch, epoch = state.get("best_epoch") or 0, state.get("epoch") or 0
    if best is None or not best_epoch:
        return []
    held = _held_epoch(best)
    if held == best_epoch:
        return []
    what = f"holds epoch {held}" if held is not None else ("is missing" if not best.exists() else "is unreadable")
    if best_epoch == epoch and not state.get("step_in_epoch"):
        # The improving epoch's end: _last.pt holds exactly the best weights.
        with open(last, "rb") as source:
            write_atomically(best, lambda f: shutil.copyfileobj(source, f, 1 << 20))
        return [f"{best.name} {what}, but {Path(last).name} names epoch {best_epoch} as the best (the run was "
                f"stopped between the two writes): rewrote {best} from {Path(last).name}"]
    return [f"{best.name} {what}, but {Path(last).name} names epoch {best_epoch} as the best; its weights are "
            f"not in {Path(last).name} any more, so {best.name} stays as it is until a better epoch replaces it"]
