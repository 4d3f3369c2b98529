"""Editing tools as small state machines fed pointer events in image coordinates: the pointer,
the tool base, and the drawing tools (select, brush, eraser, polygon, lasso, magic wand).
The assisted ones (GrabCut, watershed, the model prompt) are in assist_tools.py, the list of
all of them in toolbox.py.

No Qt here: the canvas turns mouse events into `Pointer`s, and tests drive the tools directly.
Each drag or each completed shape is one undo step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal


from segstudio.core import maskops
from segstudio.editing.editor import EditorState
from segstudio.editing import classical

if TYPE_CHECKING:
    from segstudio.editing.classical import Crop



@dataclass
class Pointer:
    x: float
    y: float
    button: str = "left"  # left | right | middle
    shift: bool = False
    ctrl: bool = False
    alt: bool = False
    double: bool = False

    @property
    def ix(self) -> int:
        return int(math.floor(self.x))

    @property
    def iy(self) -> int:
        return int(math.floor(self.y))


def combine(ed: EditorState, crop: Crop | None, p: Pointer | None, label: str) -> int | None:
    """Put an assist's or a shape's mask into the document.

    Plain: a new region of the current class, selected. Shift: added to the selected region.
    Ctrl or Alt: cut out of the selected region. Returns the region id touched.
    """
    doc = ed.doc
    if doc is None or crop is None:
        return None
    m, x, y = crop
    sel = ed.primary
    cut = p is not None and (p.ctrl or p.alt)
    if cut and sel is None:
        ed.message(f"{label}: Ctrl cuts from the selected region, and none is selected. Select one "
                   "first, or let go of Ctrl to make a new region")
        return None
    if p is not None and (p.shift or cut) and sel is not None:
        r = doc.regions[sel]
        box = maskops.box_union(r.box, (x, y, x + m.shape[1], y + m.shape[0]))
        cur = r.window(box)
        add = maskops.window(m, x, y, box)
        new = cur & ~add if cut else cur | add
        if (new == cur).all():
            ed.message(f"{label}: nothing cut, the shape does not overlap the selected region" if cut else
                       f"{label}: nothing added, the selected region covers the shape already")
            return sel
        doc.replace_mask(sel, new, box[0], box[1], label)
        ed.select([sel] if sel in doc.regions else [])
        return sel
    if ed.current_class_id is None:
        ed.message("Add a class first (Classes panel)")
        return None
    new_r = doc.new_region(ed.current_class_id, m, x, y, label=label)
    if new_r is None:
        ed.message(f"{label}: nothing inside the image, no region made")
        return None
    ed.select([new_r.id])
    return new_r.id


class Tool:
    name = "tool"
    label = "Tool"
    shortcut = ""
    tip = ""
    hint = ""  # one status-bar line shown when the tool is chosen: what buttons and modifiers do
    uses_brush = False

    def __init__(self, editor: EditorState) -> None:
        self.ed = editor
        editor.add_tool(self)  # so the editor can reset every tool (image change, undo, ...)

    def unused_button(self, p: Pointer) -> None:
        """A button this tool has no use for: say what the tool does instead of nothing."""
        self.ed.message(f"{p.button.capitalize()} button: nothing to do here. {self.hint or self.tip}")

    def press(self, p: Pointer) -> None: ...

    def move(self, p: Pointer, dragging: bool) -> None: ...

    def release(self, p: Pointer) -> None: ...

    def key(self, key: str) -> bool:
        return False

    def cancel(self) -> None: ...

    def preview(self) -> dict[str, Any]:
        """Shapes to draw over the canvas: {'circle': (x, y, r), 'poly': [...], 'closed': bool,
        'rect': (x0, y0, x1, y1), 'points': [(x, y, positive)]}."""
        return {}


class SelectTool(Tool):
    name, label, shortcut = "select", "Select", "V"
    tip = "Click a region to select it; Shift+click adds to the selection (for merge)"
    hint = ("Select: click a region to select it · Shift+click adds or removes one (to merge) · "
            "click empty space selects none")

    def press(self, p: Pointer) -> None:
        doc = self.ed.doc
        if doc is None:
            return
        if p.button != "left":
            self.unused_button(p)
            return
        r = doc.region_at(p.ix, p.iy, self.ed.visible)
        if p.shift:
            if r is not None:
                sel = list(self.ed.selected)
                sel.remove(r.id) if r.id in sel else sel.append(r.id)
                self.ed.select(sel)
            else:
                self.ed.message("No region here to add to the selection")
            return
        self.ed.select([r.id] if r else [])


class BrushTool(Tool):
    name, label, shortcut = "brush", "Brush", "B"
    tip = ("Paint into the selected region, or a new region of the current class. Ctrl paints away: "
           "from the selected region, or from every region under the brush when none is selected")
    hint = ("Brush: drag paints the current class (into the selected region when it has that class) · "
            "Ctrl+drag erases · [ ] brush size")
    uses_brush = True
    erase = False

    def __init__(self, editor: EditorState) -> None:
        super().__init__(editor)
        self.last: tuple[float, float] | None = None
        self.hover: tuple[float, float] | None = None
        self.value = True
        self.erased: set[int] = set()  # regions this erase stroke took pixels from
        self.only: list[int] | None = None  # the regions an erase stroke may touch; None: all

    def erase_targets(self, p: Pointer) -> list[int] | None | Literal[False]:
        """The regions a Ctrl+drag erases: the selection, or every visible one when none is."""
        doc = self.ed.doc
        assert doc is not None  # asked by press(), once a document is open
        sel = [i for i in self.ed.selected if i in doc.regions]
        return sel or None

    def press(self, p: Pointer) -> None:
        doc = self.ed.doc
        if doc is None:
            return
        if p.button != "left":
            self.unused_button(p)
            return
        erase = self.erase or p.ctrl
        target = self.ed.primary
        if erase:
            only = self.erase_targets(p)
            if only is False:
                return
            doc.begin_erase(only, self.ed.visible if only is None else None, "Erase")
            self.only, self.erased = only, set()
        elif target is not None and self.ed.current_class_id in (None, doc.regions[target].class_id):
            doc.begin_stroke(target)  # the selected region is of the current class: paint into it
        else:
            if self.ed.current_class_id is None:
                self.ed.message("Add a class first (Classes panel)")
                return
            target = doc.begin_new_stroke(self.ed.current_class_id)
        self.value = not erase
        self.last = (p.x, p.y)
        self._dab(p.x, p.y)

    def move(self, p: Pointer, dragging: bool) -> None:
        self.hover = (p.x, p.y)
        if self.last is not None and self.ed.doc is not None and self.ed.doc.stroking:
            self._dab(p.x, p.y)
        self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        doc = self.ed.doc
        if self.last is None or doc is None:
            return
        self.last = None
        if not self.value:  # an erase stroke: one undo step over every region it touched
            doc.end_stroke("Erase")
            self.ed.select([i for i in self.ed.selected if i in doc.regions])
            if not self.erased:
                self.ed.message("Nothing erased: the stroke did not touch the selected region" if self.only
                                else "Nothing erased: no visible region under the stroke")
            self.erased = set()
            return
        new = doc.stroke_is_new
        rid = doc.stroke_region_id
        doc.end_stroke("Brush stroke")
        if rid is not None and rid in doc.regions:
            self.ed.select([rid])
        elif rid is not None:
            self.ed.select([])
            if new:
                self.ed.message("Nothing painted: the stroke was outside the image")

    def cancel(self) -> None:
        if self.ed.doc is not None:
            self.ed.doc.cancel_stroke()
        self.last = None
        self.hover = None
        self.erased = set()

    def _dab(self, x: float, y: float) -> None:
        # brush centred on the pixel under the pointer
        doc = self.ed.doc
        assert self.last is not None and doc is not None  # called inside a stroke
        p0 = (self.last[0] - 0.5, self.last[1] - 0.5)
        p1 = (x - 0.5, y - 0.5)
        stamp, box = maskops.segment_stamp(p0, p1, self.ed.brush_radius)
        if self.value:
            doc.stroke_paint(stamp, box, True)
        else:
            self.erased.update(doc.erase_paint(stamp, box))
        self.last = (x, y)

    def preview(self) -> dict[str, Any]:
        if self.hover is None:
            return {}
        return {"circle": (self.hover[0], self.hover[1], self.ed.brush_radius)}


class EraserTool(BrushTool):
    name, label, shortcut = "eraser", "Eraser", "E"
    tip = ("Erase what the brush passes over: every visible region under it, whatever its class. "
           "Shift+drag erases only from the selected region(s)")
    hint = ("Eraser: drag erases every visible region under the brush · Shift+drag erases only the "
            "selected region · [ ] brush size")
    erase = True

    def erase_targets(self, p: Pointer) -> list[int] | None | Literal[False]:
        if not p.shift:
            return None
        doc = self.ed.doc
        assert doc is not None  # asked by press(), once a document is open
        sel = [i for i in self.ed.selected if i in doc.regions]
        if not sel:
            self.ed.message("Shift+drag erases only the selected region, and none is selected: select "
                            "one first, or drag without Shift to erase every region under the brush")
            return False
        return sel


class PolygonTool(Tool):
    name, label, shortcut = "polygon", "Polygon", "P"
    tip = ("Click vertices; Enter or double-click closes; Backspace removes the last point; Esc cancels. "
           "Shift adds to the selected region, Ctrl cuts from it")
    hint = ("Polygon: click vertices · Enter or double-click closes · Backspace or right-click removes "
            "the last point · Esc cancels · Shift adds to the selected region, Ctrl cuts from it")

    def __init__(self, editor: EditorState) -> None:
        super().__init__(editor)
        self.points: list[tuple[float, float]] = []
        self.hover: tuple[float, float] | None = None
        self.mods: Pointer | None = None

    def press(self, p: Pointer) -> None:
        if p.button == "right":
            if not self.key("Backspace"):
                self.ed.message("Right-click removes the last point, and there is none yet")
            return
        if p.button != "left":
            self.unused_button(p)
            return
        self.mods = p
        if p.double:
            self.finish()
            return
        self.points.append((p.x - 0.5, p.y - 0.5))
        self.ed.preview_changed()

    def move(self, p: Pointer, dragging: bool) -> None:
        self.hover = (p.x - 0.5, p.y - 0.5)
        self.ed.preview_changed()

    def key(self, key: str) -> bool:
        if key in ("Return", "Enter"):
            return self.finish()
        if key == "Escape":
            had = bool(self.points)
            self.cancel()
            return had
        if key == "Backspace" and self.points:
            self.points.pop()
            self.ed.preview_changed()
            return True
        return False

    def finish(self) -> bool:
        pts = self.points
        self.points = []
        self.ed.preview_changed()
        if len(pts) < 3:
            if pts:
                self.ed.message("A polygon needs 3 points or more")
            return bool(pts)
        pm = maskops.polygon_mask(pts)
        if pm is None:
            self.ed.message("That polygon encloses no pixels")
            return True
        m, box = pm
        combine(self.ed, (m, box[0], box[1]), self.mods, "Polygon")
        return True

    def cancel(self) -> None:
        self.points = []
        self.ed.preview_changed()

    def preview(self) -> dict[str, Any]:
        if not self.points:
            return {}
        pts = list(self.points) + ([self.hover] if self.hover else [])
        return {"poly": [(x + 0.5, y + 0.5) for x, y in pts], "closed": False}


class LassoTool(PolygonTool):
    name, label, shortcut = "lasso", "Lasso", "L"
    tip = "Drag around an area; releasing closes it. Shift adds to the selected region, Ctrl cuts"
    hint = "Lasso: drag around an area, release to close it · Shift adds to the selected region, Ctrl cuts from it"

    def press(self, p: Pointer) -> None:
        if p.button != "left":
            self.unused_button(p)
            return
        self.mods = p
        self.points = [(p.x - 0.5, p.y - 0.5)]

    def move(self, p: Pointer, dragging: bool) -> None:
        if dragging and self.points:
            lx, ly = self.points[-1]
            if abs(p.x - 0.5 - lx) + abs(p.y - 0.5 - ly) >= 1.0:
                self.points.append((p.x - 0.5, p.y - 0.5))
                self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if self.points:
            self.finish()

    def preview(self) -> dict[str, Any]:
        return {"poly": [(x + 0.5, y + 0.5) for x, y in self.points], "closed": False} if self.points else {}


class WandTool(Tool):
    name, label, shortcut = "wand", "Magic wand", "W"
    tip = "Click to fill similar connected pixels (tolerance in the toolbar). Shift adds, Ctrl cuts"
    hint = ("Magic wand: click fills similar connected pixels (tolerance in the toolbar) · Shift adds "
            "to the selected region, Ctrl cuts from it")

    def press(self, p: Pointer) -> None:
        ed = self.ed
        if ed.image is None:
            return
        if p.button != "left":
            self.unused_button(p)
            return
        h, w = ed.image.shape[:2]
        if not (0 <= p.ix < w and 0 <= p.iy < h):
            ed.message("Magic wand: click inside the image")
            return
        tol = ed.wand_tolerance / 100.0 * ed.value_range()
        img, x, y = ed.image, p.ix, p.iy
        ed.run_assist(lambda: classical.magic_wand(img, x, y, tol), lambda crop: self._done(crop, p), "Magic wand")

    def _done(self, crop: Crop | None, p: Pointer) -> None:
        if crop is None:
            self.ed.message("Magic wand found nothing to fill there")
            return
        combine(self.ed, crop, p, "Magic wand")
