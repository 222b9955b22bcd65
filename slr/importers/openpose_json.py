"""OpenPose JSON folders: one `<video>_<frame>_keypoints.json` per frame, one folder per video.

Each file holds `people`, each with `pose_keypoints_2d` (BODY_25, or the 18-point COCO body of older
models, mapped onto BODY_25), `face_keypoints_2d` (70) and `hand_left/right_keypoints_2d` (21) as
flat (x, y, confidence) lists in pixels (OpenPose 1.0 spelled the keys without `_2d`). Confidence 0
= not found; an empty list = the part was not run. Frames are ordered by the number in their names.

Several people in a frame: the one with the highest total confidence over the kept parts is kept
(the signer is usually the largest and most visible person); the clip's meta and a warning say how
many frames had several. A frame with no people is a frame in which nothing was found (the clip
keeps its timing); a warning names it. A folder holding the frames of several videos
(`a_000000000000_keypoints.json`, `b_000000000000_keypoints.json`) is one sequence per video. The frame size is not in the files: `--frame-size WxH`
divides x and y by it, else they stay in pixels (slr's per-clip normalisation makes either work).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import numpy as np

from slr.importers.mediapipe_npy import frame_order
from slr.importers.points import OPENPOSE_SIZES
from slr.importers.sequence import BadSource, Sequence, part_array

_KEYS = {"pose": ("pose_keypoints_2d", "pose_keypoints"), "face": ("face_keypoints_2d", "face_keypoints"),
         "left_hand": ("hand_left_keypoints_2d", "hand_left_keypoints"),
         "right_hand": ("hand_right_keypoints_2d", "hand_right_keypoints")}
#: The COCO body (18 points) of older OpenPose models, as BODY_25 points.
COCO_TO_BODY_25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
_WARNED = 3  # frames named per sequence in a warning


_FRAME = re.compile(r"^(?P<video>.*?)_?(?P<frame>\d+)_keypoints\.json$")


def video_of(file: Path) -> str:
    """The video a frame file belongs to: its name before the frame number (`du_wohn_wo`)."""
    match = _FRAME.match(file.name)
    return match.group("video") if match else ""


def frame_files(folder: Path, video: Optional[str] = None) -> list[Path]:
    files = list(folder.glob("*_keypoints.json")) or list(folder.glob("*.json"))
    if video is not None:
        files = [f for f in files if video_of(f) == video]
    return sorted(files, key=frame_order)


def _person_points(person: dict, part: str, file: Path) -> Optional[np.ndarray]:
    """[points, 3] (x, y, confidence) of one part of one person; None where the part is empty."""
    values = next((person[k] for k in _KEYS[part] if k in person), None)
    if not values:
        return None
    try:
        array = np.asarray(values, np.float32)
    except (TypeError, ValueError):
        raise BadSource(f"{_KEYS[part][0]} holds values that are not numbers", file) from None
    if array.ndim != 1 or array.size % 3:
        raise BadSource(f"{_KEYS[part][0]} has {array.size} values; expected (x, y, confidence) triples", file)
    points = array.reshape(-1, 3)
    if part == "pose" and len(points) == len(COCO_TO_BODY_25):
        body = np.zeros((OPENPOSE_SIZES["pose"], 3), np.float32)
        body[list(COCO_TO_BODY_25)] = points
        return body
    if len(points) != OPENPOSE_SIZES[part]:
        raise BadSource(f"{_KEYS[part][0]} has {len(points)} points; expected {OPENPOSE_SIZES[part]}", file)
    return points


def read_folder(folder: Path, parts: tuple[str, ...], frame_size: Optional[tuple[int, int]],
                video: Optional[str] = None) -> Sequence:
    files = frame_files(folder, video)
    if not files:
        raise BadSource("no frames (no *_keypoints.json files)", folder)
    arrays = {part: part_array(len(files), OPENPOSE_SIZES[part], 2) for part in parts}
    empty, several, versions = [], 0, set()
    for t, file in enumerate(files):
        try:
            frame = json.loads(file.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise BadSource("not UTF-8 text", file) from None
        except json.JSONDecodeError as exc:
            raise BadSource(f"not valid JSON, truncated? (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                            file) from None
        people = frame.get("people") if isinstance(frame, dict) else None
        if not isinstance(people, list) or not all(isinstance(p, dict) for p in people):
            raise BadSource("no 'people' list: not an OpenPose keypoints file", file)
        versions.add(str(frame.get("version", "unknown")))
        candidates = []
        for person in people:
            points = {part: _person_points(person, part, file) for part in parts}
            score = sum(float(p[:, 2].clip(min=0).sum()) for p in points.values() if p is not None)
            if score > 0:
                candidates.append((score, points))
        if not candidates:
            empty.append(file.name)
            continue
        several += len(candidates) > 1
        _, chosen = max(candidates, key=lambda c: c[0])  # the first of equals: max keeps the first
        for part, points in chosen.items():
            if points is not None:
                seen = points[:, 2] > 0
                arrays[part][t, seen] = points[seen, :2]
    if len(empty) == len(files):
        raise BadSource(f"no person found in any of its {len(files)} frame(s)", folder)
    if frame_size is not None:
        for array in arrays.values():
            array /= np.asarray(frame_size, np.float32)
    warnings = []
    if empty:
        shown = ", ".join(empty[:_WARNED]) + (f" and {len(empty) - _WARNED} more" if len(empty) > _WARNED else "")
        warnings.append(f"{folder}: {len(empty)} of {len(files)} frame(s) with no person ({shown}): kept as frames "
                        f"in which nothing was found")
    if several:
        warnings.append(f"{folder}: {several} of {len(files)} frame(s) hold several people; kept in each the one with "
                        f"the highest total confidence")
    frame = (f"pixels divided by the frame size {frame_size[0]}x{frame_size[1]}" if frame_size
             else "pixels of the source video (not normalised: the files do not give the frame size)")
    return Sequence(arrays, len(files), version=",".join(sorted(versions)), coordinates=f"x, y: {frame}",
                    notes={"frames_without_people": len(empty), "frames_with_several_people": several},
                    warnings=warnings)


def sequence_folders(sources: list[Path]) -> list[tuple[Path, Optional[str]]]:
    """(folder, None) for a folder of one video's frames; (folder, video) for each video of a folder
    holding several."""
    folders: set[Path] = set()
    for source in sources:
        if source.is_dir():
            folders |= {p.parent for p in source.rglob("*_keypoints.json")}
        elif source.suffix.lower() == ".json":
            folders.add(source.parent)
    found: list[tuple[Path, Optional[str]]] = []
    for folder in sorted(folders):
        videos = sorted({video_of(f) for f in frame_files(folder)})
        found += [(folder, None)] if len(videos) <= 1 else [(folder, v) for v in videos]
    return found
