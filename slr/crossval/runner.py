"""`slr cv`: every recipe on the same group folds, one ordinary run folder per recipe and fold.

Layout of `--output-dir` (default `cv/`):

    cv_plan.json                 what the folds and recipes are; a rerun must match it
    folds/fold-<k>/labels_{train,val,test}.csv
    recipes/<recipe>/fold-<k>/   a run folder (checkpoints, settings.json, log.csv, heldout.json)
    cv.json, folds.csv, folds.png   the report (slr/crossval/report.py)

A rerun of the same command continues a killed one (slr/crossval/fold_run.py). A rerun whose folds
or recipes differ is refused: its folds would be scored against another run's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

from slr.atomic import write_atomically
from slr.config import check_config_values, read_config_file, resolve_settings
from slr.crossval.fold_run import FoldResult, FoldTask, finished, run_fold, run_fold_quietly, worker_start
from slr.crossval.folds import Fold, check_splitters, describe_fold, make_folds, write_fold_labels
from slr.crossval.report import CvReport, build_report, write_report
from slr.errors import ConfigError, DataError, SlrError, setting
from slr.settings import CV_SETS_PER_FOLD, CvSettings, TrainSettings

PLAN_FILE = "cv_plan.json"
DEFAULT_RECIPE = "defaults"
#: Settings that may differ between a killed run and its continuation: how fast, not what is trained.
_PACE_SETTINGS = ("threads", "num_workers", "auto_workers", "log_every_s", "device")


class CvObserver(Protocol):
    """What `slr cv` reports while it runs (the command line's view implements it)."""

    def note(self, text: str) -> None: ...

    def fold_start(self, task: FoldTask, resumed: bool) -> None: ...

    def fold_kept(self, result: FoldResult) -> None: ...

    def fold_done(self, result: FoldResult) -> None: ...

    def training(self, task: FoldTask) -> Any:
        """A TrainingObserver for a fold trained in this process, or None."""


class CvInterrupted(Exception):
    """A stop request (Ctrl-C, SIGTERM) ended `slr cv`; the fold in progress saved its _last.pt."""

    def __init__(self, description: str, exit_status: int, where: Optional[str]):
        self.description = description
        self.exit_status = exit_status
        self.where = where
        super().__init__(description)


@dataclass
class Recipe:
    name: str
    file: Optional[Path]
    values: dict[str, Any] = field(default_factory=dict)


def run_cv(settings: CvSettings, observer: CvObserver) -> CvReport:
    """Make (or find again) the folds, train what is not finished, and return the report."""
    check_splitters()
    from slr.data.class_counts import class_counts
    from slr.data.csv_table import read_table
    from slr.data.labels import REQUIRED_COLUMNS, read_labels
    from slr.data.split import group_keys

    data = Path(settings.data)
    if not data.is_dir():
        raise DataError("clip directory not found" if not data.exists() else "not a directory", data)
    labels_csv = Path(settings.labels_csv) if settings.labels_csv is not None else data / "labels.csv"
    recipes = load_recipes(settings)
    rows = read_labels(labels_csv)
    groups, grouping = group_keys(rows, settings.group_by, labels_csv)
    count = settings.folds
    if "folds" not in settings.model_fields_set and count != "loo" and groups.nunique() < count:
        count = "loo"  # the default 5 folds on fewer groups: one fold per group
        observer.note(f"{groups.nunique()} {grouping.noun}s: one fold per {grouping.noun} "
                      f"({setting('folds', 'loo')}; the default is {settings.folds} folds)")
    folds = make_folds(rows, groups, grouping, labels_csv, folds=count, seed=settings.fold_seed,
                       inner_val=settings.inner_val)
    # what the labels and the classes file need, as `slr train` infers them (slr/data/class_counts.py)
    num_gloss, num_cat = class_counts([labels_csv], settings.classes_csv)
    out = Path(settings.output_dir)
    fold_dirs = {fold.number: out / "folds" / fold.name for fold in folds}
    tasks = [
        FoldTask(recipe.name, fold.number,
                 fold_settings(settings, recipe, data, fold_dirs[fold.number], run_dir(out, recipe.name, fold.name),
                               num_gloss, num_cat),
                 str(data.resolve()), str((fold_dirs[fold.number] / "labels_test.csv").resolve()), fold.held_out)
        for fold in folds for recipe in recipes  # recipes alternate inside a fold: a load change hits all alike
    ]
    plan = _plan(settings, labels_csv, grouping.describe(), folds, tasks)
    _check_plan(out, plan)
    raw = read_table(labels_csv, REQUIRED_COLUMNS, "file,gloss,cat")
    for fold in folds:
        write_fold_labels(raw, rows.index, fold, fold_dirs[fold.number])
    write_atomically(out / PLAN_FILE, lambda f: f.write(json.dumps(plan, indent=1).encode("utf-8")))
    for fold in folds:
        observer.note(describe_fold(fold, grouping.noun))
        for text in fold.notices:
            observer.note(text)

    results = _run_tasks(tasks, settings.jobs, observer)
    report = build_report(settings, labels_csv, grouping, folds, recipes, results)
    write_report(report, out)
    return report


def run_dir(out: Path, recipe: str, fold: str) -> Path:
    """A recipe's run folder on one fold."""
    return out / "recipes" / recipe / fold


# -- recipes ----------------------------------------------------------------------------------


def load_recipes(settings: CvSettings) -> list[Recipe]:
    """Each `--recipe FILE` checked as a train config (unknown keys, bad values: the file named)."""
    if not settings.recipes:
        return [Recipe(DEFAULT_RECIPE, None)]
    recipes: list[Recipe] = []
    for path in settings.recipes:
        values = dict(read_config_file(path))
        check_config_values(TrainSettings, values, path)
        per_fold = sorted(set(values) & set(CV_SETS_PER_FOLD))
        if per_fold:
            raise ConfigError(f"sets {', '.join(per_fold)}, which `slr cv` sets for every fold itself; remove it "
                              "from the recipe", path)
        if "model" in values and values["model"] != settings.model:
            raise ConfigError(f"is a recipe for model {values['model']}, and this cross-validation trains "
                              f"{settings.model}", path)
        name = Path(path).stem
        if any(r.name == name for r in recipes):
            raise ConfigError(f"two recipes are named {name!r} (by their file names): rename one", path)
        recipes.append(Recipe(name, Path(path), values))
    return recipes


def fold_settings(settings: CvSettings, recipe: Recipe, data: Path, fold_dir: Path, run_dir: Path,
                  num_gloss: int, num_cat: int) -> dict[str, Any]:
    """One recipe's TrainSettings on one fold: defaults < recipe < `slr cv`'s config and flags; data,
    labels and outputs are the fold's."""
    from slr.models.registry import model_spec

    kind = model_spec(settings.model).input_kind
    given = settings.train_values()
    per_fold: dict[str, Any] = {
        "model": settings.model,
        f"{kind}_train": data.resolve(), f"{kind}_val": data.resolve(),
        "labels_train_csv": (fold_dir / "labels_train.csv").resolve(),
        "labels_val_csv": (fold_dir / "labels_val.csv").resolve(),
        "output_dir": run_dir.resolve(),
    }
    for name, inferred in (("num_gloss", num_gloss), ("num_cat", num_cat)):
        if name not in given and name not in recipe.values:
            per_fold[name] = inferred
    if settings.jobs > 1 and "threads" not in given and "threads" not in recipe.values:
        per_fold["threads"] = max(1, _usable_cpus() // min(settings.jobs, _usable_cpus()))
    resolved = resolve_settings(TrainSettings, {**given, **per_fold}, recipe.file)
    return resolved.model_dump(mode="json")


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# -- the plan a rerun must match ----------------------------------------------------------------


def _plan(settings: CvSettings, labels_csv: Path, grouping: str, folds: Sequence[Fold],
          tasks: Sequence[FoldTask]) -> dict[str, Any]:
    recipes: dict[str, Any] = {}
    for task in tasks:
        if task.recipe not in recipes:
            values = {k: v for k, v in task.settings.items()
                      if k not in _PACE_SETTINGS and k not in CV_SETS_PER_FOLD}
            recipes[task.recipe] = values
    return {
        "model": settings.model,
        "data": str(Path(settings.data).resolve()),
        "labels_csv": str(labels_csv.resolve()),
        "labels_sha256": hashlib.sha256(labels_csv.read_bytes()).hexdigest(),
        "group_by": grouping,
        "folds": len(folds),
        "fold_seed": settings.fold_seed,
        "inner_val": settings.inner_val,
        "fold_groups": [fold.describe() for fold in folds],
        "recipes": recipes,
    }


def _check_plan(out: Path, plan: dict[str, Any]) -> None:
    path = out / PLAN_FILE
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the earlier cross-validation's plan ({exc}): use another "
                        f"{setting('output_dir')}", path) from None
    if earlier == plan:
        return
    differ = sorted(k for k in set(plan) | set(earlier) if plan.get(k) != earlier.get(k))
    if "recipes" in differ and isinstance(earlier.get("recipes"), dict):
        names = sorted(n for n in set(plan["recipes"]) | set(earlier["recipes"])
                       if plan["recipes"].get(n) != earlier["recipes"].get(n))
        settings_differ = sorted({k for n in names if n in plan["recipes"] and n in earlier["recipes"]
                                  for k in set(plan["recipes"][n]) | set(earlier["recipes"][n])
                                  if plan["recipes"][n].get(k) != earlier["recipes"][n].get(k)})
        differ[differ.index("recipes")] = (f"recipes ({', '.join(names)}"
                                           + (f": {', '.join(settings_differ)}" if settings_differ else "") + ")")
    raise ConfigError(
        f"holds a cross-validation with other {', '.join(differ)}: running the same command again continues it; "
        f"for a new one choose another {setting('output_dir')}", out)


# -- running the folds ------------------------------------------------------------------------


def _run_tasks(tasks: Sequence[FoldTask], jobs: int, observer: CvObserver) -> list[FoldResult]:
    results: dict[tuple[str, int], FoldResult] = {}
    pending = []
    for task in tasks:
        done = finished(task)
        if done is not None:
            observer.fold_kept(done)
            results[(task.recipe, task.fold)] = done
        else:
            pending.append(task)
    workers = min(jobs, len(pending), _usable_cpus())
    if jobs > 1 and pending and workers < jobs:
        observer.note(f"{setting('jobs', jobs)}: {workers} process(es) ({len(pending)} fold run(s) to train, "
                      f"{_usable_cpus()} usable CPU(s))")
    if workers <= 1:
        for task in pending:
            results[(task.recipe, task.fold)] = _run_here(task, observer)
    else:
        for result in _run_in_processes(pending, workers, observer):
            results[(result.recipe, result.fold)] = result
    return [results[(task.recipe, task.fold)] for task in tasks]


def _run_here(task: FoldTask, observer: CvObserver) -> FoldResult:
    from slr.engine.training import Interrupted

    try:
        result = run_fold(task, observer.training(task), on_start=lambda resumed: observer.fold_start(task, resumed))
    except Interrupted as stop:
        raise CvInterrupted(stop.description, stop.exit_status, f"recipe {task.recipe}, fold {task.fold}") from None
    observer.fold_done(result)
    return result


class _StopRequest(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _run_in_processes(pending: Sequence[FoldTask], workers: int, observer: CvObserver) -> list[FoldResult]:
    """Folds in `workers` processes (spawned: a forked torch may hang in its thread pools).

    Ctrl-C, SIGTERM or SIGHUP to `slr cv` is passed on to the workers, which save their folds (as
    `slr train` does), and `slr cv` ends with the signal's exit status once they have."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from slr.models.registry import model_spec

    done: list[FoldResult] = []
    problems: list[str] = []
    stopped: Optional[dict[str, str]] = None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_start)

    def request_stop(signum: int, frame: Any) -> None:
        raise _StopRequest(signum)

    stops = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, request_stop) for sig in stops}
    try:
        futures = {}
        for task in pending:
            name = model_spec(task.settings["model"]).class_name
            observer.fold_start(task, (task.run_dir / f"{name}_last.pt").is_file())
            futures[pool.submit(run_fold_quietly, task)] = task
        for future in as_completed(futures):
            task = futures[future]
            value = future.result()
            if isinstance(value, FoldResult):
                observer.fold_done(value)
                done.append(value)
            elif "interrupted" in value:
                stopped = value
            else:
                problems.append(f"recipe {task.recipe}, fold {task.fold}: {value['error']}")
    except _StopRequest as stop:
        for sig in stops:  # a second signal must not abandon the workers while they save
            signal.signal(sig, signal.SIG_IGN)
        for process in list(getattr(pool, "_processes", {}).values()):
            try:
                os.kill(process.pid, stop.signum)
            except ProcessLookupError:
                pass
        pool.shutdown(wait=True, cancel_futures=True)
        name = signal.Signals(stop.signum).name
        raise CvInterrupted({"SIGINT": "Ctrl-C (SIGINT)"}.get(name, name), 128 + stop.signum, None) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if problems:
        raise SlrError("\n".join(problems))
    if stopped is not None:
        raise CvInterrupted(stopped["description"], 143, None)
    return done
