"""Atomic writes for the engine: the helper lives in `slr/atomic.py`, where `slr/data` can use it too
(data must not import engine)."""

from slr.atomic import write_atomically

__all__ = ["write_atomically"]
