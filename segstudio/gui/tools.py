"""Editing tools as small state machines fed pointer events in image coordinates.

No Qt here: the canvas turns mouse events into `Pointer`s, and tests drive the tools directly.
Each drag or each completed shape is one undo step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from segstudio.core import maskops
from segstudio.gui.editor import EditorState
from segstudio.inference import classical


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


def combine(ed: EditorState, crop, p: Pointer | None, label: str) -> int | None:
    """Put an assist's or a shape's mask into the document.

    Plain: a new region of the current class, selected. Shift: added to the selected region.
    Ctrl or Alt: cut out of the selected region. Returns the region id touched.
    """
    doc = ed.doc
    if doc is None or crop is None:
        return None
    m, x, y = crop
    sel = ed.primary
    if p is not None and (p.shift or p.ctrl or p.alt) and sel is not None:
        r = doc.regions[sel]
        box = maskops.box_union(r.box, (x, y, x + m.shape[1], y + m.shape[0]))
        cur = r.window(box)
        add = maskops.window(m, x, y, box)
        new = cur | add if p.shift else cur & ~add
        doc.replace_mask(sel, new, box[0], box[1], label)
        ed.select([sel] if sel in doc.regions else [])
        return sel
    if ed.current_class_id is None:
        ed.message("Add a class first (Classes panel)")
        return None
    r = doc.new_region(ed.current_class_id, m, x, y, label=label)
    if r is None:
        return None
    ed.select([r.id])
    return r.id


class Tool:
    name = "tool"
    label = "Tool"
    shortcut = ""
    tip = ""
    uses_brush = False

    def __init__(self, editor: EditorState):
        self.ed = editor

    def press(self, p: Pointer) -> None: ...

    def move(self, p: Pointer, dragging: bool) -> None: ...

    def release(self, p: Pointer) -> None: ...

    def key(self, key: str) -> bool:
        return False

    def cancel(self) -> None: ...

    def preview(self) -> dict:
        """Shapes to draw over the canvas: {'circle': (x, y, r), 'poly': [...], 'closed': bool,
        'rect': (x0, y0, x1, y1), 'points': [(x, y, positive)]}."""
        return {}


class SelectTool(Tool):
    name, label, shortcut = "select", "Select", "V"
    tip = "Click a region to select it; Shift+click adds to the selection (for merge)"

    def press(self, p: Pointer) -> None:
        doc = self.ed.doc
        if doc is None:
            return
        r = doc.region_at(p.ix, p.iy, self.ed.visible)
        if p.shift:
            if r is not None:
                sel = list(self.ed.selected)
                sel.remove(r.id) if r.id in sel else sel.append(r.id)
                self.ed.select(sel)
            return
        self.ed.select([r.id] if r else [])


class BrushTool(Tool):
    name, label, shortcut = "brush", "Brush", "B"
    tip = "Paint into the selected region, or a new region of the current class; Ctrl paints away"
    uses_brush = True
    erase = False

    def __init__(self, editor):
        super().__init__(editor)
        self.last: tuple[float, float] | None = None
        self.hover: tuple[float, float] | None = None
        self.value = True

    def press(self, p: Pointer) -> None:
        doc = self.ed.doc
        if doc is None or p.button != "left":
            return
        erase = self.erase or p.ctrl
        target = self.ed.primary
        if erase:
            if target is None:
                r = doc.region_at(p.ix, p.iy, self.ed.visible)
                target = r.id if r else None
            if target is None:
                return
            doc.begin_stroke(target)
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
        rid = doc._stroke[0] if doc._stroke else None
        doc.end_stroke("Erase" if not self.value else "Brush stroke")
        if rid is not None and rid in doc.regions:
            self.ed.select([rid])
        elif rid is not None:
            self.ed.select([])

    def cancel(self) -> None:
        if self.ed.doc is not None:
            self.ed.doc.cancel_stroke()
        self.last = None

    def _dab(self, x: float, y: float) -> None:
        # brush centred on the pixel under the pointer
        p0 = (self.last[0] - 0.5, self.last[1] - 0.5)
        p1 = (x - 0.5, y - 0.5)
        stamp, box = maskops.segment_stamp(p0, p1, self.ed.brush_radius)
        self.ed.doc.stroke_paint(stamp, box, self.value)
        self.last = (x, y)

    def preview(self) -> dict:
        if self.hover is None:
            return {}
        return {"circle": (self.hover[0], self.hover[1], self.ed.brush_radius)}


class EraserTool(BrushTool):
    name, label, shortcut = "eraser", "Eraser", "E"
    tip = "Erase from the selected region (or the region under the cursor)"
    erase = True


class PolygonTool(Tool):
    name, label, shortcut = "polygon", "Polygon", "P"
    tip = ("Click vertices; Enter or double-click closes; Backspace removes the last point; Esc cancels. "
           "Shift adds to the selected region, Ctrl cuts from it")

    def __init__(self, editor):
        super().__init__(editor)
        self.points: list[tuple[float, float]] = []
        self.hover: tuple[float, float] | None = None
        self.mods: Pointer | None = None

    def press(self, p: Pointer) -> None:
        if p.button == "right":
            self.key("Backspace")
            return
        if p.button != "left":
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
            return True
        m, box = pm
        combine(self.ed, (m, box[0], box[1]), self.mods, "Polygon")
        return True

    def cancel(self) -> None:
        self.points = []
        self.ed.preview_changed()

    def preview(self) -> dict:
        if not self.points:
            return {}
        pts = list(self.points) + ([self.hover] if self.hover else [])
        return {"poly": [(x + 0.5, y + 0.5) for x, y in pts], "closed": False}


class LassoTool(PolygonTool):
    name, label, shortcut = "lasso", "Lasso", "L"
    tip = "Drag around an area; releasing closes it. Shift adds to the selected region, Ctrl cuts"

    def press(self, p: Pointer) -> None:
        if p.button != "left":
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

    def preview(self) -> dict:
        return {"poly": [(x + 0.5, y + 0.5) for x, y in self.points], "closed": False} if self.points else {}


class WandTool(Tool):
    name, label, shortcut = "wand", "Magic wand", "W"
    tip = "Click to fill similar connected pixels (tolerance in the toolbar). Shift adds, Ctrl cuts"

    def press(self, p: Pointer) -> None:
        ed = self.ed
        if ed.image is None or p.button != "left":
            return
        tol = ed.wand_tolerance / 100.0 * ed.value_range()
        img, x, y = ed.image, p.ix, p.iy
        ed.run_assist(lambda: classical.magic_wand(img, x, y, tol),
                      lambda crop: combine(ed, crop, p, "Magic wand"), "Magic wand")


class BoxGrabCutTool(Tool):
    name, label, shortcut = "grabcut", "Box → GrabCut", "G"
    tip = "Drag a box around an object: GrabCut segments it. Shift adds to the selected region"

    def __init__(self, editor):
        super().__init__(editor)
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.mods: Pointer | None = None

    def press(self, p: Pointer) -> None:
        if p.button == "left":
            self.start = self.end = (p.x, p.y)
            self.mods = p

    def move(self, p: Pointer, dragging: bool) -> None:
        if self.start is not None and dragging:
            self.end = (p.x, p.y)
            self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if self.start is None:
            return
        self.end = (p.x, p.y)
        box = self.box()
        self.start = self.end = None
        self.ed.preview_changed()
        ed = self.ed
        if ed.image is None or box is None:
            return
        img, window, mods = ed.image, ed.window, self.mods
        ed.run_assist(lambda: classical.grabcut_box(img, box, window=window),
                      lambda crop: self._done(crop, mods), "GrabCut")

    def _done(self, crop, mods) -> None:
        if crop is None:
            self.ed.message("GrabCut found no object in that box")
            return
        combine(self.ed, crop, mods, "GrabCut")

    def box(self):
        if self.start is None or self.end is None:
            return None
        x0, x1 = sorted((self.start[0], self.end[0]))
        y0, y1 = sorted((self.start[1], self.end[1]))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return None
        return int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))

    def cancel(self) -> None:
        self.start = self.end = None
        self.ed.preview_changed()

    def preview(self) -> dict:
        b = self.box()
        return {"rect": b} if b else {}


class ClickGrabCutTool(Tool):
    name, label, shortcut = "refine", "Clicks → GrabCut", "R"
    tip = ("Left-click marks object, right-click (or Ctrl+click) marks background; GrabCut refines "
           "the selected region, or makes a new one. Esc forgets the clicks")

    def __init__(self, editor):
        super().__init__(editor)
        self.positive: list[tuple[float, float]] = []
        self.negative: list[tuple[float, float]] = []
        self.region_id: int | None = None

    def press(self, p: Pointer) -> None:
        ed = self.ed
        if ed.image is None or ed.doc is None or p.button not in ("left", "right"):
            return
        if ed.primary != self.region_id:  # a new target: forget the old clicks
            self.positive, self.negative = [], []
            self.region_id = ed.primary
        neg = p.button == "right" or p.ctrl
        (self.negative if neg else self.positive).append((p.x - 0.5, p.y - 0.5))
        ed.preview_changed()
        current = None
        if self.region_id is not None and self.region_id in ed.doc.regions:
            r = ed.doc.regions[self.region_id]
            current = (r.mask.copy(), r.x, r.y)
        elif not self.positive:
            return
        img, window = ed.image, ed.window
        pos, negs = list(self.positive), list(self.negative)
        radius = max(2, int(ed.brush_radius // 2))
        ed.run_assist(lambda: classical.grabcut_refine(img, current, pos, negs, radius=radius, window=window),
                      self._done, "GrabCut refine")

    def _done(self, crop) -> None:
        ed = self.ed
        if crop is None:
            ed.message("GrabCut left nothing: add an object click")
            return
        m, x, y = crop
        if self.region_id is not None and self.region_id in ed.doc.regions:
            ed.doc.replace_mask(self.region_id, m, x, y, "GrabCut refine")
            ed.select([self.region_id] if self.region_id in ed.doc.regions else [])
        else:
            self.region_id = combine(ed, crop, None, "GrabCut refine")

    def key(self, key: str) -> bool:
        if key == "Escape" and (self.positive or self.negative):
            self.cancel()
            return True
        return False

    def cancel(self) -> None:
        self.positive, self.negative = [], []
        self.ed.preview_changed()

    def preview(self) -> dict:
        pts = [(x + 0.5, y + 0.5, True) for x, y in self.positive] + \
              [(x + 0.5, y + 0.5, False) for x, y in self.negative]
        return {"points": pts} if pts else {}


class WatershedTool(Tool):
    name, label, shortcut = "watershed", "Watershed split", "S"
    tip = "Click one seed per object inside the selected region, then Enter splits it (marker watershed)"

    def __init__(self, editor):
        super().__init__(editor)
        self.seeds: list[tuple[float, float]] = []

    def press(self, p: Pointer) -> None:
        if p.button != "left" or self.ed.doc is None:
            return
        if self.ed.primary is None:
            r = self.ed.doc.region_at(p.ix, p.iy, self.ed.visible)
            if r is None:
                self.ed.message("Select the region to split first")
                return
            self.ed.select([r.id])
        self.seeds.append((p.x - 0.5, p.y - 0.5))
        self.ed.preview_changed()

    def key(self, key: str) -> bool:
        if key in ("Return", "Enter") and self.seeds:
            self.split()
            return True
        if key == "Escape" and self.seeds:
            self.cancel()
            return True
        return False

    def split(self) -> None:
        ed, seeds = self.ed, self.seeds
        self.seeds = []
        ed.preview_changed()
        rid = ed.primary
        if rid is None or ed.image is None or len(seeds) < 2:
            ed.message("Watershed needs two seeds or more inside the selected region")
            return
        r = ed.doc.regions[rid]
        crop = (r.mask.copy(), r.x, r.y)
        img, window = ed.image, ed.window
        ed.run_assist(lambda: classical.watershed_split(img, crop, seeds, window),
                      lambda parts: self._done(rid, parts), "Watershed")

    def _done(self, rid: int, parts) -> None:
        doc = self.ed.doc
        if rid not in doc.regions or len(parts) < 2:
            self.ed.message("Watershed found one part only")
            return
        from segstudio.core.region import Region
        r = doc.regions[rid]
        parts = sorted(parts, key=lambda c: -int(c[0].sum()))
        ids = [rid]
        with doc.group("Watershed split"):
            m, x, y = parts[0]
            doc.replace_mask(rid, m, x, y)
            for m, x, y in parts[1:]:
                nr = Region(doc.new_region_id(), r.class_id, m, x, y, z=r.z, source=r.source, score=r.score)
                doc.add_region(nr)
                ids.append(nr.id)
        self.ed.select(ids)

    def cancel(self) -> None:
        self.seeds = []
        self.ed.preview_changed()

    def preview(self) -> dict:
        return {"points": [(x + 0.5, y + 0.5, True) for x, y in self.seeds]} if self.seeds else {}


class PromptTool(Tool):
    name, label, shortcut = "prompt", "Model click / box", "I"
    tip = ("Click an object: the model's instance (Mask R-CNN) or class area (UNet) under the cursor "
           "becomes a region. Drag a box: the best instance inside it. With no model, GrabCut answers")

    def __init__(self, editor):
        super().__init__(editor)
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.fallback_box = BoxGrabCutTool(editor)

    def press(self, p: Pointer) -> None:
        if p.button == "left":
            self.start = self.end = (p.x, p.y)

    def move(self, p: Pointer, dragging: bool) -> None:
        if self.start is not None and dragging:
            self.end = (p.x, p.y)
            self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if self.start is None:
            return
        start, end = self.start, (p.x, p.y)
        self.start = self.end = None
        self.ed.preview_changed()
        is_box = abs(end[0] - start[0]) >= 4 and abs(end[1] - start[1]) >= 4
        box = (int(min(start[0], end[0])), int(min(start[1], end[1])),
               int(math.ceil(max(start[0], end[0]))), int(math.ceil(max(start[1], end[1]))))
        self.answer(box if is_box else None, Pointer(*end, shift=p.shift, ctrl=p.ctrl))

    def answer(self, box, p: Pointer) -> None:
        ed = self.ed
        if not ed.model_loaded():
            self._fallback(box, p)
            return
        cands = ed.model_candidates()
        if cands is None:
            ed.message("Asking the model…")
            ed.request_model_candidates(lambda: self.answer(box, p))
            return
        det = self.pick(cands, box, p)
        if det is None:
            ed.message("The model proposes nothing there" + ("; GrabCut instead" if box else ""))
            if box is not None:
                self._fallback(box, p)
            return
        rid = ed.accept_detection(det)
        if rid is not None:
            ed.select([rid])

    @staticmethod
    def pick(cands, box, p: Pointer):
        if box is None:
            hits = [d for d in cands if d.contains(p.ix, p.iy)]
            return max(hits, key=lambda d: d.score) if hits else None
        inside = []
        for d in cands:
            inter = maskops.box_intersect(d.box, box)
            if inter is not None and maskops.box_area(inter) >= 0.8 * maskops.box_area(d.box):
                inside.append(d)
        return max(inside, key=lambda d: (d.score, int(d.mask.sum()))) if inside else None

    def _fallback(self, box, p: Pointer) -> None:
        ed = self.ed
        if ed.image is None:
            return
        img, window = ed.image, ed.window
        if box is not None:
            ed.run_assist(lambda: classical.grabcut_box(img, box, window=window),
                          lambda crop: combine(ed, crop, p, "GrabCut"), "GrabCut")
        else:
            pos = [(p.x - 0.5, p.y - 0.5)]
            ed.run_assist(lambda: classical.grabcut_refine(img, None, pos, [], window=window),
                          lambda crop: combine(ed, crop, None, "GrabCut click"), "GrabCut")

    def cancel(self) -> None:
        self.start = self.end = None

    def preview(self) -> dict:
        if self.start is None or self.end is None:
            return {}
        (x0, y0), (x1, y1) = self.start, self.end
        return {"rect": (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))}


TOOLS = [SelectTool, BrushTool, EraserTool, PolygonTool, LassoTool, WandTool, BoxGrabCutTool,
         ClickGrabCutTool, WatershedTool, PromptTool]
