"""The region overlay: one byte per image pixel (the class's palette index) shown as an
Indexed8 QImage. A change repaints only its rectangle; opacity, hidden classes and colours
are colour-table changes that touch no pixels.

Instance colours: each class gets a block of palette entries, shades of its colour, and a region
is painted with the shade its id picks (`id % shades`), so touching instances of one class look
apart (regions made one after another, such as the parts of a split, always do). The shade is a
palette index like the class's own, so painting costs the same with the option on.
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from segstudio.core import maskops
from segstudio.core.classes import LabelClass
from segstudio.core.maskops import Box
from segstudio.gui.qimage import argb, wrap_indexed

if TYPE_CHECKING:
    from segstudio.core.document import Document
    from segstudio.editing.editor import EditorState


MAX_SHADES = 8  # palette entries per class with instance colours on (fewer with more than 31 classes)
# (lightness change, hue turn) of each shade from the class colour: neighbours in the list, which
# regions with consecutive ids get, differ in lightness by about 0.2 or more, or in hue
SHADE_STEPS = [(0.0, 0.0), (0.24, 0.0), (-0.16, 0.05), (0.1, -0.08), (-0.22, -0.03), (0.32, 0.06),
               (-0.08, -0.1), (0.18, 0.1)]


def shade(rgb: tuple[int, int, int], k: int) -> tuple[int, int, int]:
    """The k-th shade of a colour (k = 0: the colour itself): lighter or darker, the hue turned a
    little; a change of lightness that would leave the readable range goes the other way."""
    if k == 0:
        return rgb
    dl, dh = SHADE_STEPS[k % len(SHADE_STEPS)]
    h, light, sat = colorsys.rgb_to_hls(*(v / 255.0 for v in rgb))
    lo, hi = 0.22, 0.9  # darker shades vanish on a dark image at the overlay's opacity
    new = light + dl
    if not lo <= new <= hi:
        new = light - dl
    r, g, b = colorsys.hls_to_rgb((h + dh) % 1.0, min(max(new, lo), hi), max(sat, 0.35))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


class OverlayItem(QGraphicsItem):
    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.labels = np.zeros((1, 1), np.uint8)
        self.qimage: QImage | None = None
        self.doc: Document | None = None
        self.editor: EditorState | None = None
        self.index_of: dict[int, int] = {}  # class id -> palette index (the first of its shades)
        self.shades = 1  # palette entries per class: 1, or up to MAX_SHADES with instance colours
        self.instances = False
        self.opacity_value = 0.45
        self.outline = False
        self.shown = True
        self._classes: list[LabelClass] = []

    # ---------------------------------------------------------------- set-up
    def set_document(self, doc: Document, editor: EditorState | None, width: int, height: int) -> None:
        self.prepareGeometryChange()
        self.doc, self.editor = doc, editor
        if self.labels.shape != (height, width):
            self.labels = np.zeros((height, width), np.uint8)
        self.qimage = wrap_indexed(self.labels, self._color_table())
        self.rebuild()

    def set_classes(self, classes: list[LabelClass]) -> None:
        self._classes = list(classes)
        self._assign_indices()
        self.update_colors()
        if self.doc is not None:
            self.rebuild()

    def _assign_indices(self) -> None:
        n = len(self._classes)
        self.shades = min(MAX_SHADES, 254 // max(n, 1)) if self.instances else 1
        if self.shades < 2:  # more than 127 classes: no room for shades, one entry per class
            self.shades = 1
            self.index_of = {c.id: (k % 254) + 1 for k, c in enumerate(self._classes)}
        else:
            self.index_of = {c.id: k * self.shades + 1 for k, c in enumerate(self._classes)}

    def set_instances(self, on: bool) -> None:
        """Colour touching instances of a class apart (shades of its colour) or all alike."""
        if on == self.instances:
            return
        self.instances = on
        self._assign_indices()
        self.update_colors()
        if self.doc is not None:
            self.rebuild()

    def _color_table(self) -> list[int]:
        table = [0] * 256
        alpha = int(round(255 * (1.0 if self.outline else self.opacity_value)))
        hidden = self.editor.hidden_classes if self.editor is not None else set()
        for c in self._classes:
            i = self.index_of[c.id]
            for k in range(self.shades):
                table[i + k] = 0 if c.id in hidden or not self.shown else argb(shade(c.color, k), alpha)
        return table

    def update_colors(self) -> None:
        if self.qimage is not None:
            self.qimage.setColorTable(self._color_table())
            self.update()

    def set_opacity(self, value: float) -> None:
        self.opacity_value = float(np.clip(value, 0.0, 1.0))
        self.update_colors()

    def set_outline(self, on: bool) -> None:
        self.outline = on
        self.update_colors()
        self.rebuild()

    def set_shown(self, on: bool) -> None:
        self.shown = on
        self.update_colors()

    # ---------------------------------------------------------------- painting into the labels
    def rebuild(self) -> None:
        self.labels[...] = 0
        if self.doc is not None:
            h, w = self.labels.shape
            self._paint((0, 0, w, h))
        self.update()

    def refresh(self, box: Box | None) -> None:
        """Repaint the labels inside `box` (plus a pixel for outlines) and schedule its redraw."""
        if box is None or self.doc is None:
            return
        h, w = self.labels.shape
        pad = 1 if self.outline else 0
        b = maskops.box_clip((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), w, h)
        if b is None:
            return
        self.labels[b[1]:b[3], b[0]:b[2]] = 0
        self._paint(b)
        self.update(QRectF(b[0], b[1], b[2] - b[0], b[3] - b[1]))

    def _paint(self, b: Box) -> None:
        assert self.doc is not None  # callers check
        sub = self.labels[b[1]:b[3], b[0]:b[2]]
        visible = self.editor.visible if self.editor is not None else (lambda r: True)
        shades = self.shades
        for r in self.doc.regions_in(b):
            idx = self.index_of.get(r.class_id)
            if idx is None or not visible(r):
                continue
            if shades > 1:
                idx += r.id % shades
            if self.outline:
                big = (b[0] - 1, b[1] - 1, b[2] + 1, b[3] + 1)
                win = maskops.outline(r.window(big), 1)[1:-1, 1:-1]
            else:
                inter = maskops.box_intersect(r.box, b)
                if inter is None:
                    continue
                m = r.mask[inter[1] - r.y:inter[3] - r.y, inter[0] - r.x:inter[2] - r.x]
                sub[inter[1] - b[1]:inter[3] - b[1], inter[0] - b[0]:inter[2] - b[0]][m] = idx
                continue
            sub[win] = idx

    # ---------------------------------------------------------------- QGraphicsItem
    def boundingRect(self) -> QRectF:
        h, w = self.labels.shape
        return QRectF(0, 0, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.qimage is None or not self.shown:
            return
        r = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if r.isEmpty():
            return
        painter.drawImage(QRectF(r), self.qimage, QRectF(r))
