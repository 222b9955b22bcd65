"""Reading clip files: one `.npz` per clip holding a 2-D float array `[T, D]` under a key.

Two readers share the same rules: `inspect_clip` collects every problem of a file for
`slr validate`, and `read_clip` returns the array or raises `DataError` for everything else
(training, evaluation, prediction). Both check the array as training sees it, after the cast to
float32: a float64 value beyond float32's range is finite on disk but infinite in the model.
Arrays are always loaded with `allow_pickle=False`: an object array is refused before anything
in it is unpickled. An array larger than the `ClipLimits` (frames, bytes) is refused from its
header, before it is read (`slr.data.clip_limits`). numpy only (no torch), so `slr validate`
starts fast.
"""

from __future__ import annotations

import collections
import os
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np

from slr.errors import DataError
from slr.data.clip_limits import ClipLimits, TooLarge, clip_limits, huge_value_message, read_bounded
from slr.data.files import describe_non_file
from slr.data.problems import Problem

T = TypeVar("T")
R = TypeVar("R")

NPZ_SUFFIX = ".npz"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
#: Longest text quoted from an exception: a crafted .npy header can make numpy quote kilobytes.
_QUOTE_LIMIT = 200


#: A clip's array of its frames mirrored left to right sits under the array's own key plus this
#: (`X2048_mirror`): `slr extract` writes it for features, which cannot be flipped afterwards.
MIRROR_SUFFIX = "_mirror"


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


def name_text(name: str) -> str:
    """A file name as text spelled as labels.csv spells it: its bytes read as UTF-8, whatever the
    locale. Under LC_ALL=en_US.ISO-8859-1 Python reads `café.npz` from the folder as `cafÃ©.npz`
    while labels.csv (UTF-8) says `café`: compared as they come, the clip would be "missing". Bytes
    that are not UTF-8 stay as Python's surrogate escapes. The identity under a UTF-8 locale."""
    return os.fsencode(name).decode("utf-8", "surrogateescape")


def file_stem(path: Path) -> str:
    """The clip name a clip file answers to in labels.csv (`name_text` of its name, no `.npz`)."""
    return clip_stem(name_text(Path(path).name))


@dataclass(frozen=True)
class ClipListing:
    """The entries of a clip directory named like clips (`*.npz`, any case).

    `files`: the regular files (symbolic links to one included), sorted by name.
    `not_files`: entries named like a clip that are something else, with what they are
    ("a directory", "a broken symbolic link (to x)", ...), so that a labels row naming one is
    not told the clip "is not in" the directory.
    """

    files: list[Path]
    not_files: dict[Path, str]

    @cached_property
    def stems(self) -> set[str]:
        """Every clip name present, whether its entry is usable or not."""
        return {file_stem(p) for p in [*self.files, *self.not_files]}

    @cached_property
    def clashes(self) -> dict[str, list[Path]]:
        """Clip names that more than one file answers to (`a.npz` and `a.NPZ`): labels.csv can't tell them apart."""
        by_stem: dict[str, list[Path]] = collections.defaultdict(list)
        for path in self.files:
            by_stem[file_stem(path)].append(path)
        return {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}


