"""Label classes: id >= 1 (0 is background), name, colour, hotkey."""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass, replace
from pathlib import Path

from segstudio.core.errors import BadValue

BACKGROUND_NAMES = {"_background_", "background", "__background__", "bg"}
IGNORE_NAMES = {"__ignore__", "ignore", "_ignore_"}


@dataclass(frozen=True)
class LabelClass:
    id: int
    name: str
    color: tuple[int, int, int]
    hotkey: str = ""
    # An ignore class marks pixels a model must not learn from: label maps write them with
    # the ignore value, COCO and YOLO exports leave them out.
    ignore: bool = False

    def __post_init__(self):
        if self.id < 1:
            raise ValueError(f"class id must be >= 1 (0 is background), got {self.id}")
        if not self.name.strip():
            raise BadValue("class name must not be empty")

    def with_(self, **kw) -> "LabelClass":
        return replace(self, **kw)

    @property
    def hex_color(self) -> str:
        return "#%02x%02x%02x" % self.color


def default_color(index: int) -> tuple[int, int, int]:
    """Distinct colours: the first 20 from the VOC palette order's spirit, then golden-ratio hues."""
    if index < len(_BASE):
        return _BASE[index]
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


_BASE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
    (0, 128, 128), (230, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
]


def parse_color(text: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise BadValue(f"colour must be #rrggbb, got {text!r}")
    return int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16)


@dataclass(frozen=True)
class ClassListEntry:
    name: str
    color: tuple[int, int, int] | None = None
    ignore: bool = False


def read_class_file(path: str | Path, dropped: list[str] | None = None) -> list[ClassListEntry]:
    """Read a class-name list (one name per line, optional `#rrggbb` after the name).

    Background lines (`_background_`, ...) are dropped: background is always value 0. An
    `__ignore__` line becomes an ignore class. This reads labelme's labels.txt as labelme
    numbers it: the first real class is label value 1.

    A line whose first non-space character is `#` is a comment. A backslash in that place is
    an escape and is dropped: `\\#1` declares the class `#1` (and `\\\\x` the class `\\x`).
    write_class_file escapes such names, so what it writes reads back the same.
    `dropped`, when given, gets the background lines' names (for a report of what was skipped).
    """
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    entries: list[ClassListEntry] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("\\"):
            line = line[1:].strip()
            if not line:
                continue
        color = None
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and parts[1].startswith("#") and len(parts[1]) == 7:
            try:
                color = parse_color(parts[1])
                line = parts[0].strip()
            except ValueError:
                color = None
        low = line.lower()
        if low in BACKGROUND_NAMES:
            if dropped is not None:
                dropped.append(line)
            continue
        entries.append(ClassListEntry(line, color, ignore=low in IGNORE_NAMES))
    return entries


# control characters (C0, DEL, C1), the Unicode line and paragraph separators and the BOM:
# str.splitlines() breaks lines at several of these, readers of class lists at others
UNLISTABLE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def unlistable(name: str) -> str | None:
    """Why a class name cannot be one line of a class list (its first line break or control
    character, as U+XXXX), or None when it can."""
    m = UNLISTABLE_CHARS.search(name)
    return None if m is None else f"U+{ord(m.group()):04X}"


def write_class_file(path: str | Path, classes: list[LabelClass]) -> None:
    """One name and colour a line. ValueError (nothing written) when a name holds a line break or
    control character: it would split over lines and read back as other classes."""
    bad = [f"{c.name!r} (holds {why})" for c in classes if (why := unlistable(c.name))]
    if bad:
        raise ValueError("class names with a line break or control character cannot be written to a class "
                         f"list: {', '.join(bad[:5])}{' and more' if len(bad) > 5 else ''}; rename the class")
    # a name starting with # or \ would read back as a comment or lose its backslash: escape it
    text = "\n".join(f"{_escape(c.name)} {c.hex_color}" for c in classes) + "\n"
    Path(path).write_text(text, encoding="utf-8")


def _escape(name: str) -> str:
    return "\\" + name if name.startswith(("#", "\\")) else name
