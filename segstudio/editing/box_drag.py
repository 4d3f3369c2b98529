"""A box dragged with the mouse, shared by every tool that takes one (Box → GrabCut, the Model
click / box tool, Segment Anything's box prompt): press starts it, move updates the rectangle
drawn while it goes, release gives the box, or None when the drag was too short to be one (a
click). Plain Python over image coordinates (no Qt)."""

from __future__ import annotations

import math

from segstudio.core.maskops import Box


def pixel_box(a: tuple[float, float], b: tuple[float, float]) -> Box:
    """The pixels from the one under `a` to the one under `b`, whichever way the drag went:
    (x0, y0, x1, y1) with x1, y1 exclusive (pixel i covers [i, i + 1))."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return math.floor(x0), math.floor(y0), math.floor(x1) + 1, math.floor(y1) + 1


class BoxDrag:
    """One drag at a time. `minimum` (px): a drag shorter than this in width or in height is a
    click, not a box."""

    def __init__(self, minimum: float) -> None:
        if not minimum > 0:
            raise ValueError(f"a box drag's minimum must be a positive length in pixels, not {minimum!r}")
        self.minimum = minimum
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        """A drag is under way (pressed, not yet released or cancelled)."""
        return self.start is not None

    def press(self, x: float, y: float) -> None:
        self.start = self.end = (x, y)

    def move(self, x: float, y: float) -> bool:
        """The pointer moved with the button down; True when that changed the rectangle drawn."""
        if self.start is None:
            return False
        self.end = (x, y)
        return True

    def release(self, x: float, y: float) -> Box | None:
        """End the drag here: its box, or None for a click (or when no drag was under way)."""
        start = self.start
        self.start = self.end = None
        if start is None:
            return None
        if abs(x - start[0]) < self.minimum or abs(y - start[1]) < self.minimum:
            return None
        return pixel_box(start, (x, y))

    def cancel(self) -> None:
        self.start = self.end = None

    def rect(self) -> tuple[float, float, float, float] | None:
        """The rectangle to draw while the drag goes (pointer to pointer), None when there is no drag."""
        if self.start is None or self.end is None:
            return None
        (x0, y0), (x1, y1) = self.start, self.end
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
