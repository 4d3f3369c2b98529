"""The open project in the window: which image is shown, its Document, decoding ahead and
saving behind. Decoding runs on worker threads; saving runs on one writer thread so edits reach
the store within about a second without stalling the GUI."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from segstudio.core import imageio
from segstudio.core.document import Document
from segstudio.core.project import Project
from segstudio.core.records import IN_PROGRESS, NEW, PREDICTED, ImageRecord
from segstudio.gui.canvas import pyramid
from segstudio.gui.workers import Background

log = logging.getLogger(__name__)

AUTOSAVE_MS = 400


@dataclass
class LoadedImage:
    record: ImageRecord
    array: np.ndarray  # as decoded (uint8 / uint16 / float32)
    window: tuple[float, float] | None  # display window for non-8-bit images
    levels: list  # [(factor, uint8 display array)], full size first

    @property
    def nbytes(self) -> int:
        return self.array.nbytes + sum(a.nbytes for _, a in self.levels if a is not self.array)


def load_image(project: Project, rec: ImageRecord, window=None) -> LoadedImage:
    """Decode and prepare an image for display (runs on a worker thread)."""
    arr = project.load_image(rec)
    if arr.dtype != np.uint8 and window is None:
        window = imageio.auto_window(arr)
    display = imageio.to_display(arr, window) if arr.dtype != np.uint8 else arr
    display = np.ascontiguousarray(display)
    return LoadedImage(project.store.image(rec.id), arr, window, pyramid(display))


class Session(QObject):
    image_shown = Signal(object, object)  # LoadedImage, Document
    image_failed = Signal(object, str)  # ImageRecord, message
    saved_state = Signal(bool)  # True when everything is in the store
    save_failed = Signal(str)
    status_changed = Signal(int, str)  # image id, new status

    def __init__(self, project: Project, cache_bytes: int = 1 << 30, parent=None):
        super().__init__(parent)
        self.project = project
        self.loader = Background(2, "segstudio-decode", self)
        self.saver = Background(1, "segstudio-save", self)
        self.cache: OrderedDict[int, LoadedImage] = OrderedDict()
        self.cache_bytes = cache_bytes
        self.pending: dict[int, Future] = {}
        self.requested: int | None = None
        self.current: LoadedImage | None = None
        self.doc: Document | None = None
        self._save_futures: list[Future] = []
        self._was_saved = True
        self.timer = QTimer(self)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave_tick)
        self.timer.start()
        self.load_started_at = 0.0
        self.histories: OrderedDict = OrderedDict()  # image id -> UndoStack
        self.history_bytes = 512 * 1024 * 1024

    # ---------------------------------------------------------------- images
    def open(self, image_id: int) -> None:
        """Show an image: at once when decoded ahead, else when its worker finishes."""
        self.flush()
        self.requested = image_id
        self.load_started_at = time.perf_counter()
        if image_id in self.cache:
            self.cache.move_to_end(image_id)
            self._show(self.cache[image_id])
        elif image_id not in self.pending:
            self._submit(image_id)

    def prefetch(self, image_ids) -> None:
        for i in image_ids:
            if i is not None and i not in self.cache and i not in self.pending:
                self._submit(i)

    def _submit(self, image_id: int) -> None:
        try:
            rec = self.project.store.image(image_id)
        except KeyError:
            return
        window = self.current.window if (self.current is not None and self.current.record.id == image_id) else None
        fut = self.loader.submit(lambda: load_image(self.project, rec, window),
                                 self._loaded, lambda e, r=rec: self._failed(r, e))
        self.pending[image_id] = fut

    def _loaded(self, li: LoadedImage) -> None:
        self.pending.pop(li.record.id, None)
        self.cache[li.record.id] = li
        self._trim()
        if li.record.id == self.requested:
            self._show(li)

    def _failed(self, rec: ImageRecord, e: BaseException) -> None:
        self.pending.pop(rec.id, None)
        if rec.id == self.requested:
            self.current, self.doc = None, None
            msg = str(e) if isinstance(e, imageio.ImageDecodeError) else f"{type(e).__name__}: {e}"
            self.image_failed.emit(self.project.store.image(rec.id), msg)

    def _trim(self) -> None:
        total = sum(li.nbytes for li in self.cache.values())
        while total > self.cache_bytes and len(self.cache) > 1:
            k, li = next(iter(self.cache.items()))
            if k == self.requested:
                self.cache.move_to_end(k)
                continue
            self.cache.pop(k)
            total -= li.nbytes

    def _show(self, li: LoadedImage) -> None:
        rec = self.project.store.image(li.record.id)
        li.record = rec
        h, w = li.array.shape[:2]
        regions = self.project.store.regions(rec.id)
        self.current = li
        self.doc = Document(rec.id, w, h, regions, self.project.store.new_region_id)
        # the image's undo history survives switching away and back (all histories together are
        # bounded by memory; the least recently used go first)
        history = self.histories.pop(rec.id, None)
        if history is not None:
            self.doc.undo_stack = history
        self.histories[rec.id] = self.doc.undo_stack
        self._trim_histories()
        self.image_shown.emit(li, self.doc)

    def _trim_histories(self) -> None:
        total = sum(h.nbytes for h in self.histories.values())
        while total > self.history_bytes and len(self.histories) > 1:
            _, h = self.histories.popitem(last=False)
            total -= h.nbytes

    def forget_histories(self) -> None:
        """Regions changed outside the editor (an import, a folder prediction): old undo steps
        would no longer fit them."""
        self.histories.clear()
        if self.doc is not None:
            self.doc.undo_stack.clear()
            self.histories[self.doc.image_id] = self.doc.undo_stack

    def set_window(self, window: tuple[float, float]) -> None:
        """New display window for the current (16-bit/float) image."""
        li = self.current
        if li is None or li.array.dtype == np.uint8:
            return
        li.window = window
        li.levels = pyramid(np.ascontiguousarray(imageio.to_display(li.array, window)))

    def reload_current(self) -> None:
        """Re-read the current image's regions (after an import or a model run wrote them)."""
        if self.current is not None:
            self.flush()
            self.forget_histories()
            self._show(self.current)

    def forget(self, image_id: int) -> None:
        self.cache.pop(image_id, None)

    # ---------------------------------------------------------------- saving
    def autosave_tick(self) -> None:
        doc = self.doc
        if doc is not None and doc.has_unsaved and not doc.stroking:
            self._save_async()
        self._emit_saved_state()

    def _save_async(self) -> None:
        doc, li = self.doc, self.current
        ups, dels = doc.take_dirty()
        status = None
        if li.record.status in (NEW, PREDICTED):
            status = IN_PROGRESS
            li.record = replace(li.record, status=status)
        store, image_id = self.project.store, doc.image_id

        def save():
            store.save_regions(image_id, ups, dels, status=status)
            return image_id

        def failed(e):
            doc.restore_dirty(ups, dels)  # kept in memory, tried again on the next tick
            self.save_failed.emit(f"Saving failed, will retry: {e}")

        fut = self.saver.submit(save, lambda _: self._emit_saved_state(), failed)
        self._save_futures = [f for f in self._save_futures if not f.done()] + [fut]
        if status is not None:
            self.status_changed.emit(image_id, status)

    def flush(self) -> None:
        """Everything edited so far is in the store when this returns (Ctrl+S, switching, closing)."""
        if self.doc is not None and self.doc.stroking:
            self.doc.end_stroke()
        if self.doc is not None and self.doc.has_unsaved:
            self._save_async()
        for f in list(self._save_futures):
            try:
                f.result(timeout=60)
            except Exception:
                pass
        self._save_futures = []
        self._emit_saved_state()

    @property
    def all_saved(self) -> bool:
        return not (self.doc is not None and self.doc.has_unsaved) and \
            not any(not f.done() for f in self._save_futures)

    def _emit_saved_state(self) -> None:
        s = self.all_saved
        if s != self._was_saved:
            self._was_saved = s
            self.saved_state.emit(s)

    def set_status(self, status: str) -> None:
        if self.current is None:
            return
        self.flush()
        rid = self.current.record.id
        self.project.store.set_status(rid, status)
        self.current.record = self.project.store.image(rid)
        self.status_changed.emit(rid, status)

    def close(self) -> None:
        self.timer.stop()
        self.flush()
        self.loader.shutdown(wait=False)
        self.saver.shutdown(wait=True)
