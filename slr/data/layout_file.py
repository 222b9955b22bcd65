"""A keypoint layout declared in a small JSON file (`--keypoint-layout FILE`), for clips whose
layout slr cannot recognise from their width alone.

slr knows the 156-wide MediaPipe Holistic layout, the hands-only 84 / 126 and one-hand 42 / 63
layouts (slr/data/augment.py). Any other width is read as (x, y) pairs of unknown meaning: a
mirror flips x without swapping left and right, and there are no hands to drop or centre. A file
like this one says what the points are (docs/data-format.md):

    {
      "dims": 2,
      "mirror_pairs": [[1, 4], [2, 5], [11, 12]],
      "hands": [[33, 54], [54, 75]],
      "shoulders": [11, 12]
    }

- ``dims``: coordinates per point, 2 (x, y) or 3 (x, y, z); x first (a mirror flips it);
- ``points`` (optional): points per frame; it must agree with the clips' width / dims;
- ``mirror_pairs`` (optional): point pairs (0-based) that a left/right mirror swaps;
- ``hands`` (optional): each hand's points as a [start, stop) range, 21 points in MediaPipe's hand
  order (wrist first), left hand first; used by ``--hand-drop-prob`` and ``--hand-centred``, and
  a mirror swaps two hands;
- ``shoulders`` (optional): the left and right shoulder points; ``--normalize`` centres on their
  midpoint and scales by their distance (without them: on the detected points);
- ``name`` (optional): shown in the run's header, and kept for people reading the checkpoint;
- ``point_names`` (optional): each point's name, as `slr import` writes them (``pose.NOSE``).

A file named ``layout.json`` in the clips' folder (or its parent) is used without the flag
(`find_layout_file`); ``--keypoint-layout`` still overrides it.

A run reads the file once and stores the declaration in its checkpoints (``keypoint_layout``), so
evaluate, predict and export read the clips as training did without the file; a resumed run reads
the file again and is refused if it no longer says the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slr.errors import DataError, setting

HAND_POINTS = 21  # MediaPipe's hand: wrist 0, middle-finger knuckle 9 (hand-centred uses both)
_KEYS = ("name", "dims", "points", "point_names", "mirror_pairs", "hands", "shoulders")
#: The declaration slr finds beside clips (what `slr import` writes).
LAYOUT_FILE_NAME = "layout.json"


def read_layout_file(path: Path) -> dict[str, Any]:
    """The declaration in ``path``, checked on its own and returned as plain JSON values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{setting('keypoint_layout')}: layout file not found" if not path.exists()
                        else f"{setting('keypoint_layout')}: not a file", path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError("layout file is not UTF-8 text", path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"layout file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                        path) from None
    return check_declaration(raw, path)


def check_declaration(raw: Any, source: Path | str) -> dict[str, Any]:
    """The declaration, or a DataError naming ``source`` and the first thing wrong with it."""

    def bad(message: str) -> DataError:
        if isinstance(source, Path):
            return DataError(f"layout file: {message}", source)
        return DataError(f"{source}: keypoint layout: {message}")

    if not isinstance(raw, dict):
        raise bad(f"expected a JSON object ({{\"dims\": 2, ...}}), not {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_KEYS)}")
    dims = raw.get("dims")
    if dims not in (2, 3) or isinstance(dims, bool):
        raise bad(f"'dims' must be 2 (x, y) or 3 (x, y, z), not {dims!r}")
    points = raw.get("points")
    if points is not None and not (_is_index(points) and points >= 1):
        raise bad(f"'points' must be a positive integer, not {points!r}")
    pairs = _index_lists(raw.get("mirror_pairs", []), "mirror_pairs", 2, bad)
    hands = _index_lists(raw.get("hands", []), "hands", 2, bad)
    shoulders = raw.get("shoulders")
    if shoulders is not None:
        shoulders = _index_lists([shoulders], "shoulders", 2, bad)[0]
        if shoulders[0] == shoulders[1]:
            raise bad(f"'shoulders' names point {shoulders[0]} twice")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise bad(f"'name' must be a string, not {name!r}")
    point_names = raw.get("point_names")
    if point_names is not None:
        if not (isinstance(point_names, list) and all(isinstance(n, str) for n in point_names)):
            raise bad("'point_names' must be a list of strings")
        if points is not None and len(point_names) != points:
            raise bad(f"'point_names' names {len(point_names)} points, but 'points' is {points}")
        if points is None:
            points = len(point_names)

    paired: set[int] = set()
    for a, b in pairs:
        if a == b:
            raise bad(f"'mirror_pairs' pairs point {a} with itself")
        for p in (a, b):
            if p in paired:
                raise bad(f"'mirror_pairs': point {p} is in two pairs")
            paired.add(p)
    if len(hands) > 2:
        raise bad(f"'hands' declares {len(hands)} hands; at most 2 (left, then right)")
    taken: set[int] = set()
    for start, stop in hands:
        if stop - start != HAND_POINTS:
            raise bad(f"'hands' range [{start}, {stop}) holds {stop - start} points; a hand is {HAND_POINTS} "
                      "points in MediaPipe's order (wrist first)")
        span = set(range(start, stop))
        if span & taken:
            raise bad("'hands' ranges overlap")
        taken |= span
    if len(hands) == 2 and taken & paired:
        point = min(taken & paired)
        raise bad(f"'mirror_pairs' names point {point} of a hand; a mirror already swaps the two hands")
    declared = {"dims": dims, "mirror_pairs": pairs, "hands": hands}
    for key, value in (("points", points), ("shoulders", shoulders), ("name", name), ("point_names", point_names)):
        if value is not None:
            declared[key] = value
    return declared


def declaration_points(declared: dict[str, Any], width: int, source: Path | str) -> int:
    """Points per frame of clips ``width`` values wide, checked against every index declared."""
    dims = declared["dims"]
    where = f"{source}: " if source else ""
    if width % dims:
        raise DataError(f"{where}keypoint layout of {dims} coordinates per point does not fit clips of {width} "
                        f"values per frame")
    points = width // dims
    if declared.get("points", points) != points:
        raise DataError(f"{where}keypoint layout declares {declared['points']} points of {dims} coordinates, but the "
                        f"clips have {width} values per frame ({points} points)")
    indices = [p for pair in declared["mirror_pairs"] for p in pair] + list(declared.get("shoulders") or [])
    indices += [p for start, stop in declared["hands"] for p in (start, stop - 1)]
    beyond = [p for p in indices if p >= points]
    if beyond:
        raise DataError(f"{where}keypoint layout names point {max(beyond)}, but the clips have {points} points "
                        f"(0 to {points - 1})")
    return points


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_lists(value: Any, key: str, size: int, bad) -> list[list[int]]:
    if not isinstance(value, list):
        raise bad(f"'{key}' must be a list of [a, b] pairs, not {value!r}")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == size and all(_is_index(v) and v >= 0 for v in item)):
            raise bad(f"'{key}': {item!r} is not a pair of point indices (0 or more)")
        out.append([int(v) for v in item])
    if key == "hands":
        for start, stop in out:
            if stop <= start:
                raise bad(f"'hands': [{start}, {stop}) is empty; a hand is [start, stop)")
    return out


def find_layout_file(directory: Path) -> Path | None:
    """The layout declaration beside the clips of ``directory``: its layout.json, else its parent's."""
    directory = Path(directory)
    for folder in (directory, directory.parent):
        candidate = folder / LAYOUT_FILE_NAME
        if candidate.is_file():
            return candidate
    return None
