"""MediaPipe npy folders: `ROOT/<sign>/<sequence>/<frame>.npy`, one flat array per frame (the layout of
many MediaPipe tutorials, e.g. "MP_Data").

A frame is 1,662 values: pose 33 x (x, y, z, visibility), face 468 x (x, y, z), left hand 21 x
(x, y, z), right hand 21 x (x, y, z); 1,692 with the refined face (478 points); or 258 without the
face. A part that was not detected is all zeros. Frames are ordered by the number in their name
(`10.npy` after `9.npy`, not after `1.npy`). The sign is the sequence folder's parent folder.

Some tutorials save a whole sequence as one array `[T, 1662]` instead (`ROOT/<sign>/<sequence>.npy`):
a folder whose first .npy is 2-D is read that way, each file a sequence of the folder's sign.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from slr.importers.sequence import BadSource, Sequence, SourceSequence, part_array

#: Values per frame -> (parts in order with their points and stored coordinates).
LAYOUTS = {
    1662: (("pose", 33, 4), ("face", 468, 3), ("left_hand", 21, 3), ("right_hand", 21, 3)),
    1692: (("pose", 33, 4), ("face", 478, 3), ("left_hand", 21, 3), ("right_hand", 21, 3)),
    258: (("pose", 33, 4), ("left_hand", 21, 3), ("right_hand", 21, 3)),
}
_NUMBER = re.compile(r"-?\d+")


def frame_order(path: Path) -> tuple:
    """Numeric order of frame files: the last number in the name, then the name itself."""
    numbers = _NUMBER.findall(path.stem)
    return (0, int(numbers[-1]), path.name) if numbers else (1, 0, path.name)


def _shape(path: Path) -> Optional[tuple[int, ...]]:
    """An .npy file's shape from its header alone; None when it is not a readable .npy."""
    try:
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)  # maps, reads nothing
    except Exception:
        return None


def _is_whole_sequence(path: Path) -> bool:
    shape = _shape(path)
    return shape is not None and len(shape) == 2 and shape[1] in LAYOUTS


def read_sequence(path: Path) -> Sequence:
    if path.is_file():  # one array [T, values] holds the whole sequence
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise BadSource(f"unreadable .npy ({type(exc).__name__}: {exc})", path) from None
        if data.ndim != 2 or data.shape[1] not in LAYOUTS or not np.issubdtype(data.dtype, np.number):
            raise BadSource(f"an array {tuple(data.shape)}; a sequence is [frames, 1662 / 1692 / 258]", path)
        if not len(data):
            raise BadSource("no frames (an array of 0 rows)", path)
        return _sequence(data.astype(np.float32))
    files = sorted(path.glob("*.npy"), key=frame_order)
    if not files:
        raise BadSource("no frames (no .npy files in the sequence folder)", path)
    values = []
    for file in files:
        try:
            array = np.load(file, allow_pickle=False)
        except Exception as exc:  # truncated, not an .npy, an object array
            raise BadSource(f"unreadable .npy frame ({type(exc).__name__}: {exc})", file) from None
        if array.size not in LAYOUTS or not np.issubdtype(array.dtype, np.number):
            raise BadSource(f"a frame of {array.size} value(s) {tuple(array.shape)}; MediaPipe frames are "
                            f"{', '.join(map(str, sorted(LAYOUTS, reverse=True)))} values (pose, face, hands; "
                            f"258 without the face)", file)
        if values and array.size != values[0].size:
            raise BadSource(f"a frame of {array.size} values after frames of {values[0].size}", file)
        values.append(array.reshape(-1).astype(np.float32))
    return _sequence(np.stack(values))


def _sequence(data: np.ndarray) -> Sequence:
    """The parts of [T, values] MediaPipe frames."""
    frames = len(data)
    parts, at = {}, 0
    for part, points, coords in LAYOUTS[data.shape[1]]:
        block = data[:, at:at + points * coords].reshape(frames, points, coords)[..., :3].copy()
        at += points * coords
        block[(block == 0).all(axis=-1)] = np.nan  # MediaPipe writes an undetected part as zeros
        block[~np.isfinite(block).all(axis=-1)] = np.nan
        parts[part] = block
    if "face" not in parts:
        parts["face"] = part_array(frames, 468)
    return Sequence(parts, frames, version=f"{data.shape[1]} values per frame",
                    coordinates="MediaPipe image-normalised x, y (as stored; may lie outside [0, 1]); z MediaPipe "
                                "relative depth; pose visibility dropped",
                    notes={"face_in_source": data.shape[1] != 258})


def find_sequences(sources: list[Path]) -> tuple[list[SourceSequence], list[tuple[Path, str]]]:
    """Sequence folders (folders holding .npy frames) and, as problems, empty folders beside them."""
    folders: set[Path] = set()
    for source in sources:
        if source.is_dir():
            folders |= {p.parent for p in source.rglob("*.npy")}
        elif source.suffix.lower() == ".npy":
            folders.add(source.parent)
    problems = []
    for sign in sorted({f.parent for f in folders}):
        for sibling in sorted(p for p in sign.iterdir() if p.is_dir() and p not in folders):
            if not any(sibling.rglob("*.npy")):
                problems.append((sibling, "no frames (no .npy files in the sequence folder)"))
    found = []
    for folder in sorted(folders):
        files = sorted(folder.glob("*.npy"), key=frame_order)
        if files and _is_whole_sequence(files[0]):  # ROOT/<sign>/<sequence>.npy
            found += [SourceSequence(f, _clip_name(folder.name, f.stem), folder.name, (("sequence", f.stem),))
                      for f in files]
        else:  # ROOT/<sign>/<sequence>/<frame>.npy
            found.append(SourceSequence(folder, _clip_name(folder.parent.name, folder.name), folder.parent.name,
                                        (("sequence", folder.name),)))
    return found, problems


def _clip_name(sign: str, sequence: str) -> str:
    return f"{sign}_{sequence}"
