"""Atomic writes for the engine: the helper lives in `slr/atomic.py`, where `slr/data` can use it too
(data must not import engine)."""

from slr.atomic import (
    TEMP_TAG,
    WriteFailed,
    disk_full_reason,
    host_tag,
    raise_if_disk_full,
    removed_on_failure,
    temporary_name,
    write_atomically,
)

__all__ = ["TEMP_TAG", "WriteFailed", "disk_full_reason", "host_tag", "raise_if_disk_full", "removed_on_failure",
           "temporary_name", "write_atomically"]
