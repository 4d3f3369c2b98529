"""A region: one object or one class area on one image, stored as a mask cropped to its box."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from segstudio.core import maskops
from segstudio.core.maskops import Box

MANUAL = "manual"
IMPORTED = "import"


@dataclass(eq=False)
class Region:
    id: int
    class_id: int
    mask: np.ndarray  # bool, cropped to the region's box; may be 0x0 while an edit is under way
    x: int = 0
    y: int = 0
    z: int = 0
    source: str = MANUAL  # "manual", "import", or the name of the model that made it
    score: float | None = None
    iscrowd: bool = False
    extra: dict = field(default_factory=dict)  # e.g. uncertainty, group id from an import
    # the object's identity across a sequence's frames; None: a new object, identified by its own id
    track: int | None = None

    def __post_init__(self):
        if self.mask.dtype != bool:
            self.mask = self.mask.astype(bool)

    @property
    def object_id(self) -> int:
        """The object this region shows: the same on every frame of a sequence it was carried to."""
        return self.id if self.track is None else self.track

    @property
    def box(self) -> Box:
        h, w = self.mask.shape
        return self.x, self.y, self.x + w, self.y + h

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def empty(self) -> bool:
        return self.mask.size == 0 or not self.mask.any()

    def copy(self) -> "Region":
        return replace(self, mask=self.mask.copy(), extra=dict(self.extra))

    def window(self, box: Box) -> np.ndarray:
        return maskops.window(self.mask, self.x, self.y, box)

    def full_mask(self, width: int, height: int) -> np.ndarray:
        return maskops.uncrop(self.mask, self.x, self.y, width, height)

    def contains(self, px: int, py: int) -> bool:
        h, w = self.mask.shape
        lx, ly = px - self.x, py - self.y
        return 0 <= lx < w and 0 <= ly < h and bool(self.mask[ly, lx])

    def grow_to(self, box: Box, margin: int = 0) -> None:
        """Make the crop cover `box` (plus a margin so a brush stroke rarely reallocates)."""
        cur = self.box
        if self.mask.size and maskops.box_union(cur, box) == cur:
            return
        want = box if not self.mask.size else maskops.box_union(cur, box)
        if margin:
            want = (want[0] - margin, want[1] - margin, want[2] + margin, want[3] + margin)
        self.mask = self.window(want)
        self.x, self.y = want[0], want[1]

    def set_window(self, box: Box, pixels: np.ndarray, margin: int = 0) -> None:
        """Overwrite the pixels inside `box` (grows the crop as needed; call tighten() after)."""
        if pixels.any():
            self.grow_to(box, margin)
        inter = maskops.box_intersect(box, self.box) if self.mask.size else None
        if inter is None:
            return
        self.mask[inter[1] - self.y:inter[3] - self.y, inter[0] - self.x:inter[2] - self.x] = \
            pixels[inter[1] - box[1]:inter[3] - box[1], inter[0] - box[0]:inter[2] - box[0]]

    def paint(self, stamp: np.ndarray, box: Box, value: bool, margin: int = 0) -> None:
        """OR (value=True) or clear (value=False) a stamp at `box`."""
        if value:
            self.grow_to(box, margin)
        inter = maskops.box_intersect(box, self.box) if self.mask.size else None
        if inter is None:
            return
        dst = self.mask[inter[1] - self.y:inter[3] - self.y, inter[0] - self.x:inter[2] - self.x]
        src = stamp[inter[1] - box[1]:inter[3] - box[1], inter[0] - box[0]:inter[2] - box[0]]
        if value:
            dst |= src
        else:
            dst &= ~src

    def tighten(self) -> None:
        """Crop to the True pixels; an emptied region keeps a 0x0 mask at its old origin."""
        c = maskops.crop_to_content(self.mask, self.x, self.y)
        if c is None:
            self.mask = np.zeros((0, 0), dtype=bool)
        else:
            self.mask, self.x, self.y = c

    def clip_to_image(self, width: int, height: int) -> None:
        inter = maskops.box_clip(self.box, width, height)
        if inter is None:
            self.mask = np.zeros((0, 0), dtype=bool)
            return
        if inter != self.box:
            self.mask = self.window(inter)
            self.x, self.y = inter[0], inter[1]


def region_from_full_mask(region_id: int, class_id: int, mask: np.ndarray, **kw) -> Region | None:
    """A region from a full-image mask, cropped; None when the mask is empty."""
    c = maskops.crop_to_content(mask)
    if c is None:
        return None
    m, x, y = c
    return Region(region_id, class_id, m, x, y, **kw)
