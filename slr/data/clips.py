"""Reading clip files: one `.npz` per clip holding a 2-D float array `[T, D]` under a key.

Two readers share the same rules: `inspect_clip` collects every problem of a file for
`slr validate`, and `read_clip` returns the array or raises `DataError` for the dataset.
Arrays are always loaded with `allow_pickle=False`: an object array is refused before anything
in it is unpickled. numpy only (no torch), so `slr validate` starts fast.
"""

from __future__ import annotations

import collections
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np

from slr.errors import DataError
from slr.data.problems import Problem

T = TypeVar("T")
R = TypeVar("R")

NPZ_SUFFIX = ".npz"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class ArraySpec:
    """An array a clip carries: `key` (or `fallback_key` when the clip lacks `key`), `[T, width]`.

    `width=None` means: the most common width in the directory. `required=False` checks the
    array only where a clip has it.
    """

    key: str
    fallback_key: Optional[str] = None
    width: Optional[int] = None
    required: bool = True


class ClipProblem(Exception):
    """A problem that stops one array from being read; becomes a `Problem` or a `DataError`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class ClipInspection:
    """What `inspect_clip` found in one file: the arrays it could read (by spec key) and problems."""

    file: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def clip_stem(name: str) -> str:
    """A clip's name as labels.csv uses it: the file name with any `.npz` removed."""
    name = name.strip()
    return name[: -len(NPZ_SUFFIX)] if name.lower().endswith(NPZ_SUFFIX) else name


def list_clip_files(directory: Path) -> list[Path]:
    """The `.npz` files directly in `directory`, sorted by name (subdirectories are not searched)."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix.lower() == NPZ_SUFFIX and p.is_file())


def most_common_width(widths: Iterable[int]) -> Optional[int]:
    """The width most clips share (ties go to the smaller width, so the choice is stable)."""
    counts = collections.Counter(widths)
    if not counts:
        return None
    return min(counts, key=lambda w: (-counts[w], w))


def map_files(read: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`read` over many clip files, in order, in this thread.

    Not in a thread pool: numpy parses .npy headers with `ast.literal_eval`, which is not
    thread-safe on CPython 3.11 ("AST constructor recursion depth mismatch", gh-106905), and
    threads gave no measurable speed-up on this project's 2-core machine anyway.
    """
    return [read(item) for item in items]


