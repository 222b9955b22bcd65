"""A run's folder: the one place its file names are decided, and everything done to its files.

``run_paths(settings)`` names a run's files (``<Model>_last.pt``, ``<Model>_best.pt``, the log,
settings.json, the TensorBoard folder), and ``checkpoint_path`` / ``best_beside`` /
``last_checkpoints`` are the only other places a checkpoint's name is built. Below them: the log
and settings.json (rewritten atomically from the history), the files other commands write into a
run's folder by default, the output checks and the moving of an earlier run into ``earlier/``,
the lock that keeps one run per folder, and the removal of temporaries that killed processes
left behind. Nothing here imports torch at module level (``slr extract`` uses the temporaries'
rules).
"""

from __future__ import annotations

import contextlib
import csv
import filecmp
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from slr.atomic import TEMP_TAG, host_tag, write_atomically
from slr.errors import ConfigError, setting
from slr.output_paths import check_output_dir, check_output_file, same_file

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LAST, BEST = "last", "best"
LOCK_NAME = ".slr-run.lock"
TENSORBOARD_DIR = "tensorboard"
EARLIER_DIR = "earlier"
INSTALL = 'pip install -e ".[tensorboard]"'
EVENT_FILE_PREFIX = "events.out.tfevents."
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(TEMP_TAG)
                        + r"(\.[A-Za-z0-9.]+)?$")


# -- names ========================================================================================


@dataclass
class RunPaths:
    output_dir: Path
    last: Path
    best: Path
    log_csv: Path
    settings_json: Path


def run_paths(settings) -> RunPaths:
    """Where a training run with these settings writes."""
    out = Path(settings.output_dir)
    return RunPaths(
        output_dir=out,
        last=checkpoint_path(out, settings.model, LAST),
        best=checkpoint_path(out, settings.model, BEST),
        log_csv=Path(settings.log_csv) if settings.log_csv else out / "log.csv",
        settings_json=out / "settings.json",
    )


def checkpoint_name(model: str, which: str) -> str:
    """``SignTransformer_last.pt`` for the transformer's last checkpoint: the registry's class
    name, as the training guide names the files."""
    from slr.models.registry import model_spec

    return f"{model_spec(model).class_name}_{which}.pt"


def checkpoint_path(folder: Path, model: str, which: str) -> Path:
    return Path(folder) / checkpoint_name(model, which)


def best_beside(last: Path) -> Optional[Path]:
    """``X_best.pt`` for ``X_last.pt``; None for a checkpoint under another name (a copy elsewhere)."""
    last, suffix = Path(last), f"_{LAST}.pt"
    return last.with_name(last.name[: -len(suffix)] + f"_{BEST}.pt") if last.name.endswith(suffix) else None


def last_checkpoints(folder: Path) -> dict[str, Path]:
    """Model name -> its ``_last.pt`` in ``folder``, for the models that have one there."""
    from slr.models.registry import MODELS

    found = {model: checkpoint_path(folder, model, LAST) for model in MODELS}
    return {model: path for model, path in found.items() if path.is_file()}



# -- the run's log and settings.json ================================================================
# The per-epoch log CSV and settings.json, both rewritten atomically from the run's history.
#
# The history travels inside every checkpoint, so a resumed run rewrites the log with exactly the
# epochs its checkpoint knows and carries on; rows of epochs that were lost are never duplicated.


#: The training guide's columns, in its order; further columns follow them.
GUIDE_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_gloss_acc",
    "val_cat_acc",
    "lr",
    "epoch_time",
    "gpu_memory_allocated",
    "gpu_memory_reserved",
]
EXTRA_COLUMNS = ["train_gloss_acc", "train_cat_acc", "samples_per_s", "val_time", "gpu_memory_peak", "rss"]
LOG_HEADER_START = GUIDE_COLUMNS[0] + ","  # how every log slr writes begins


