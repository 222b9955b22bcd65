"""Bounds on what one clip file may make slr allocate, checked before its arrays are read.

An `.npz` is a zip archive of `.npy` members. Each member starts with a small header giving the
array's shape and dtype, so the size of an array is known before a byte of its data is read
(or decompressed): a 2 MB archive of zeros can declare 2 GB, and a clip of 100,000 frames makes
the transformer's attention ask for hundreds of GB. Such arrays are refused, naming the clip,
the limit and the setting that raises it (`max_clip_frames`, `max_clip_mb`, in
`slr.settings.ClipLimitSettings`, where the defaults live).

Values are bounded too: beyond ±1.8e19 (the square root of float32's largest value) a value's
square is infinite in float32, and squares are what normalisation (the shoulder width, the
spread of the points) and the models' layer norms compute. Such a clip is refused up front, so a
non-finite loss can never come from it; `batch_value_note` says when a batch's values are large
enough to explain a non-finite loss anyway (e.g. un-normalised inputs under float16).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import numpy.lib.format as npy_format

from slr.errors import setting

if TYPE_CHECKING:
    from slr.settings import ClipLimitSettings

_MB = 1 << 20
#: Larger magnitudes square to infinity in float32.
LARGEST_USABLE_VALUE = math.sqrt(float(np.finfo(np.float32).max))
#: A batch value beyond this is far outside normalised keypoints (about ±3), image coordinates
#: (0..1), pixel coordinates (up to ~8000) and InceptionV3 features (0..~20); float16 (AMP) ends at 65504.
_IMPLAUSIBLE_VALUE = 1e4
#: Bytes a member may declare beyond its array's data: the .npy header and its padding.
_HEADER_ALLOWANCE = 1 << 16


@dataclass(frozen=True)
class ClipLimits:
    """The largest clip array accepted: `max_frames` rows, `max_bytes` bytes as stored."""

    max_frames: int
    max_bytes: int


def clip_limits(settings: Optional["ClipLimitSettings"] = None) -> ClipLimits:
    """The limits of a settings model holding `ClipLimitSettings` (train, validate, evaluate,
    predict), or the defaults."""
    if settings is None:
        from slr.settings import ClipLimitSettings

        settings = ClipLimitSettings()
    return ClipLimits(max_frames=int(settings.max_clip_frames), max_bytes=int(settings.max_clip_mb) * _MB)


def _read_header(handle: Any) -> Optional[tuple[tuple[int, ...], bool, np.dtype]]:
    """Shape, Fortran order and dtype from an .npy header, or None when it cannot be parsed (numpy's
    reader then says why)."""
    try:
        version = npy_format.read_magic(handle)
        reader = getattr(npy_format, "_read_array_header", None)
        if reader is not None:  # every header version numpy reads, 3.0 included
            shape, fortran_order, dtype = reader(handle, version)
        elif version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(handle)
        else:
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(handle)
    except Exception:  # not an .npy member, a damaged or crafted header
        return None
    return tuple(int(n) for n in shape), bool(fortran_order), np.dtype(dtype)


def _megabytes(n: int) -> str:
    mb = n / _MB
    return f"{mb:,.0f} MB" if mb >= 10 else f"{mb:.1f} MB" if mb >= 0.1 else f"{mb:.2f} MB"


class TooLarge(Exception):
    """An array refused for its size, before its data was read; the message names key and limit."""


def read_bounded(archive: zipfile.ZipFile, member: str, key: str, limits: ClipLimits) -> Optional[np.ndarray]:
    """The numeric array in `member` (the zip entry of `key`), read only once its sizes are known
    to be within `limits`; raises `TooLarge` otherwise.

    Checked, in order: the size the zip declares for the entry (what decompressing it would
    produce), then the frames and the bytes the .npy header declares, and only then is the data
    read (from the same open entry: the header is parsed once). Returns None where numpy's own
    reader should say what is wrong or refuse: a header that cannot be parsed, a dtype that is
    not a plain number (objects are refused there without unpickling). Errors of the data
    itself (bad CRC, zlib, a short entry) are raised as they are.
    """
    info = archive.getinfo(member)
    mb_limit = f"{setting('max_clip_mb')} ({_megabytes(limits.max_bytes)})"
    if info.file_size > limits.max_bytes + _HEADER_ALLOWANCE:
        raise TooLarge(
            f"{key!r} would decompress to {_megabytes(info.file_size)} ({_megabytes(info.compress_size)} in the archive), "
            f"more than {mb_limit} allows; refused before reading it"
        )
    with archive.open(member) as handle:
        header = _read_header(handle)
        if header is None:
            return None
        shape, fortran_order, dtype = header
        if len(shape) >= 1 and shape[0] > limits.max_frames:
            raise TooLarge(
                f"{key!r} has {shape[0]:,} frames (shape {list(shape)}), more than {setting('max_clip_frames')} "
                f"({limits.max_frames:,}) allows; refused before reading it"
            )
        if dtype.hasobject or dtype.kind not in "iuf":
            return None
        count = math.prod(shape)
        size = count * dtype.itemsize
        if size > limits.max_bytes:
            raise TooLarge(
                f"{key!r} would take {_megabytes(size)} in memory (shape {list(shape)}, {dtype}), more than "
                f"{mb_limit} allows; refused before reading it"
            )
        data = handle.read(size)
    if len(data) != size:  # numpy's wording for the same short read
        raise ValueError(f"EOF: reading array data, expected {size} bytes got {len(data)}")
    array = np.frombuffer(bytearray(data), dtype=dtype, count=count)  # writable, as np.load's arrays are
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def huge_value_message(key: str, array: np.ndarray) -> Optional[str]:
    """Why a finite float32 `[T, D]` array cannot be trained on because of the size of its values, else None."""
    if array.size == 0:
        return None
    largest = max(abs(float(array.max())), abs(float(array.min())))
    if not largest > LARGEST_USABLE_VALUE:  # also False for NaN: reported as non-finite elsewhere
        return None
    with np.errstate(invalid="ignore"):
        frames = int((np.abs(array) > LARGEST_USABLE_VALUE).any(axis=1).sum())
    return (
        f"{key!r} has values up to {largest:.1e} in {frames} of {len(array)} frames: beyond "
        f"±{LARGEST_USABLE_VALUE:.1e} a value's square overflows float32 (in normalisation and in the "
        "model), so the clip cannot be trained on; rescale it"
    )


def batch_value_note(x: Any, names: Sequence[str] = ()) -> Optional[str]:
    """For a non-finite loss: a sentence blaming the data when the batch's inputs are implausibly
    large (or not finite), else None (then the cause is elsewhere: the learning rate, AMP).

    `x`: the batch's inputs (a tensor or array, padding included: it is zeros); `names`: the
    clips in the batch, for the message (the first three are named).
    """
    values = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
    if values.size == 0:
        return None
    finite = np.isfinite(values)
    clips = f" (clips {', '.join(list(names)[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
    if not finite.all():
        return f"the batch's inputs hold NaN or infinite values{clips}: the loss came from the data"
    largest = float(np.abs(values).max())
    if largest <= _IMPLAUSIBLE_VALUE:
        return None
    return (
        f"the batch's inputs reach {largest:.1e}{clips}, far beyond normalised keypoints or CNN features: "
        "the non-finite loss most likely comes from the data; rescale the clips (or keep normalisation on)"
    )
