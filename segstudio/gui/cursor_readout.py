"""The status bar's readout of what is under the cursor: position, pixel value, the region
there, and the zoom. It is read again when the regions change (an undo, a redo, a stroke) and
when the image changes, emptied while no image is displayed and when the cursor leaves the
canvas, so it never names a region or a pixel that is no longer there or no longer under it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from PySide6.QtWidgets import QLabel, QStatusBar

if TYPE_CHECKING:
    from segstudio.editing.editor import EditorState


class CursorReadout:
    def __init__(self, bar: QStatusBar, editor: EditorState, class_name: Callable[[int], str | None]):
        self.editor, self.class_name = editor, class_name
        self.pos_label, self.value_label = QLabel(), QLabel()
        self.zoom_label, self.region_label = QLabel(), QLabel()
        for w in (self.region_label, self.value_label, self.pos_label, self.zoom_label):
            bar.addPermanentWidget(w)
        self.last: tuple[float, float] | None = None  # the cursor's last place, in image pixels

    def show_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f}%" if self.editor.image is not None else "")

    def refresh(self) -> None:
        """Read the place under the cursor again (the regions or the image changed under it)."""
        if self.editor.image is None:
            self.clear()
        elif self.last is not None:
            self.show_at(*self.last)

    def pointer_left(self) -> None:
        """The cursor is off the image: nothing under it to read out (the zoom stays), and a
        later refresh (an undo, another image shown from the keyboard) reads no stale place."""
        self.last = None
        self._clear_place()

    def image_changed(self, pointer_over: bool) -> None:
        """Another image is displayed: read the place under the cursor on it where the cursor is
        over the canvas; else nothing (a place from before names a pixel of another image)."""
        if pointer_over:
            self.refresh()
        else:
            self.pointer_left()

    def clear(self) -> None:
        """No image displayed: nothing to read out, the zoom included."""
        self._clear_place()
        self.zoom_label.setText("")

    def _clear_place(self) -> None:
        for label in (self.pos_label, self.value_label, self.region_label):
            label.setText("")

    def show_at(self, x: float, y: float) -> None:
        self.last = (x, y)
        img = self.editor.image
        if img is None:
            self.clear()
            return
        ix, iy = int(np.floor(x)), int(np.floor(y))
        h, w = img.shape[:2]
        if not (0 <= ix < w and 0 <= iy < h):
            self._clear_place()
            return
        self.pos_label.setText(f"x {ix}  y {iy}")
        v = img[iy, ix]
        if np.ndim(v) == 0:
            self.value_label.setText(f"value {v:.4g}" if img.dtype.kind == "f" else f"value {int(v)}")
        else:
            self.value_label.setText("RGB " + " ".join(str(int(c)) for c in v))
        doc = self.editor.doc
        r = doc.region_at(ix, iy, self.editor.visible) if doc is not None else None
        if r is None:
            self.region_label.setText("")
        else:
            name = self.class_name(r.class_id)
            # a region carried from another frame shows the object it is (its track) as well
            obj = f" (object {r.object_id})" if r.object_id != r.id else ""
            self.region_label.setText(f"{name if name else r.class_id} #{r.id}{obj}" +
                                      (f" {r.score:.2f}" if r.score is not None else ""))
