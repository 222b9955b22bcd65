"""One recipe on one fold: train (or continue a killed run exactly), then score the held-out groups once.

A fold's run is an ordinary run folder (`slr evaluate`, `slr compare`, `slr resume` open it). What
makes it finished is `heldout.json` beside its checkpoints, written (atomically) only after the
held-out groups were scored with the chosen checkpoint (`*_best.pt`: the epoch the inner
validation split chose). So a killed `slr cv` that runs again:

- keeps a fold whose `heldout.json` is there, and does not score it again;
- continues a fold whose `*_last.pt` is there from that checkpoint, through `slr resume`'s own path
  (`engine.run.plan_resume`): the same epochs, batches and random streams as an unbroken run;
- starts the others.

This module is what a worker process of `--jobs N` runs, so it takes and returns plain values.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from slr.atomic import write_atomically

HELDOUT_FILE = "heldout.json"
#: Bumped when heldout.json changes shape: an older one is then scored again, not misread.
HELDOUT_VERSION = 1


@dataclass
class FoldTask:
    recipe: str
    fold: int
    settings: dict[str, Any]  # the fold's TrainSettings, as JSON values
    data: str  # the clip directory
    test_labels: str  # labels_test.csv: the held-out groups
    held_out: list[str]

    @property
    def run_dir(self) -> Path:
        return Path(self.settings["output_dir"])


@dataclass
class FoldResult:
    """A recipe's numbers on one fold; `correct`: each held-out clip -> gloss right (top-1) or not."""

    recipe: str
    fold: int
    held_out: list[str]
    clips: int
    gloss_top1: float
    gloss_top5: float
    top5_k: int
    cat_top1: Optional[float]  # None where the data has one category
    inner_best: float  # the inner validation's best val_gloss_acc: what chose the checkpoint
    best_epoch: int
    inner_last: float  # the inner validation's last epoch
    epochs: int
    run_dir: str
    checkpoint: str
    resumed: bool = False  # this call continued a killed run of the fold
    correct: dict[str, bool] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-clip answers (those stay in the fold's heldout.json)."""
        values = asdict(self)
        values.pop("correct")
        return values


def finished(task: FoldTask) -> Optional[FoldResult]:
    """The fold's result when an earlier call scored it, else None."""
    path = task.run_dir / HELDOUT_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("version") != HELDOUT_VERSION:
        return None
    if stored.get("recipe") != task.recipe or stored.get("fold") != task.fold:
        return None
    result = FoldResult(**{k: v for k, v in stored.items() if k in FoldResult.__dataclass_fields__})
    result.resumed = False
    return result


def run_fold(task: FoldTask, observer: Any = None, on_start: Any = None) -> FoldResult:
    """Train (or continue) the fold's run, then score its held-out groups with the chosen checkpoint.

    `on_start(resumed: bool)` is called once it is known whether a killed run is continued.
    Raises what `engine.run.train` raises (`Interrupted` after a stop request, `SlrError`)."""
    from slr.engine.run import plan_resume, train
    from slr.models.registry import model_spec
    from slr.settings import ResumeSettings, TrainSettings

    settings = TrainSettings.model_validate(task.settings)
    name = model_spec(settings.model).class_name
    last = task.run_dir / f"{name}_last.pt"
    resumed = last.is_file()
    if on_start is not None:
        on_start(resumed)
    if resumed:
        plan = plan_resume(ResumeSettings(checkpoint=last))
        outcome = train(plan.settings, observer, resume=plan)
    else:
        outcome = train(settings, observer)
    best = task.run_dir / f"{name}_best.pt"
    history = outcome.history
    result = score_held_out(task, best, settings)
    result.inner_best = float(outcome.best_metric)
    result.best_epoch = int(outcome.best_epoch)
    result.inner_last = float(history[-1]["val_gloss_acc"]) if history else float("nan")
    result.epochs = int(outcome.epochs_done)
    result.resumed = resumed
    record = {"version": HELDOUT_VERSION, **asdict(result)}
    write_atomically(task.run_dir / HELDOUT_FILE,
                     lambda f: f.write(json.dumps(record, indent=1).encode("utf-8")))
    return result


def score_held_out(task: FoldTask, checkpoint: Path, settings: Any) -> FoldResult:
    """Score the fold's held-out clips once with `checkpoint` (evaluation's own code)."""
    from slr.analysis.evaluate import score_clips
    from slr.analysis.inference import load_model, pick_device
    from slr.data.clip_limits import clip_limits

    loaded = load_model(checkpoint, pick_device(settings.device))
    scored = score_clips(loaded, Path(task.data), Path(task.test_labels), batch_size=settings.batch_size,
                         limits=clip_limits(settings))
    gloss, cat = scored.task_metrics(0)
    right = scored.gloss_probs.argmax(axis=1) == scored.gloss
    has_categories = loaded.num_cat > 1
    return FoldResult(
        recipe=task.recipe, fold=task.fold, held_out=task.held_out, clips=scored.count,
        gloss_top1=float(gloss.top1), gloss_top5=float(gloss.top5), top5_k=int(gloss.top5_k),
        cat_top1=float(cat.top1) if has_categories else None,
        inner_best=float("nan"), best_epoch=0, inner_last=float("nan"), epochs=0,
        run_dir=str(task.run_dir), checkpoint=str(checkpoint),
        correct={clip: bool(ok) for clip, ok in zip(scored.clips, right)},
    )


#: Set while a worker process trains or scores a fold (the orphan watch below waits for it to save).
_BUSY = threading.Event()


def worker_start() -> None:
    """A `--jobs` worker process stops with the `slr cv` that started it, even one killed by SIGKILL:
    it gets SIGTERM (Linux's parent-death signal), so the fold in progress saves its _last.pt and
    stops, and a watch thread then ends the process, which would otherwise wait forever for work
    from a parent that is gone, holding nothing but memory. The next `slr cv` continues the fold."""
    import signal

    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    threading.Thread(target=_end_when_orphaned, args=(parent,), daemon=True).start()


def _end_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent and not _BUSY.is_set():
            os._exit(143)


def run_fold_quietly(task: FoldTask) -> FoldResult | dict[str, str]:
    """`run_fold` in a worker process: nothing shown; a stop request comes back as a value (exceptions
    with extra state do not always survive the trip between processes)."""
    from slr.engine.training import Interrupted
    from slr.errors import SlrError

    _BUSY.set()
    try:
        return run_fold(task)
    except Interrupted as stop:
        return {"interrupted": str(stop.path), "description": getattr(stop, "description", "a stop request")}
    except SlrError as exc:
        return {"error": str(exc), "kind": type(exc).__name__}
    finally:
        _BUSY.clear()
