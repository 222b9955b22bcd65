"""State-dict keys as saved by wrapped models, read back into plain ones."""

from __future__ import annotations

from typing import Mapping, TypeVar

#: DataParallel / DistributedDataParallel (`module.`) and torch.compile (`_orig_mod.`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

V = TypeVar("V")


def strip_wrapper_prefixes(key: str) -> str:
    """`module._orig_mod.encoder.w` -> `encoder.w`: wrapper prefixes in any order or number."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def unwrapped_keys(state: Mapping[str, V]) -> dict[str, V]:
    return {strip_wrapper_prefixes(key): value for key, value in state.items()}
