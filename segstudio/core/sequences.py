"""Sequences of frames in a project, and how their frames are named in the store.

A sequence is an ordered run of frames: a stack file (multi-page or 3D TIFF), a video file, or a
folder of numbered image files. Every frame is one image record, so everything that works on an
image (tools, models, the learner, statuses, check, export) works on a frame.

- A frame of a *container* file `REL` (a video, or a TIFF with more than one frame) is the record
  path `REL/NNNNNN`: the 0-based frame number, zero-padded to 6 digits so that the store's path
  order is the frame order. No file of the folder can have such a path: `REL` is a file, so it is
  never a folder, and a scanned file always has an image extension.
- A *numbered folder*'s frames are its own image files, in numeric order (`2.png` before `10.png`).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

VIDEO_EXTENSIONS = frozenset({"mp4", "avi", "mov", "mkv", "m4v", "webm"})
STACK_EXTENSIONS = frozenset({"tif", "tiff"})  # a container only when it holds more than one frame
FRAME_DIGITS = 6
MAX_FRAMES = 10_000_000  # more than any real stack or video; a header that says more is not believed
MIN_FRAME_BYTES = 8  # no stack page (its IFD) or video frame (its packet and index entry) takes fewer
PROPAGATED = "propagate"  # the source of regions carried from another frame (editing/propagation_run)

_FRAME = re.compile(r"\d{%d,}" % FRAME_DIGITS)
_DIGITS = re.compile(r"(\d+)")


def _ext(name: str) -> str:
    base, dot, ext = name.rpartition(".")
    return ext.lower() if dot and base else ""


def is_video_name(name: str) -> bool:
    return _ext(name.rsplit("/", 1)[-1]) in VIDEO_EXTENSIONS


def may_be_container(name: str) -> bool:
    """A file that can hold several frames: a video, or a TIFF (which may hold one)."""
    ext = _ext(name.rsplit("/", 1)[-1])
    return ext in VIDEO_EXTENSIONS or ext in STACK_EXTENSIONS


def frame_path(container: str, index: int) -> str:
    """The record path of frame `index` (0-based) of the container file `container`."""
    if index < 0:
        raise ValueError(f"a frame number is 0 or more, not {index}")
    return f"{container}/{index:0{FRAME_DIGITS}d}"


def split_frame_path(path: str) -> tuple[str, int] | None:
    """(container, frame number) for a frame's record path; None for an ordinary image's."""
    container, slash, frame = path.rpartition("/")
    if not slash or not _FRAME.fullmatch(frame) or not may_be_container(container):
        return None
    return container, int(frame)


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers in a name by value: 'f2.png' before 'f10.png'."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p), p) if i % 2 else (1, 0, p.lower()) for i, p in enumerate(parts))


def sequence_key(path: str) -> str | None:
    """The sequence a record belongs to: its container file for a frame; for an image file, its
    folder ('' for the top) when the name holds a number (a numbered folder's frame); None
    for an image whose name has no number."""
    split = split_frame_path(path)
    if split is not None:
        return split[0]
    folder, _, name = path.rpartition("/")
    stem = name.rpartition(".")[0] or name
    return folder if _DIGITS.search(stem) else None


def order_frames(paths: Iterable[str]) -> list[str]:
    """Paths of one sequence in frame order: by frame number for a container's frames, in
    numeric (natural) order for a numbered folder's files."""
    def key(p: str) -> tuple:
        split = split_frame_path(p)
        return (0, split[1], "") if split is not None else (1, 0, natural_key(p.rpartition("/")[2]))
    return sorted(paths, key=key)


MAX_FRAME_STEP = 1000  # a time-lapse saved every 1000th frame at most
_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


def numbered_run(paths: Sequence[str], min_frames: int = 2) -> list[str]:
    """The frames among one folder's numbered image paths, in numeric order; [] when they are no
    sequence. They are the largest group whose names differ only in their last number
    ('t_0001.png', 't_0002.png'; 'cam1_0001' and 'cam2_0001' are two groups), holding at least
    `min_frames`, whose numbers run evenly: their span is at most four times their count in steps
    of the numbers' common difference (frames may be missing), and that difference is at most
    MAX_FRAME_STEP (two photos named by ids far apart are not two frames). So a time-lapse saved
    every 5th frame is a sequence, while photos named by sparse ids (COCO's 000000397133.jpg)
    stay a folder of images."""
    import math
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for p in paths:
        name = p.rpartition("/")[2]
        stem, dot, ext = name.rpartition(".")
        m = _LAST_NUMBER.match(stem if dot else name)
        if m is not None:
            groups.setdefault((m.group(1).lower(), (m.group(3) + dot + ext).lower()), []).append((int(m.group(2)), p))
    if not groups:
        return []
    best = max(groups.values(), key=len)
    if len(best) < min_frames:
        return []
    numbers = sorted({n for n, _ in best})
    if len(numbers) < len(best):
        return []  # two names for one number ('1.png', '01.png'): no one order
    step = 0
    for a, b in zip(numbers, numbers[1:], strict=False):
        step = math.gcd(step, b - a)
    if step > MAX_FRAME_STEP or (numbers[-1] - numbers[0]) // max(step, 1) + 1 > 4 * len(numbers):
        return []
    return [p for _, p in sorted(best)]


def group_sequences(paths: Sequence[str], min_frames: int = 2) -> dict[str, list[str]]:
    """The sequences among `paths`: key -> frame paths in frame order. A container's frames are
    always a sequence; a folder's numbered images are one when they run evenly (numbered_run)."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        key = sequence_key(p)
        if key is not None:
            groups.setdefault(key, []).append(p)
    out = {}
    for key, members in groups.items():
        if split_frame_path(members[0]) is not None:
            out[key] = order_frames(members)
        else:
            run = numbered_run(members, min_frames)
            if run:
                out[key] = run
    return out


def parse_frame(text: str, frames: Sequence[str]) -> int:
    """A frame given by the user: a 0-based number, or a frame's file (or record) name. Returns
    its index in `frames` (record paths in frame order); ValueError with a message when no frame is it."""
    t = text.strip()
    if t.isdigit() and not any(p.rpartition("/")[2] == t for p in frames):
        i = int(t)
        if i >= len(frames):
            raise ValueError(f"frame {i} is past the last frame ({len(frames) - 1})")
        return i
    for i, p in enumerate(frames):
        if p == t or p.rpartition("/")[2] == t:
            return i
    raise ValueError(f"no frame is {text!r}: give a frame number from 0 to {len(frames) - 1} or a frame's name")
