"""TensorBoard event files of the logged scalars: the rows of log.csv, one step per epoch.

Where and when: beside the run's other outputs, in ``<output-dir>/tensorboard/``, whenever the
optional `tensorboard` package is installed (``pip install -e ".[tensorboard]"``), with nothing to
set: ``tensorboard --logdir runs`` then shows every run under runs/ side by side. A folder flag
alone (on or off in one) would make the common case, "I want the curves", one more thing to
remember; the folder can still be moved (``tensorboard_dir``) or the files turned off
(``tensorboard = False``). Asking for a folder without the package installed is an error before
training, not a run that silently logs nothing.

The writer is fed the same rows as log.csv, by the process that writes log.csv (rank 0 only).
Step = epoch. A resumed run opens its writer with ``purge_step`` = its first new epoch, so
TensorBoard drops anything an earlier attempt logged from that epoch on: no epoch appears twice.
A new run (its first epoch is 1) moves an earlier run's event files into ``earlier/<time>/``
inside the folder, as run_files does with the other files, where TensorBoard shows them as a
run of their own.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from slr.engine.logbook import EXTRA_COLUMNS, GUIDE_COLUMNS
from slr.errors import ConfigError, setting

INSTALL = 'pip install -e ".[tensorboard]"'
EVENT_FILE_PREFIX = "events.out.tfevents."


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
    folder = directory / "earlier" / stamp
    n = 0
    while folder.exists():
        n += 1
        folder = directory / "earlier" / f"{stamp}-{n}"
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
    directory = Path(settings.tensorboard_dir) if asked else Path(output_dir) / "tensorboard"
    if directory.exists() and not directory.is_dir():  # now, not after the first epoch
        raise ConfigError(f"{setting('tensorboard_dir')}: {directory} is a file, not a folder for event files")
    return TensorBoardLog(directory)