def scan_clip_dir(directory: Path) -> ClipListing:
    """The `*.npz` entries directly in `directory` (subdirectories are not searched)."""
    files, not_files = [], {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() != NPZ_SUFFIX:
            continue
        if path.is_file():
            files.append(path)
        else:
            not_files[path] = describe_non_file(path)
    return ClipListing(files, not_files)


def list_clip_files(directory: Path) -> list[Path]:
    """The `.npz` files directly in `directory`, sorted by name (subdirectories are not searched)."""
    return scan_clip_dir(directory).files


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
    if not path.is_file():  # say what it is; and opening a FIFO would wait forever for a writer
        raise ClipProblem("unreadable", f"is {describe_non_file(path)}, not a clip file")
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
    text = _shorten(str(exc).strip())
    return f"{name}: {text}" if text else name


def _shorten(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """`text`, cut to `limit` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def _load(archive: "np.lib.npyio.NpzFile", key: str, limits: ClipLimits) -> Any:
    """The array under `key`, read within `limits` (`ClipProblem` "too_large" beyond them).

    Numeric arrays are read by `read_bounded`, which checks the sizes first; anything it leaves
    (a header it cannot parse, a non-numeric dtype) goes through numpy's reader, whose errors
    the caller reports.
    """
    names = archive.zip.namelist()
    member = key + ".npy" if key + ".npy" in names else key
    try:
        array = read_bounded(archive.zip, member, key, limits)
    except TooLarge as problem:
        raise ClipProblem("too_large", str(problem)) from None
    return archive[key] if array is None else array


def _read_array(
    archive: "np.lib.npyio.NpzFile", spec: ArraySpec, limits: Optional[ClipLimits] = None
) -> tuple[str, np.ndarray] | None:
    """The array under spec.key (or its fallback), checked for size, dtype, rank, T > 0 and D > 0.

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
        array = _load(archive, key, limits or clip_limits())
    except ClipProblem:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy refuses object arrays before unpickling them
            raise ClipProblem(
                "object_array", f"{key!r} is an object array; refused (it would need unpickling)"
            ) from None
        raise ClipProblem("unreadable", f"cannot read {key!r} ({_describe(exc)})") from None
    except Exception as exc:  # a damaged member: bad CRC, zlib error, short read
        raise ClipProblem("unreadable", f"cannot read {key!r} ({_describe(exc)})") from None
    if not isinstance(array, np.ndarray):  # numpy hands back the raw bytes of a member without the .npy magic
        raise ClipProblem("unreadable", f"'{key}.npy' is not a .npy array (it does not start like one)")
    if array.dtype.kind not in "iuf":
        raise ClipProblem("bad_dtype", f"{key!r} has dtype {array.dtype}, expected numbers (float or int)")
    if array.ndim != 2:
        raise ClipProblem("bad_shape", f"{key!r} has shape {list(array.shape)}, expected [T, D]")
    if array.shape[0] == 0:
        raise ClipProblem("empty_clip", f"{key!r} has no frames (shape {list(array.shape)})")
    if array.shape[1] == 0:
        raise ClipProblem("zero_width", f"{key!r} has no values per frame (shape {list(array.shape)})")
    return key, array


def to_float32(array: np.ndarray) -> np.ndarray:
    """The array as training reads it. A value beyond float32's range becomes inf here, which
    `non_finite_message` then reports; numpy's overflow warning would only repeat that, unnamed."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(array, dtype=np.float32)


def non_finite_message(key: str, original: np.ndarray, as_float32: np.ndarray) -> Optional[str]:
    """Why the clip cannot be used if it has NaN or infinite values once read as float32, else None."""
    bad = int((~np.isfinite(as_float32)).any(axis=1).sum())
    if not bad:
        return None
    message = f"{key!r} has NaN or infinite values in {bad} of {len(as_float32)} frames"
    if original.dtype.kind == "f" and original.dtype != np.float32:
        overflow = bad - int((~np.isfinite(original)).any(axis=1).sum())
        if overflow:
            message += (
                f" ({overflow} of them only once read as float32, as slr reads clips: "
                f"values beyond ±{np.finfo(np.float32).max:.1e})"
            )
    return message


def _content_problems(key: str, original: np.ndarray, array: np.ndarray, max_zero_frames: float) -> list[tuple[str, str]]:
    """Problems in the values of `array` (the float32 copy of `original`, as training sees it)."""
    found = []
    non_finite = non_finite_message(key, original, array)
    if non_finite:
        found.append(("non_finite", non_finite))
    else:
        huge = huge_value_message(key, array)
        if huge:
            found.append(("huge_values", huge))
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


def inspect_clip(
    path: Path, specs: list[ArraySpec], max_zero_frames: float = 0.5, limits: Optional[ClipLimits] = None
) -> ClipInspection:
    """Every problem of one clip file; widths are checked later, against the whole directory.

    The arrays it keeps are the float32 copies training would use (none that is refused).
    """
    report = ClipInspection(file=path.name)
    try:
        archive = _open_archive(path)
    except ClipProblem as problem:
        report.problems.append(Problem(problem.kind, path.name, problem.message))
        return report
    with archive:
        for spec in specs:
            try:
                found = _read_array(archive, spec, limits)
            except ClipProblem as problem:
                report.problems.append(Problem(problem.kind, path.name, problem.message))
                continue
            if found is None:
                continue
            key, original = found
            array = to_float32(original)
            report.arrays[spec.key] = array
            for kind, message in _content_problems(key, original, array, max_zero_frames):
                report.problems.append(Problem(kind, path.name, message))
    return report


def read_clip(
    path: Path,
    key: str,
    fallback_key: Optional[str] = None,
    width: Optional[int] = None,
    limits: Optional[ClipLimits] = None,
) -> np.ndarray:
    """The clip's `[T, D]` array as float32, or `DataError` naming the file and the problem.

    The one way training, evaluation and prediction read a clip: besides the checks `slr
    validate` makes (within `limits`, readable, numeric, 2-D, T > 0, D > 0, the width when
    given) it refuses NaN and infinite values, counted after the cast to float32, and values
    whose squares overflow float32, so no model ever sees them.
    """
    array = _read_checked(path, ArraySpec(key, fallback_key, width), limits)
    assert array is not None  # required specs either return an array or raise
    return array


def read_optional_clip(path: Path, key: str, limits: Optional[ClipLimits] = None) -> Optional[np.ndarray]:
    """`read_clip` of an array a clip may lack (mirrored features): None where it has no `key`."""
    return _read_checked(path, ArraySpec(key, required=False), limits)


def _read_checked(path: Path, spec: ArraySpec, limits: Optional[ClipLimits]) -> Optional[np.ndarray]:
    try:
        with _open_archive(path) as archive:
            found = _read_array(archive, spec, limits)
    except ClipProblem as problem:
        raise DataError(problem.message, path) from None
    if found is None:  # an optional array the clip does not have
        return None
    used_key, array = found
    if spec.width is not None and array.shape[1] != spec.width:
        raise DataError(f"{used_key!r} has width {array.shape[1]}, expected {spec.width}", path)
    as_float32 = to_float32(array)
    non_finite = non_finite_message(used_key, array, as_float32)
    if non_finite:
        raise DataError(non_finite, path)
    huge = huge_value_message(used_key, as_float32)
    if huge:
        raise DataError(huge, path)
    return as_float32


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_clip_width(path: Path, key: str, fallback_key: Optional[str] = None) -> int:
    """The width D of a clip's `[T, D]` array, from the array's header alone (no data is read).

    A file whose header cannot be read this way is read in full by `read_clip`, so that a
    broken clip gets the same message here as anywhere else.
    """
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
    except Exception:  # not a zip, not a .npy member, damaged header: let the full read say what is wrong
        return read_clip(path, key, fallback_key).shape[1]
    if len(shape) != 2:
        raise DataError(f"{member[:-4]!r} has shape {list(shape)}, expected [T, D]", path)
    return int(shape[1])
