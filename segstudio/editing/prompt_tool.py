"""Click to segment anything: the Model click / box tool while a promptable model (Segment
Anything) is loaded. Left click adds a positive point, right click a negative one, a drag gives
the box; every prompt asks the model thread for candidate masks and the preview shows the
current one. Tab cycles the candidates (and never moves the keyboard focus off the canvas),
Enter accepts one as a region of the current class (one undo step), Shift+Enter adds it to the
selected region, Esc clears. A first click on a region
already there refines that region: its box joins the prompts and Enter replaces its pixels.

Plain Python over EditorState (no Qt, no torch): the window answers `prompt_model` through its
model worker; the tests answer it themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segstudio.editing.box_drag import BoxDrag
from segstudio.editing.tools import Pointer, combine

if TYPE_CHECKING:
    import numpy as np

    from segstudio.core.maskops import Box
    from segstudio.editing.editor import EditorState

MIN_BOX = 4  # px each way: a shorter drag is a click
KEYS_HINT = "Tab next candidate · Enter accept · Shift+Enter add to the selected region · Esc clear"


class SamPrompts:
    def __init__(self, editor: EditorState) -> None:
        self.ed = editor
        self.points: list[tuple[float, float, bool]] = []
        self.box: Box | None = None
        self.refine: int | None = None  # the region being refined
        self.cands: Any = None  # inference.sam.Candidates of the current prompts
        self.index = 0
        self.asked = 0  # prompt generation: an answer to an older one is dropped
        self.drag = BoxDrag(MIN_BOX)

    @property
    def active(self) -> bool:
        return bool(self.points or self.box is not None or self.drag.active)

    # ---------------------------------------------------------------- mouse
    def press(self, p: Pointer) -> None:
        if p.button == "right":
            self._add_point(p, positive=False)
        elif p.button == "left":
            self.drag.press(p.x, p.y)

    def move(self, p: Pointer, dragging: bool) -> None:
        if dragging and self.drag.move(p.x, p.y):
            self.ed.preview_changed()

    def release(self, p: Pointer) -> None:
        if not self.drag.active:
            return
        box = self.drag.release(p.x, p.y)
        if box is not None:
            self.box = box
            self.ask()
        else:
            self._add_point(p, positive=True)

    def _add_point(self, p: Pointer, positive: bool) -> None:
        if not self.points and self.box is None and positive:
            self._maybe_refine(p)
        self.points.append((p.x, p.y, positive))
        self.ask()

    def _maybe_refine(self, p: Pointer) -> None:
        """A first click on a region already there (a model's, or drawn) refines it."""
        doc = self.ed.doc
        if doc is None:
            return
        hits = [r for r in doc.regions.values() if self.ed.visible(r) and r.contains(p.ix, p.iy)]
        if hits:
            r = max(hits, key=lambda r: r.z)
            self.refine, self.box = r.id, r.box
            self.ed.select([r.id])

    # ---------------------------------------------------------------- the model
    def ask(self) -> None:
        self.asked += 1
        n = self.asked
        self.ed.message(f"{self.ed.click_model_name()}: asking the model…")
        self.ed.prompt_model(list(self.points), self.box, lambda cands: self._answer(n, cands))
        self.ed.preview_changed()

    def _answer(self, n: int, cands: Any) -> None:
        if n != self.asked:
            return  # the prompts changed since: a newer answer is coming
        self.cands, self.index = cands, 0
        if cands is None or len(cands) == 0:
            self.ed.message(f"{self.ed.click_model_name()}: the model found nothing for these prompts")
        else:
            self._say()
        self.ed.preview_changed()

    def _say(self) -> None:
        c = self.cands
        what = f"refining region {self.refine}" if self.refine is not None else "new region"
        self.ed.message(f"{self.ed.click_model_name()} ({what}): candidate {self.index + 1}/{len(c)}, score "
                        f"{float(c.scores[self.index]):.2f} · {KEYS_HINT}")

    # ---------------------------------------------------------------- keys
    def key(self, key: str) -> bool:
        if key == "Tab":
            # always taken while this tool is active: Tab left to Qt would move the keyboard focus
            # off the canvas, and Enter would then no longer accept the candidate
            if self.cands is not None and len(self.cands) > 1:
                self.index = (self.index + 1) % len(self.cands)
                self._say()
                self.ed.preview_changed()
            elif self.cands is not None and len(self.cands) == 1:
                self.ed.message(f"{self.ed.click_model_name()}: this is the only candidate · Enter accept · Esc clear")
            else:
                self.ed.message(f"{self.ed.click_model_name()}: Tab cycles the candidates once a click or a box "
                                "has some")
            return True
        if key in ("Return", "Enter", "Shift+Return", "Shift+Enter") and self.active:
            self.accept(add=key.startswith("Shift"))
            return True
        if key == "Escape" and self.active:
            self.cancel()
            return True
        return False

    def accept(self, add: bool) -> int | None:
        if self.cands is None or len(self.cands) == 0:
            self.ed.message(f"{self.ed.click_model_name()}: no mask yet — wait for the preview, or add a prompt")
            return None
        crop: tuple[np.ndarray, int, int] | None = self.cands.crop(self.index)
        if crop is None:
            self.ed.message(f"{self.ed.click_model_name()}: this candidate is empty; Tab to another")
            return None
        doc, rid = self.ed.doc, None
        if self.refine is not None and not add and doc is not None and self.refine in doc.regions:
            rid = self.refine
            doc.replace_mask(rid, *crop, label=self.ed.click_model_name())  # the region's new pixels, one undo step
            self.ed.select([rid] if rid in doc.regions else [])
        else:
            rid = combine(self.ed, crop, Pointer(0, 0, shift=add), self.ed.click_model_name())
            if rid is None:  # nothing was made (no class yet: the message says so): the candidate stays
                return None
        self.cancel()
        return rid

    def cancel(self) -> None:
        self.points, self.box, self.refine, self.cands, self.index = [], None, None, None, 0
        self.drag.cancel()
        self.asked += 1  # an answer still on its way belongs to prompts that are gone
        self.ed.preview_changed()

    def preview(self) -> dict[str, Any]:
        shapes: dict[str, Any] = {}
        if self.points:
            shapes["points"] = list(self.points)
        rect = self.drag.rect()
        if rect is not None:
            shapes["rect"] = rect
        elif self.box is not None:
            shapes["rect"] = self.box
        if self.cands is not None and len(self.cands):
            crop = self.cands.crop(self.index)
            if crop is not None:
                shapes["mask"] = crop
        return shapes
