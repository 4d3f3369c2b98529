"""Refuse an export in which two images would write the same output file.

Formats that name each output after the image's relative path without its extension (label
maps, instance maps, YOLO labels, labelme JSON, VOC's flattened names, datumaro item ids) give
`cells.png` and `cells.jpg` the same output: the second would overwrite the first unseen.
Their readers (segstudio's importers, Ultralytics, labelme, VOC tools) pair an image with its
label by stem, so a renamed output would not be found again: the export is refused instead,
before anything is read or written, naming the images; the person renames one of them.

Names are compared case-folded and NFC-normalised, since the export may be copied to or opened
on a case-insensitive (Windows, macOS) or normalisation-insensitive (macOS) filesystem, where
`A.png` and `a.png` are one file. An output that is also the folder of another output
(`cells.png` written as a file and as `cells.png/x.png`) is a clash as well. Images in
different folders (`sub/x.png`, `x.png`) do not clash.
"""

from __future__ import annotations

import os
import unicodedata
from collections import defaultdict
from typing import Callable, Iterable, Sequence

from segstudio.core.project import Project
from segstudio.io.common import FormatError, export_paths

SHOWN = 3


def fold(name: str) -> str:
    """The key two names share when one filesystem would take them as the same file."""
    return unicodedata.normalize("NFC", name).casefold()


def check_unique_outputs(paths: Iterable[str], fmt: str, outputs_of: Callable[[str], Iterable[str]],
                         folders: bool = True) -> None:
    """FormatError naming the images whose outputs (`outputs_of(path)`: relative paths with `/`)
    would be the same file or, with `folders`, one image's file the folder of another's.

    `paths` are the images the export would write (common.export_paths: its status filter,
    known-unreadable images left out)."""
    by_key: dict[str, list[str]] = defaultdict(list)
    shown_out: dict[str, str] = {}
    for p in paths:
        for out in outputs_of(p):
            key = fold(out)
            by_key[key].append(p)
            shown_out.setdefault(key, out)
    groups = [(shown_out[k], ps) for k, ps in by_key.items() if len(ps) > 1]
    if folders:
        inside: dict[str, str] = {}  # folded folder -> an output within it
        for k in by_key:
            parts = k.split("/")
            for i in range(1, len(parts)):
                inside.setdefault("/".join(parts[:i]), k)
        groups += [(shown_out[k], ps + by_key[inside[k]][:1]) for k, ps in by_key.items()
                   if k in inside and len(ps) == 1]
    unique: dict[tuple[str, ...], str] = {}  # images clashing in two of their outputs are named once
    for out, ps in groups:
        unique.setdefault(tuple(ps), out)
    groups = [(out, list(ps)) for ps, out in unique.items()]
    if not groups:
        return
    listed = "; ".join(f"{', '.join(ps)} (→ {out})" for out, ps in groups[:SHOWN])
    if len(groups) > SHOWN:
        listed += f"; and {len(groups) - SHOWN} more"
    raise FormatError(f"cannot export to {fmt}: these images would write the same file: {listed}; "
                      "rename one of them and export again")


def stem(path: str) -> str:
    """The image's relative path without its extension: what stem-named outputs are named by."""
    return os.path.splitext(path)[0]


def check_export_names(project: Project, statuses: Sequence[str] | None, fmt: str,
                       outputs_of: Callable[[str], Iterable[str]], folders: bool = True) -> None:
    """check_unique_outputs over the images this export would write."""
    check_unique_outputs(export_paths(project, statuses), fmt, outputs_of, folders)