def write_atomic(path: Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def write_log_csv(path: Path, history: Iterable[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    # "\n", not the csv module's default "\r\n": the log is read by line-based tools (tail, grep, diff)
    writer = csv.DictWriter(
        buffer, fieldnames=GUIDE_COLUMNS + EXTRA_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")



# -- what other commands write into a run's folder ==================================================
# The files other commands write into a run's folder by default, named in one place.
#
# `slr export` writes `<checkpoint stem>.ts.pt` / `.onnx` beside the checkpoint, `slr evaluate` its
# report into `evaluation/` beside the checkpoint, `slr compare` into `comparison/` beside the first
# one. They describe that run's checkpoints, so a new run into the folder moves them to `earlier/`
# with the checkpoints (keep_earlier_run below). The commands take the names from here, so what
# is moved is what they write.


#: `slr export`'s suffix per format, after the checkpoint's stem.
EXPORT_SUFFIXES = {"torchscript": ".ts.pt", "onnx": ".onnx"}

#: `slr evaluate`'s default folder (beside the checkpoint) and what it writes there.
EVALUATION_DIR = "evaluation"
EVALUATION_FILES = (
    "confusion_gloss.csv", "confusion_gloss.png", "confusion_cat.csv", "confusion_cat.png",
    "predictions.csv", "metrics.json",
)
#: Written as well when results are split by a labels column.
EVALUATION_GROUP_FILE = "per_group.csv"

#: `slr compare`'s default folder (beside the first checkpoint) and what it writes there.
COMPARISON_DIR = "comparison"
COMPARISON_FILES = ("comparison.json", "per_class.csv", "curves.png")


def exports_of(checkpoint: Path) -> list[Path]:
    """Where `slr export` writes this checkpoint's exports by default, one per format."""
    return [checkpoint.with_name(checkpoint.stem + suffix) for suffix in EXPORT_SUFFIXES.values()]


def default_reports(folder: Path) -> list[Path]:
    """Every file `slr evaluate` and `slr compare` write by default for checkpoints in ``folder``."""
    return [*(folder / EVALUATION_DIR / name for name in (*EVALUATION_FILES, EVALUATION_GROUP_FILE)),
            *(folder / COMPARISON_DIR / name for name in COMPARISON_FILES)]



# -- output checks and earlier runs =================================================================
# The files of a run: checked before any work starts, and an earlier run's kept, never overwritten.
#
# Every guide example writes to the default --output-dir, so a second run there is normal use, not
# a mistake: the earlier run's files (checkpoints, log, curves, settings.json, and what slr export,
# evaluate and compare wrote there by default: the section above) are moved into ``earlier/<time>/``
# beside them first, and the run says so.


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
    from slr.models.registry import MODELS

    checkpoints = [checkpoint_path(paths.output_dir, name, kind) for name in MODELS for kind in ("last", "best")]
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
            moved[home] = ([], _fresh_folder(home / EARLIER_DIR, stamp))
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



# -- one run per folder =============================================================================
# One training run per output folder at a time.
#
# Two runs into one --output-dir would write the same checkpoint paths, and the second would move
# the first's files to ``earlier/`` in mid-run. A run therefore holds an exclusive ``flock`` on
# ``<output-dir>/.slr-run.lock`` for its whole life (only rank 0 under torchrun: the only writer).
# The kernel drops the lock when the process ends in any way, SIGKILL included, so a dead run's
# lock never blocks the next one; the pid, host and start time written in the file only serve
# to name the holder in the refusal. The lock is given back, and the file removed, when the run ends.


class OutputDirInUse(ConfigError):
    """Another live slr run writes into this output folder."""


class RunLock:
    """An output folder held by this process; ``release()`` (or the process's end) gives it back."""

    def __init__(self, folder: Path, fd: Optional[int], created_folder: bool):
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd = fd
        self._created_folder = created_folder

    def release(self) -> None:
        if self._fd is None:
            return
        # Remove the file while still holding the lock: a run that opened it meanwhile notices the
        # file is gone (see _lock_file) instead of holding a lock nobody else can see.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        if self._created_folder:  # a run refused before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                self.folder.rmdir()


_held: list[RunLock] = []


def hold_output_dir(folder: Path) -> RunLock:
    """Lock ``folder`` for this run (creating it), or refuse naming the run that holds it."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        lock = RunLock(folder, None, created)
    else:
        try:
            fd = _lock_file(folder / LOCK_NAME)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        lock = RunLock(folder, fd, created)
    _held.append(lock)
    return lock


def release_all() -> None:
    """Give back every folder this process holds (the end of a run, however it ended)."""
    while _held:
        _held.pop().release()


def _lock_file(path: Path) -> int:
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise OutputDirInUse(
                f"{path.parent} is in use by another slr run ({holder}): two runs there would overwrite "
                f"each other's checkpoints. Wait for it to end, or give this run another {setting('output_dir')}"
            ) from None
        except OSError:
            # A file system without locks (some network mounts): run unlocked rather than not at all.
            return fd
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _write_holder(fd)
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: again
    raise OutputDirInUse(f"{path.parent}: could not take the run lock {path.name} (it keeps being replaced)")


def _write_holder(fd: int) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:500],
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "its process has not said who it is yet"
    where = f" on {info['host']}" if info.get("host") and info.get("host") != socket.gethostname() else ""
    since = f", started {info['started']}" if info.get("started") else ""
    return f"pid {info['pid']}{where}{since}"



# -- temporaries of killed processes ================================================================
# Temporary files that killed slr processes left in a folder, removed by the next run there.
#
# An atomic write (slr/atomic.py) fills ``.<target>.<host>-<pid>-<random>.tmp`` and renames
# it into place; a process killed in between (SIGKILL, the OOM killer, a power cut, a second Ctrl-C)
# leaves the temporary file, as large as a checkpoint. The next training run in the folder, once it
# holds the folder's lock (above), removes those of this machine whose process is
# gone. Files written by another host, by a live process, or under any other name are never touched.


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def stale_temporaries(folder: Path) -> list[Path]:
    """slr's temporary files in ``folder`` whose writer, a process of this machine, no longer runs."""
    here = host_tag()
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != here or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not process_alive(pid):
            found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Remove them; return a note per file removed (its name and size)."""
    notes = []
    for path in stale_temporaries(folder):
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            notes.append(f"removed {path.name} ({size / 2**20:.1f} MiB), left in {folder} by a killed slr process")
    return notes



# -- TensorBoard event files ========================================================================
# TensorBoard event files of the logged scalars: the rows of log.csv, one step per epoch.
#
# Where and when: beside the run's other outputs, in ``<output-dir>/tensorboard/``, whenever the
# optional `tensorboard` package is installed (``pip install -e ".[tensorboard]"``), with nothing to
# set: ``tensorboard --logdir runs`` then shows every run under runs/ side by side. A folder flag
# alone (on or off in one) would make the common case, "I want the curves", one more thing to
# remember; the folder can still be moved (``tensorboard_dir``) or the files turned off
# (``tensorboard = False``). Asking for a folder without the package installed is an error before
# training, not a run that silently logs nothing.
#
# The writer is fed the same rows as log.csv, by the process that writes log.csv (rank 0 only).
# Step = epoch. A resumed run opens its writer with ``purge_step`` = its first new epoch, so
# TensorBoard drops anything an earlier attempt logged from that epoch on: no epoch appears twice.
# A new run (its first epoch is 1) moves an earlier run's event files into ``earlier/<time>/``
# inside the folder, as keep_earlier_run does with the other files, where TensorBoard shows them as a
# run of their own.


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """Writes each epoch's row as scalars named like the log.csv columns; opened at the first row."""

    def __init__(self, directory: Optional[Path]):
        self.directory = directory  # None: off (not installed, turned off, or not rank 0)
        self._writer = None

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def write(self, row: Mapping[str, Any]) -> None:
        if self.directory is None:
            return
        epoch = int(row["epoch"])
        if self._writer is None:
            self._writer = self._open(epoch)
        for name in GUIDE_COLUMNS + EXTRA_COLUMNS:
            value = row.get(name)
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(name, value, global_step=epoch)
        self._writer.flush()  # a crash must not lose the epochs log.csv already has

    def _open(self, first_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        if first_epoch == 1:
            _keep_earlier_events(self.directory)
        return SummaryWriter(log_dir=str(self.directory), purge_step=first_epoch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _keep_earlier_events(directory: Path) -> None:
    earlier = sorted(directory.glob(EVENT_FILE_PREFIX + "*")) if directory.is_dir() else []
    if not earlier:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = directory / EARLIER_DIR / stamp
    n = 0
    while folder.exists():
        n += 1
        folder = directory / EARLIER_DIR / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    for path in earlier:
        shutil.move(path, folder / path.name)


def open_tensorboard_log(settings, output_dir: Path, is_main: bool) -> TensorBoardLog:
    """The run's TensorBoard log, or one that writes nothing; refuses a folder asked for without
    the package to write it."""
    asked = settings.tensorboard_dir is not None
    if not settings.tensorboard:
        return TensorBoardLog(None)
    if not tensorboard_installed():
        if asked:
            raise ConfigError(
                f"{setting('tensorboard_dir')} {settings.tensorboard_dir}: the 'tensorboard' package is not "
                f"installed; install it with {INSTALL} in slr's folder (or pip install tensorboard)"
            )
        return TensorBoardLog(None)
    if not is_main:
        return TensorBoardLog(None)
    directory = Path(settings.tensorboard_dir) if asked else Path(output_dir) / TENSORBOARD_DIR
    if directory.exists() and not directory.is_dir():  # now, not after the first epoch
        raise ConfigError(f"{setting('tensorboard_dir')}: {directory} is a file, not a folder for event files")
    return TensorBoardLog(directory)
