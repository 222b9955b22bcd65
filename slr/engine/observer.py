"""What a training run tells whoever watches it, in the manner of Lightning Fabric's callbacks.

The trainer and the run call these methods; they never print. The command line hands in
``slr.ui.training_view.TrainingView`` (bars, tables, a memory panel); library users and tests may
hand in anything with these methods, or nothing (``SilentObserver``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol


class TrainingObserver(Protocol):
    def start(self, total_epochs: int, done_epochs: int) -> None: ...

    def close(self) -> None: ...

    def note(self, text: str) -> None:
        """Something worth a line: the run header, a checkpoint written, an early stop."""

    def notice(self, text: str) -> None:
        """A warning the user should see (an option that does nothing here, a data problem)."""

    def epoch_start(self, epoch: int, total_epochs: int, steps: int, done_steps: int) -> None: ...

    def step(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None: ...

    @property
    def wants_memory(self) -> bool:
        """True when a memory snapshot is due (it costs a device query)."""

    def memory(self, snapshot: Any) -> None: ...

    def epoch_end(self, row: Mapping[str, Any], total_epochs: int, improved: bool, snapshot: Any) -> None: ...


class SilentObserver:
    """Watches nothing: the default for library use, and for ranks other than 0."""

    wants_memory = False

    def start(self, total_epochs: int, done_epochs: int) -> None:
        pass

    def close(self) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def epoch_start(self, epoch: int, total_epochs: int, steps: int, done_steps: int) -> None:
        pass

    def step(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None:
        pass

    def memory(self, snapshot: Any) -> None:
        pass

    def epoch_end(self, row: Mapping[str, Any], total_epochs: int, improved: bool, snapshot: Any) -> None:
        pass
