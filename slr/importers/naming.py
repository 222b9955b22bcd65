"""A sequence's clip name, sign and folder groups, from where it lies under the source given.

The rule (docs/own-landmarks.md): with `--name-pattern`, the sign is the pattern's group in the
sequence's name; else a sequence inside a folder of the source takes that folder's name as its sign
(`SRC/<sign>/<sequence>`), and one directly in the source is its own sign (`SRC/<sign>.pose`).
The folders between the source and the sequence are its `folder` group; its name is its `sequence`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

from slr.importers.sequence import SourceSequence

_UNSAFE = re.compile(r"[\x00-\x1f/\\]")


def clip_name(parts: list[str]) -> str:
    """Path parts joined by `_`, with no separators or control characters left in the name."""
    return _UNSAFE.sub("-", "_".join(parts)) or "clip"


def named_sequence(item: Path, root: Path, pattern: Optional[re.Pattern[str]],
                   video: Optional[str] = None) -> SourceSequence:
    """The SourceSequence of `item` (a file or a folder of frames) found under the source `root`;
    `video`: one video's frames in the folder `item`, which holds several (named as if a file in it)."""
    if video is not None:
        sequence = named_sequence(item / video, root, pattern)
        return replace(sequence, path=item, video=video)
    name = item.stem if item.is_file() else item.name
    try:
        inner = item.relative_to(root) if root != item else Path(item.name)
    except ValueError:
        inner = Path(item.name)
    parts = list(inner.parts[:-1]) + [name]
    folder = inner.parent.as_posix()
    if pattern is not None:
        from slr.extract.labels import name_in

        sign = name_in(name, pattern)
    elif folder != ".":
        sign = item.parent.name
    else:
        sign = name
    groups = [("sequence", name)] + ([("folder", folder)] if folder != "." else [])
    return SourceSequence(item, clip_name(parts), sign, tuple(groups))


def shortest_names(sequences: list[SourceSequence]) -> list[SourceSequence]:
    """Each clip named by its sequence alone (`gebaerden`), or with as many of its folders in front as
    it takes to tell it from another of the same name (`signer1_hello`, `signer2_hello`)."""
    levels = [len(dict(s.groups).get("folder", ".").split("/")) if "folder" in dict(s.groups) else 0
              for s in sequences]
    depth = [0] * len(sequences)
    while True:
        names = [clip_name(_tail(s, d)) for s, d in zip(sequences, depth)]
        counts: dict[str, int] = {}
        for n in names:
            counts[n.casefold()] = counts.get(n.casefold(), 0) + 1
        clashing = [i for i, n in enumerate(names) if counts[n.casefold()] > 1 and depth[i] < levels[i]]
        if not clashing:
            return [replace(s, clip=n) for s, n in zip(sequences, names)]
        for i in clashing:
            depth[i] += 1


def _tail(sequence: SourceSequence, depth: int) -> list[str]:
    groups = dict(sequence.groups)
    folders = groups["folder"].split("/") if "folder" in groups else []
    return (folders[len(folders) - depth:] if depth else []) + [groups["sequence"]]