def _open_archive(path: Path) -> "np.lib.npyio.NpzFile":
    """Open an npz, telling apart the usual ways a file is not one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise ClipProblem("unreadable", f"cannot open ({exc.strerror or exc})") from None
    if not head:
        raise ClipProblem("unreadable", "empty file (0 bytes)")
    if head.startswith(_NPY_MAGIC):
        raise ClipProblem("unreadable", "a single .npy array, not an .npz archive of named arrays")
    if not head.startswith(_ZIP_MAGIC):
        raise ClipProblem("unreadable", "not an .npz archive (the file does not start like a zip archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated or damaged zip: zipfile, zlib and numpy raise many kinds
        raise ClipProblem("unreadable", f"corrupt or truncated archive ({_describe(exc)})") from None
    return archive


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "error":  # zlib.error and friends: the module says what failed
        name = f"{type(exc).__module__}.error"
    text = str(exc).strip()
    return f"{name}: {text}" if text else name


def _read_array(archive: "np.lib.npyio.NpzFile", spec: ArraySpec) -> tuple[str, np.ndarray] | None:
    """The array under spec.key (or its fallback), checked for dtype, rank and T > 0.

    Returns None when the clip has neither key and the spec is optional.
    """
    keys = list(archive.files)
    key = spec.key if spec.key in keys else spec.fallback_key if spec.fallback_key in keys else None
    if key is None:
        if not spec.required:
            return None
        wanted = repr(spec.key) + (f" or {spec.fallback_key!r}" if spec.fallback_key else "")
        present = ", ".join(keys) if keys else "none"
        raise ClipProblem("missing_key", f"no key {wanted} (keys in the file: {present})")
    try:
        array = archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy refuses object arrays before unpickling them
            raise ClipProblem(
                "object_array", f"{key!r} is an object array; refused (it would need unpickling)"
            ) from None
        raise ClipProblem("unreadable", f"cannot read {key!r} ({_describe(exc)})") from None
    except Exception as exc:  # a damaged member: bad CRC, zlib error, short read
        raise ClipProblem("unreadable", f"cannot read {key!r} ({_describe(exc)})") from None
    if array.dtype.kind not in "iuf":
        raise ClipProblem("bad_dtype", f"{key!r} has dtype {array.dtype}, expected numbers (float or int)")
    if array.ndim != 2:
        raise ClipProblem("bad_shape", f"{key!r} has shape {list(array.shape)}, expected [T, D]")
    if array.shape[0] == 0:
        raise ClipProblem("empty_clip", f"{key!r} has no frames (shape {list(array.shape)})")
    return key, array


def _content_problems(key: str, array: np.ndarray, max_zero_frames: float) -> list[tuple[str, str]]:
    found = []
    if array.dtype.kind == "f":
        bad_frames = int((~np.isfinite(array)).any(axis=1).sum())
        if bad_frames:
            found.append(("non_finite", f"{key!r} has NaN or infinite values in {bad_frames} of {len(array)} frames"))
    zero_frames = int((array == 0).all(axis=1).sum())
    if zero_frames / len(array) > max_zero_frames:
        found.append(
            (
                "zero_frames",
                f"{key!r}: {zero_frames} of {len(array)} frames are all zero (nothing detected), "
                f"above the {max_zero_frames:.0%} allowed",
            )
        )
    return found


def inspect_clip(path: Path, specs: list[ArraySpec], max_zero_frames: float = 0.5) -> ClipInspection:
    """Every problem of one clip file; widths are checked later, against the whole directory."""
    report = ClipInspection(file=path.name)
    try:
        archive = _open_archive(path)
    except ClipProblem as problem:
        report.problems.append(Problem(problem.kind, path.name, problem.message))
        return report
    with archive:
        for spec in specs:
            try:
                found = _read_array(archive, spec)
            except ClipProblem as problem:
                report.problems.append(Problem(problem.kind, path.name, problem.message))
                continue
            if found is None:
                continue
            key, array = found
            report.arrays[spec.key] = array
            for kind, message in _content_problems(key, array, max_zero_frames):
                report.problems.append(Problem(kind, path.name, message))
    return report


def read_clip(path: Path, key: str, fallback_key: Optional[str] = None, width: Optional[int] = None) -> np.ndarray:
    """The clip's `[T, D]` array as float32, or `DataError` naming the file and the problem."""
    spec = ArraySpec(key, fallback_key, width)
    try:
        with _open_archive(path) as archive:
            found = _read_array(archive, spec)
    except ClipProblem as problem:
        raise DataError(problem.message, path) from None
    assert found is not None  # required specs either return an array or raise
    used_key, array = found
    if width is not None and array.shape[1] != width:
        raise DataError(f"{used_key!r} has width {array.shape[1]}, expected {width}", path)
    return np.asarray(array, dtype=np.float32)


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_clip_width(path: Path, key: str, fallback_key: Optional[str] = None) -> int:
    """The width D of a clip's `[T, D]` array, from the array's header alone (no data is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            member = next((k + ".npy" for k in (key, fallback_key) if k and k + ".npy" in names), None)
            if member is None:
                raise DataError(f"no key {key!r}" + (f" or {fallback_key!r}" if fallback_key else ""), path)
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                reader = _HEADER_READERS.get(version)
                if reader is None:  # a newer header format: read the array itself
                    return read_clip(path, key, fallback_key).shape[1]
                shape = reader(handle)[0]
    except DataError:
        raise
    except Exception as exc:  # not a zip, damaged header: same message as a full read would give
        raise DataError(f"cannot read ({_describe(exc)})", path) from None
    if len(shape) != 2:
        raise DataError(f"{member[:-4]!r} has shape {list(shape)}, expected [T, D]", path)
    return int(shape[1])
