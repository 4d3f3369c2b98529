"""The assisted tools: GrabCut from a box, an object from clicks (classical.click_segment),
watershed split, and the model prompt (click or box on what the model proposed; a box where it
proposed nothing goes to GrabCut, said so). Each runs its heavy part through
`EditorState.run_assist`, off the GUI thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segstudio.core import maskops
from segstudio.editing.box_drag import BoxDrag
from segstudio.editing.editor import CLASSES, INSTANCES, PROMPTABLE, EditorState
from segstudio.editing.prompt_tool import MIN_BOX, SamPrompts
from segstudio.editing.tools import Pointer, Tool, combine
from segstudio.editing import classical

if TYPE_CHECKING:
    import numpy as np

    from segstudio.core.maskops import Box
    from segstudio.editing.classical import Crop
    from segstudio.inference.runtime.segmenter import Detection

MIN_SEED_RADIUS = 2  # px: the Clicks tool's click discs are half the brush radius, never thinner than this
# The Model click tool with no model loaded says so and adds nothing: it used to run GrabCut in
# silence, so after a model failed to load a click put a GrabCut region on the image (a done one
# too) that the user took for the model's. GrabCut has its own tools (G, R).
NO_MODEL = ("Model click: no click model is loaded to answer it: choose one in the Model panel's Click model and "
            "load it (or the pre-label model's answer, with a pre-label model loaded), "
            "or use Box → GrabCut (G) or Clicks → object (R)")
PICK_BOX_COVER = 0.8  # a dragged box picks the model proposals it covers at least this part of


class BoxGrabCutTool(Tool):
    name, label, shortcut = "grabcut", "Box → GrabCut", "G"
    tip = "Drag a box around an object: GrabCut segments it. Shift adds to the selected region"
    hint = "Box → GrabCut: drag a box around one object · Shift adds the result to the selected region"

    def __init__(self, editor: EditorState) -> None:
        super().__init__(editor)
        self.drag = BoxDrag(classical.MIN_BOX_SIDE)  # a thinner box holds no object
        self.mods: Pointer | None = None

    def press(self, p: Pointer) -> None:
        if p.button == "left":
            self.drag.press(p.x, p.y)
            self.mods = p

    def move(self, p: Pointer, dragging: bool) -> None:
        if dragging and self.drag.move(p.x, p.y):
            self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if not self.drag.active:
            return
        box = self.drag.release(p.x, p.y)
        self.ed.preview_changed()
        ed = self.ed
        if ed.image is None or box is None:
            return
        img, window, mods = ed.image, ed.window, self.mods
        ed.run_assist(lambda: self.segment(img, box, window), lambda result: self._done(result, mods), "GrabCut")

    @staticmethod
    def segment(img: np.ndarray, box: Box, window: tuple[float, float] | None) -> tuple[Crop | None, str | None]:
        """On the worker: the object in the box, or None and the reason said in the window."""
        crop = classical.grabcut_box(img, box, window=window)
        return crop, (None if crop is not None else classical.grabcut_failure(img, box, window))

    def _done(self, result: tuple[Crop | None, str | None], mods: Pointer | None) -> None:
        crop, why = result
        if crop is None:
            self.ed.message(why or "GrabCut found no object in that box")
            return
        combine(self.ed, crop, mods, "GrabCut")

    def cancel(self) -> None:
        self.drag.cancel()
        self.ed.preview_changed()

    def preview(self) -> dict[str, Any]:
        rect = self.drag.rect()
        return {"rect": rect} if rect is not None else {}


class ClickObjectTool(Tool):
    """Clicks → object: classical.click_segment (no trained model). A first left-click makes the
    object under it; each later click corrects the region near itself: left-click where it is
    missing, right-click where it overflows."""
    name, label, shortcut = "refine", "Clicks → object", "R"
    tip = ("Left-click an object to select it, then left-click what it misses and right-click (or "
           "Ctrl+click) what it takes too much; each click changes the region near itself. "
           "Works on the selected region, or makes a new one. Esc forgets the clicks")
    hint = ("Clicks → object: left-click an object · then left-click what is missing, right-click or "
            "Ctrl+click what is too much · refines the selected region or makes a new one · "
            "Esc forgets the clicks")

    def __init__(self, editor: EditorState) -> None:
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
            ed.message("Clicks → object: background marked; now left-click the object itself")
            return
        img, window = ed.image, ed.window
        pos, negs = list(self.positive), list(self.negative)
        radius = max(MIN_SEED_RADIUS, int(ed.brush_radius // 2))
        ed.run_assist(lambda: classical.click_segment(img, current, pos, negs, radius=radius, window=window),
                      self._done, "Clicks → object")

    def _done(self, crop: Crop | None) -> None:
        ed = self.ed
        doc = ed.doc
        assert doc is not None  # an assist runs on the open document
        if crop is None:
            ed.message("Clicks → object found nothing at those clicks: left-click inside the object "
                       "(on a flat area there is nothing to separate)")
            return
        m, x, y = crop
        if self.region_id is not None and self.region_id in doc.regions:
            doc.replace_mask(self.region_id, m, x, y, "Clicks → object")
            ed.select([self.region_id] if self.region_id in doc.regions else [])
        else:
            self.region_id = combine(ed, crop, None, "Clicks → object")

    def key(self, key: str) -> bool:
        if key == "Escape" and (self.positive or self.negative):
            self.cancel()
            return True
        return False

    def cancel(self) -> None:
        self.positive, self.negative = [], []
        self.ed.preview_changed()

    def preview(self) -> dict[str, Any]:
        pts = [(x + 0.5, y + 0.5, True) for x, y in self.positive] + \
              [(x + 0.5, y + 0.5, False) for x, y in self.negative]
        return {"points": pts} if pts else {}


class WatershedTool(Tool):
    name, label, shortcut = "watershed", "Watershed split", "S"
    tip = "Click one seed per object inside the selected region, then Enter splits it (marker watershed)"
    hint = ("Watershed split: click one seed per object inside the selected region, then Enter splits it · "
            "Esc forgets the seeds")

    def __init__(self, editor: EditorState) -> None:
        super().__init__(editor)
        self.seeds: list[tuple[float, float]] = []

    def press(self, p: Pointer) -> None:
        if self.ed.doc is None:
            return
        if p.button != "left":
            self.unused_button(p)
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
        if key in ("Return", "Enter"):
            if not self.seeds:
                self.ed.message("Watershed: click one seed per object inside the selected region first, "
                                "then Enter")
                return True
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
        assert ed.doc is not None  # a selection (primary) needs an open document
        r = ed.doc.regions[rid]
        crop = (r.mask.copy(), r.x, r.y)
        img, window = ed.image, ed.window
        ed.run_assist(lambda: classical.watershed_split(img, crop, seeds, window),
                      lambda parts: self._done(rid, parts), "Watershed")

    def _done(self, rid: int, parts: list[Crop]) -> None:
        doc = self.ed.doc
        assert doc is not None  # an assist runs on the open document
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

    def preview(self) -> dict[str, Any]:
        return {"points": [(x + 0.5, y + 0.5, True) for x, y in self.seeds]} if self.seeds else {}


class PromptTool(Tool):
    name, label, shortcut = "prompt", "Model click / box", "I"
    tip = ("Click an object: the model's instance (Mask R-CNN) or class area (UNet) under the cursor "
           "becomes a region. Drag a box: the best instance inside it. Needs a model loaded (Model panel). "
           "Segment Anything: left click +, right click −, drag a box, Tab, Enter")
    hint = ("Model: click an object to take the model's region there · drag a box for the best instance "
            "inside it (Mask R-CNN) · Segment Anything: left click adds, right click removes, drag a box, "
            "Tab cycles, Enter accepts · needs a model loaded in the Model panel")

    def __init__(self, editor: EditorState) -> None:
        super().__init__(editor)
        self.drag = BoxDrag(MIN_BOX)  # a shorter drag is a click
        self.sam = SamPrompts(editor)

    def _promptable(self) -> bool:
        return self.ed.click_answer() == PROMPTABLE

    def key(self, key: str) -> bool:
        return self._promptable() and self.sam.key(key)

    def press(self, p: Pointer) -> None:
        if self._promptable():
            self.sam.press(p)
        elif p.button == "left":
            self.drag.press(p.x, p.y)
        else:
            self.unused_button(p)

    def move(self, p: Pointer, dragging: bool) -> None:
        if self._promptable():
            self.sam.move(p, dragging)
        elif dragging and self.drag.move(p.x, p.y):
            self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if self._promptable():
            self.sam.release(p)
            return
        if not self.drag.active:
            return
        box = self.drag.release(p.x, p.y)  # None: a click
        self.ed.preview_changed()
        self.answer(box, Pointer(p.x, p.y, shift=p.shift, ctrl=p.ctrl))

    def answer(self, box: Box | None, p: Pointer) -> None:
        ed = self.ed
        # only what the user chose answers: with no click model (or one not loaded yet) a click never
        # falls back to the pre-label model or to GrabCut in silence
        if ed.click_answer() not in (INSTANCES, CLASSES) or not ed.model_loaded():
            ed.message(NO_MODEL)
            return
        if box is not None and ed.click_answer() == CLASSES:
            ed.message("A UNet labels classes, not boxes: click inside an area instead, or load a Mask R-CNN")
            return
        cands = ed.model_candidates()
        if cands is None:
            ed.message("Asking the model…")
            ed.request_model_candidates(lambda: self.answer(box, p))
            return
        det = self.pick(cands, box, p)
        if det is None:
            if box is None and ed.click_answer() == CLASSES:
                ed.message("The UNet labels this pixel background: click inside a class area")
                return
            ed.message("The model proposes nothing there" + ("; GrabCut instead" if box else ""))
            if box is not None:
                self._fallback(box, p)
            return
        rid = ed.accept_detection(det)
        if rid is not None:
            ed.select([rid])

    @staticmethod
    def pick(cands: list[Detection], box: Box | None, p: Pointer) -> Detection | None:
        if box is None:
            hits = [d for d in cands if d.contains(p.ix, p.iy)]
            return max(hits, key=lambda d: d.score) if hits else None
        inside = []
        for d in cands:
            inter = maskops.box_intersect(d.box, box)
            if inter is not None and maskops.box_area(inter) >= PICK_BOX_COVER * maskops.box_area(d.box):
                inside.append(d)
        return max(inside, key=lambda d: (d.score, int(d.mask.sum()))) if inside else None

    def _fallback(self, box: Box, p: Pointer) -> None:
        """A dragged box where the model proposed nothing: GrabCut in the box (a click there is
        only said: the Clicks → object tool (R) is the classical click)."""
        ed = self.ed
        if ed.image is None:
            return
        img, window = ed.image, ed.window
        ed.run_assist(lambda: classical.grabcut_box(img, box, window=window),
                      lambda crop: self._fallback_done(crop, p), "GrabCut")

    def _fallback_done(self, crop: Crop | None, p: Pointer) -> None:
        if crop is None:
            self.ed.message("The model proposes nothing there, and GrabCut found no object in that box")
            return
        combine(self.ed, crop, p, "GrabCut")

    def cancel(self) -> None:
        if self.sam.active or self.sam.cands is not None:
            self.sam.cancel()
        if self.drag.active:
            self.drag.cancel()
            self.ed.preview_changed()

    def preview(self) -> dict[str, Any]:
        if self._promptable():
            return self.sam.preview()
        rect = self.drag.rect()
        return {"rect": rect} if rect is not None else {}
