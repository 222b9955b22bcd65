"""Which keypoint layout a command reads clips with, and where that came from.

In order: the file named by ``--keypoint-layout``; a ``layout.json`` beside the clips (in their folder
or its parent, as `slr import` writes it); else what the width says (slr/data/augment.py). The run's
header and `slr validate` say which and from where; a width that no layout explains, with nothing
declared, gets one line on what the run loses and how to declare it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from slr.data.augment import clip_layout
from slr.data.layout_file import LAYOUT_FILE_NAME, declaration_points, find_layout_file, read_layout_file
from slr.errors import setting


@dataclass(frozen=True)
class LayoutChoice:
    declared: Optional[dict[str, Any]]  # None: known from the width, or not at all
    path: Optional[Path]  # the declaring file
    given: bool  # named by --keypoint-layout (else found beside the clips)


def choose_layout(directory: Path, given: Optional[Path]) -> LayoutChoice:
    """The declaration to read ``directory``'s clips with: ``given``, else a layout.json found beside them."""
    if given is not None:
        return LayoutChoice(read_layout_file(Path(given)), Path(given), True)
    found = find_layout_file(Path(directory))
    if found is None:
        return LayoutChoice(None, None, False)
    return LayoutChoice(read_layout_file(found), found, False)


def check_fits(choice: LayoutChoice, width: int) -> None:
    """A DataError naming the declaring file when it does not fit clips ``width`` values wide."""
    if choice.declared is not None:
        declaration_points(choice.declared, width, choice.path or "")


def describe(choice: LayoutChoice, width: int) -> str:
    """One line: the layout used and where it comes from."""
    layout = clip_layout(width, choice.declared)
    name = layout.name if layout is not None else "none"
    if choice.path is not None:
        origin = setting("keypoint_layout") if choice.given else f"found beside the clips"
        return f"keypoint layout {name} from {choice.path} ({origin})"
    if layout is None or _unknown(name):
        return f"keypoint layout: none known for {width} values per frame"
    return f"keypoint layout {name} (known from the width, {width})"


def loss_notice(choice: LayoutChoice, width: int) -> Optional[str]:
    """What a run loses on clips whose width no layout explains and that declare none; None otherwise."""
    if choice.declared is not None:
        return None
    layout = clip_layout(width, None)
    if layout is not None and not _unknown(layout.name):
        return None
    return (f"keypoints of {width} values per frame match no layout slr knows, and none is declared: no "
            f"shoulder-centred normalisation (clips are centred on their detected points), no left/right mirror "
            f"that swaps sides, no hands for {setting('hand_drop_prob')} or {setting('hand_centred')}. Declare the "
            f"points in a {LAYOUT_FILE_NAME} beside the clips or with {setting('keypoint_layout')} FILE "
            f"(docs/data-format.md); `slr import` writes one")


def _unknown(name: str) -> bool:
    return name.startswith("points-")  # slr.data.augment's name for (x, y) pairs of unknown meaning
