"""MOTS (Multi-Object Tracking and Segmentation, Voigtlaender et al. 2019) export through datumaro:
the video-aware format, read by datumaro's own `mots` importer (and so by CVAT) and by the MOTS
tools (TrackEval, mots_tools) in its PNG form.

Layout, as datumaro's `mots_png` writes it: `default/images/<sequence>/<frame>.png` and
`default/instances/<sequence>/<frame>.png`, a 16-bit PNG per frame whose pixel is
`1000 x (class index + 1) + track`, 0 the background; `default/instances/labels.txt` the classes.
A frame's id is its image name without extension (common.image_name), so a video's or stack's
frames sit in one folder per sequence and a numbered folder's files keep their own names.

Identity: a region's object (Region.object_id: its track, or its own id when it has none) is
one MOTS track within its sequence. Object ids are the store's integers (huge, negative, any
value): they never become pixels as they are. Each (sequence, class) numbers its objects
1..999 in the order they first appear, so the same object has the same pixel value on every
frame of its sequence, and nothing past 16 bits or MOTS's 999 tracks a class is ever written
(refused with a message instead: MAX_TRACKS, MAX_CLASSES).
"""

from __future__ import annotations

from typing import Iterable

from segstudio.core import sequences
from segstudio.core.region import Region
from segstudio.io.common import FormatError

MAX_TRACKS = 999  # track numbers 1..999 under one class: 1000 x class + track
MAX_CLASSES = 65535 // 1000 - 1  # 64: 1000 x 65 + 999 would not fit a 16-bit PNG


def check_classes(names: list[str]) -> None:
    if len(names) > MAX_CLASSES:
        raise FormatError(f"cannot export to mots: its 16-bit ids (1000 x class + track) hold {MAX_CLASSES} classes, "
                          f"the project has {len(names)}; export the others with another format")


def sequence_of(paths: Iterable[str]) -> dict[str, str]:
    """{record path: its sequence} for the records of an export: a stack's or video's frames
    share their file; a numbered folder's files their folder (core/sequences); any other image
    is a sequence of one frame."""
    paths = list(paths)
    out = {p: p for p in paths}
    for key, members in sequences.group_sequences(paths).items():
        for p in members:
            out[p] = key
    return out


def object_key(r: Region) -> int:
    """The region's object identity as an int; a track the store holds as anything else (a
    hostile or broken value) is not believed: the region is its own object."""
    t = r.track
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    return r.id if isinstance(r.id, int) and not isinstance(r.id, bool) else id(r)


class Tracks:
    """Track numbers 1..MAX_TRACKS per (sequence, class), given to objects as they first appear."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, int], dict[int, int]] = {}

    def number(self, sequence: str, class_value: int, r: Region) -> int:
        known = self._numbers.setdefault((sequence, class_value), {})
        key = object_key(r)
        n = known.get(key)
        if n is None:
            if len(known) >= MAX_TRACKS:
                raise FormatError(f"cannot export to mots: {sequence} holds more than {MAX_TRACKS} objects of one "
                                  "class, which MOTS ids (1000 x class + track) cannot tell apart; nothing was written")
            n = known[key] = len(known) + 1
        return n
