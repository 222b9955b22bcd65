"""pose-format `.pose` files (MediaPipe Holistic or OpenPose components), read with the `pose-format`
package: header versions 0.0, 0.1 and 0.2 (and what later releases of the package read).

Points are taken by the names in the header's components, not by position (a file may keep 8 of the
33 body points); hands whose point names differ between versions are taken by position (21 points,
wrist first, in MediaPipe's and OpenPose's shared order). A point whose confidence is 0 (masked) was
not found. x and y are pixels of the header's width and height, divided by them here; z is kept as
stored. With several people, the one with the highest total confidence over the clip is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slr.errors import DataError
from slr.importers.points import HOLISTIC_SIZES, MEDIAPIPE_HAND, MEDIAPIPE_POSE, OPENPOSE_BODY_25, OPENPOSE_SIZES
from slr.importers.sequence import BadSource, Sequence, part_array

HOLISTIC_COMPONENTS = {"POSE_LANDMARKS": "pose", "FACE_LANDMARKS": "face", "LEFT_HAND_LANDMARKS": "left_hand",
                       "RIGHT_HAND_LANDMARKS": "right_hand"}
OPENPOSE_COMPONENTS = {"pose_keypoints_2d": "pose", "face_keypoints_2d": "face",
                       "hand_left_keypoints_2d": "left_hand", "hand_right_keypoints_2d": "right_hand"}
_NAMES = {("holistic", "pose"): MEDIAPIPE_POSE, ("holistic", "left_hand"): MEDIAPIPE_HAND,
          ("holistic", "right_hand"): MEDIAPIPE_HAND, ("openpose", "pose"): OPENPOSE_BODY_25}


def require_pose_format():
    try:
        from pose_format import Pose
        from pose_format.pose_header import VERSION, PoseHeader
        from pose_format.utils.reader import BufferReader
    except ImportError as exc:
        raise DataError(f"reading .pose files needs the pose-format package ({exc}): pip install 'slr[import]'") from None
    return Pose, PoseHeader, BufferReader, VERSION


def read_header(path: Path):
    """The file's header, or BadSource for a file the library cannot read or a version it does not know."""
    _, PoseHeader, BufferReader, newest = require_pose_format()
    try:
        buffer = path.read_bytes()
        header = PoseHeader.read(BufferReader(buffer))
    except OSError as exc:
        raise BadSource(f"unreadable ({exc.strerror or exc})", path) from None
    except Exception as exc:  # struct errors, bad UTF-8 names: not a .pose file, or a damaged one
        raise BadSource(f"not a readable .pose file ({type(exc).__name__}: {exc})", path) from None
    version = round(float(header.version), 3)
    if version not in (0.0, 0.1, 0.2) and not 0 <= version <= round(newest, 3):
        raise BadSource(f".pose header version {version:g} is unknown (pose-format reads 0.0 to {newest:g})", path)
    return header, buffer


def family_of(header, path: Path) -> str:
    names = [c.name for c in header.components]
    if any(n in HOLISTIC_COMPONENTS for n in names):
        return "holistic"
    if any(n in OPENPOSE_COMPONENTS for n in names):
        return "openpose"
    raise BadSource(f"no MediaPipe Holistic or OpenPose component (components: {', '.join(names) or 'none'})", path)


def read_pose(path: Path, family: str) -> Sequence:
    Pose, _, _, _ = require_pose_format()
    header, buffer = read_header(path)
    found_family = family_of(header, path)
    if found_family != family:
        raise BadSource(f"holds {found_family} components, but this import writes {family} clips (the first file's); "
                        f"import it into another folder", path)
    try:
        pose = Pose.read(buffer)
    except Exception as exc:  # a truncated body, an unknown version the header check let through
        raise BadSource(f"unreadable .pose body ({type(exc).__name__}: {exc})", path) from None
    data = np.ma.getdata(pose.body.data).astype(np.float32)  # [T, people, points, dims]
    confidence = np.asarray(pose.body.confidence, np.float32)
    found = (confidence > 0) & ~np.ma.getmaskarray(pose.body.data).any(axis=-1)
    frames, people = data.shape[0], data.shape[1] if data.ndim == 4 else 0
    if frames == 0 or people == 0:
        raise BadSource("no frames" if frames == 0 else "no people in any frame", path)
    table = HOLISTIC_COMPONENTS if family == "holistic" else OPENPOSE_COMPONENTS
    sizes = HOLISTIC_SIZES if family == "holistic" else OPENPOSE_SIZES
    columns: dict[str, tuple[list[int], list[int]]] = {}  # part -> (file's points, part's points)
    at = 0
    for component in header.components:
        part = table.get(component.name)
        if part is not None:
            columns[part] = _point_numbers(family, part, list(component.points), at)
        at += len(component.points)
    kept_points = [p for file_points, _ in columns.values() for p in file_points]
    person = int(np.argmax((confidence[:, :, kept_points] * found[:, :, kept_points]).sum(axis=(0, 2))))
    several = int(((found[:, :, kept_points]).any(axis=2).sum(axis=1) > 1).sum())
    width, height = header.dimensions.width, header.dimensions.height
    scale = np.array([width or 1, height or 1] + [1] * (data.shape[-1] - 2), np.float32)
    parts = {}
    for part, (file_points, part_points) in columns.items():
        array = part_array(frames, sizes[part], max(3, data.shape[-1]))
        values = data[:, person][:, file_points] / scale
        values[~found[:, person][:, file_points]] = np.nan
        array[:, part_points, :values.shape[-1]] = values
        parts[part] = array
    fps = float(pose.body.fps or 0)
    timestamps = (np.arange(frames) * 1000.0 / fps).astype(np.float64) if fps > 0 else None
    frame = (f"pixels divided by the header's width {width} and height {height}" if width and height
             else "pixels (the header gives no frame size)")
    notes = {"fps": fps, "people": people, "person": person, "frames_with_several_people": several,
             "components": [c.name for c in header.components]}
    warnings = []
    if several:
        warnings.append(f"{path}: {several} of {frames} frame(s) hold several people; kept person {person}, the most "
                        f"confident over the clip")
    return Sequence(parts, frames, version=str(round(float(header.version), 3)),
                    coordinates=f"x, y: {frame}; z as stored" if family == "holistic" else f"x, y: {frame}",
                    timestamps_ms=timestamps, notes=notes, warnings=warnings)


def _point_numbers(family: str, part: str, names: list[str], offset: int) -> tuple[list[int], list[int]]:
    """Which of the component's points (indices into the file's point axis) go where in the part."""
    known = _NAMES.get((family, part))
    size = (HOLISTIC_SIZES if family == "holistic" else OPENPOSE_SIZES)[part]
    if part == "face" and family == "holistic" and all(n.isdigit() for n in names):
        pairs = [(i, int(n)) for i, n in enumerate(names) if int(n) < size]  # face-mesh points are numbered
    elif known is not None and any(n in known for n in names):
        pairs = [(i, known.index(n)) for i, n in enumerate(names) if n in known]
    elif len(names) == size or (part == "face" and len(names) <= size):
        pairs = [(i, i) for i in range(len(names))]  # by position: same order, other names
    else:
        pairs = []  # nothing recognisable: the part stays not found
    return [offset + i for i, _ in pairs], [j for _, j in pairs]
