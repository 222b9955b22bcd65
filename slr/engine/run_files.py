"""The files of a run: checked before any work starts, and an earlier run's kept, never overwritten.

Every guide example writes to the default --output-dir, so a second run there is normal use, not
a mistake: the earlier run's files (checkpoints, log, curves, settings.json, and what slr export,
evaluate and compare wrote there by default: report_files.py) are moved into ``earlier/<time>/``
beside them first, and the run says so.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import shutil
import time
from pathlib import Path
from typing import Optional

from slr.engine.logbook import GUIDE_COLUMNS
from slr.engine.report_files import default_reports, exports_of
from slr.engine.trainer import RunPaths
from slr.errors import ConfigError, setting
from slr.output_paths import check_output_dir, check_output_file, same_file
from slr.models.registry import MODELS, checkpoint_filename

LOG_HEADER_START = GUIDE_COLUMNS[0] + ","  # how every log slr writes begins


def check_writable(paths: RunPaths) -> None:
    """Fail now, naming the flag, rather than after the first epoch when the log is first written.
    Nothing is created here, so a refused run leaves no empty folder behind."""
    check_output_dir(paths.output_dir, setting("output_dir"))
    log = paths.log_csv
    check_output_file(log, setting("log_csv"))
    if log.is_file() and not _is_slr_log(log):
        raise ConfigError(
            f"{setting('log_csv')}: {log} exists and is not an slr training log (it does not start with "
            f"'{LOG_HEADER_START}...'); it is left as it is: choose another file"
        )


def _is_slr_log(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return first == "" or first.startswith(LOG_HEADER_START)


def keep_earlier_run(paths: RunPaths, model: str, resume_path: Optional[Path] = None) -> list[tuple[list[str], Path]]:
    """Move an earlier run's files out of this run's way; return (names, folder) for each folder
    they went to (empty when nothing moved).

    A folder holds one run: the checkpoints of every model, the log, its curves and settings.json
    move together (a log left beside another model's checkpoints would be overwritten by a resume
    of that model). With them go the files slr wrote about them by default, which would otherwise
    describe checkpoints they are not: the checkpoints' exports, and the evaluation/ and
    comparison/ reports (into folders of those names under earlier/<time>/; a user's own files in
    those folders stay). Each file goes to ``earlier/<time>/`` beside it, so a --log-csv kept outside
    the output folder stays near where its run's settings point. A run resumed from its own
    ``_last.pt`` (or an identical copy) continues in place and moves nothing; the checkpoint a run
    resumes from always stays where it is.
    """
    if resume_path is not None and _same_file(resume_path, paths.last) and _run_model(paths) in (None, model):
        return []
    checkpoints = [paths.output_dir / checkpoint_filename(name, kind) for name in MODELS for kind in ("last", "best")]
    # What this run will write, and wherever the earlier run's own log and curves are (its log may
    # be elsewhere than this run's: a stale one beside new checkpoints would pass for theirs).
    targets = [*checkpoints, paths.log_csv, paths.log_csv.with_suffix(".png"), paths.settings_json,
               *_earlier_log_files(paths)]
    targets += [export for checkpoint in checkpoints for export in exports_of(checkpoint)]
    source = resume_path.resolve() if resume_path is not None else None
    # (file, the folder whose earlier/<time>/ it goes to, its name there)
    present = [(p, p.parent, p.name) for p in dict.fromkeys(targets) if p.is_file() and p.resolve() != source]
    present += [(p, paths.output_dir, f"{p.parent.name}/{p.name}")
                for p in default_reports(paths.output_dir) if p.is_file() and p.resolve() != source]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved: dict[Path, tuple[list[str], Path]] = {}
    for path, home, name in present:
        if home not in moved:
            moved[home] = ([], _fresh_folder(home / "earlier", stamp))
        names, folder = moved[home]
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.move(path, folder / name)  # a --log-csv elsewhere may sit on another file system
        shown = name.split("/", 1)[0] + "/" if "/" in name else name  # a report folder is named once
        if shown not in names:
            names.append(shown)
    for report_dir in {path.parent for path, home, name in present if "/" in name}:
        with contextlib.suppress(OSError):  # left in place where it holds other files
            report_dir.rmdir()
    return list(moved.values())


def files_record(paths: RunPaths) -> dict[str, str]:
    """Where a run's log is, for its settings.json: relative to the output folder when inside it
    (the folder may be moved or copied), absolute otherwise."""
    return {"log_csv": _relative_or_absolute(paths.log_csv, paths.output_dir)}


def _relative_or_absolute(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except (ValueError, OSError):
        return str(path.resolve())


def _earlier_log_files(paths: RunPaths) -> list[Path]:
    """The log and curves of the run recorded in the folder's settings.json (none without one).
    A log outside the folder counts only while it is still an slr log: the record may be old."""
    try:
        record = json.loads(paths.settings_json.read_text(encoding="utf-8"))
        where = (record.get("files") or {}).get("log_csv")
        if where is None:  # written before slr recorded its files: the log setting, as it was given
            where = record["settings"].get("log_csv") or "log.csv"
            log = Path(where) if record["settings"].get("log_csv") else paths.output_dir / where
        else:
            log = Path(where) if Path(where).is_absolute() else paths.output_dir / where
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    if not (log.is_file() and _is_slr_log(log)):
        return []
    return [log, log.with_suffix(".png")]


def _run_model(paths: RunPaths) -> Optional[str]:
    """The model of the run whose settings.json is in the folder, if one is and it is readable."""
    try:
        return json.loads(paths.settings_json.read_text(encoding="utf-8"))["settings"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_file(a: Path, b: Path) -> bool:
    """One file, or an identical copy of it (a run resumed from a copy of its own _last.pt)."""
    return b.is_file() and (same_file(a, b) or filecmp.cmp(a, b, shallow=False))


def _fresh_folder(parent: Path, stamp: str) -> Path:
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{parent} is a file: cannot keep the earlier run's files there; move it away")
    for n in range(1000):
        folder = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise ConfigError(f"{parent}: too many earlier runs with the same time stamp")
