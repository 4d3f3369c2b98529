"""The open project in the window: which image is shown, its Document, decoding ahead and
saving behind. Decoding runs on worker threads; saving runs on one writer thread so edits reach
the store within about a second without stalling the GUI."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from segstudio.core import imageio
from segstudio.core.claims import OpenImageClaim, holder_gone
from segstudio.core.document import Document
from segstudio.core.errors import describe
from segstudio.core.project import Project
from segstudio.core.records import IN_PROGRESS, NEW, PREDICTED, ImageRecord
from segstudio.core.store import StoreError
from segstudio.gui.canvas import pyramid
from segstudio.gui.workers import Background, Failure

log = logging.getLogger(__name__)

AUTOSAVE_MS = 400
RETRY_FIRST_S = 1.0  # after a failed save, the next try; doubling up to RETRY_MAX_S
RETRY_MAX_S = 10.0
HISTORY_BYTES = 512 * 1024 * 1024  # undo history over all open images; the oldest images' go first


@dataclass
class LoadedImage:
    record: ImageRecord
    array: np.ndarray  # as decoded (uint8 / uint16 / float32)
    window: tuple[float, float] | None  # display window for non-8-bit images
    levels: list[tuple[int, np.ndarray]]  # [(factor, uint8 display array)], full size first

    @property
    def nbytes(self) -> int:
        return self.array.nbytes + sum(a.nbytes for _, a in self.levels if a is not self.array)


def load_image(project: Project, rec: ImageRecord, window: tuple[float, float] | None = None) -> LoadedImage:
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
    unreadable = Signal(int)  # image id: decoding it failed (shown or read ahead); the store has the error
    saved_state = Signal(bool)  # True when everything is in the store
    save_failed = Signal(str)  # "Could not save <image>: <reason>; retrying"
    save_recovered = Signal(str)  # the writes that failed went through after all
    status_changed = Signal(int, str)  # image id, new status

    def __init__(self, project: Project, cache_bytes: int = 1 << 30, parent: QObject | None = None) -> None:
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
        self._jobs: list[_SaveJob] = []  # saves submitted and not settled yet, oldest first
        self.held: dict[int, Document] = {}  # image id -> document not shown, with edits not in the store
        self.save_errors: dict[int, str] = {}  # image id -> why its last save failed
        self._pending_status: dict[int, str] = {}  # image id -> status whose write failed
        self._backoff: dict[int, float] = {}
        self._retry_at: dict[int, float] = {}
        self._paths: dict[int, str] = {}
        self._was_saved = True
        self._was_failing = False
        self.timer = QTimer(self)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave_tick)
        self.timer.start()
        self.load_started_at = 0.0
        self.histories: OrderedDict = OrderedDict()  # image id -> UndoStack
        # image id -> its status when its undo history began: undoing back to there restores it
        self.base_status: dict[int, str] = {}
        self.history_bytes = HISTORY_BYTES
        # the shown image is held in the store: no predictor, in any process, writes under it
        self.claim = OpenImageClaim(project.store)
        # the image last opened -> the other live holders that have it open too (another window,
        # another process): the window says so while it is shown
        self.open_elsewhere: tuple[int, list[str]] | None = None
        self.closed = False
        # on a store with exclusive claims: the image last opened -> who edits it (it is read-only here)
        self.locked: tuple[int, list[str]] | None = None

    # ---------------------------------------------------------------- images
    def open(self, image_id: int) -> None:
        """Show an image: at once when decoded ahead, else when its worker finishes. The shown
        image's edits are written first; when its store writes are failing they stay held in
        memory (retried by the timer) rather than making the switch wait on the store again."""
        doc = self.doc
        if doc is not None:
            if doc.image_id in self.save_errors:
                if doc.stroking:
                    doc.end_stroke()
            else:
                self.flush(docs=[doc])
        others = [o for o in self.claim.hold(image_id) if not holder_gone(o)]  # before its regions are read
        # a team's store: another owner edits it, so it opens read-only here (not claimed); a
        # SQLite project shares it and says so (open_elsewhere)
        exclusive = self.project.store.exclusive_claims
        self.locked = (image_id, others) if exclusive and others else None
        self.open_elsewhere = None if exclusive else (image_id, others)
        self.requested = image_id
        self.load_started_at = time.perf_counter()
        if image_id in self.cache:
            self.cache.move_to_end(image_id)
            self._show(self.cache[image_id])
        elif image_id not in self.pending:
            self._submit(image_id)

    def recheck_open_elsewhere(self) -> None:
        """Read again who else holds the image last opened (another window may have opened it
        since, or closed it). A store that cannot be read keeps what was known."""
        if self.open_elsewhere is None:
            return
        image_id = self.open_elsewhere[0]
        try:
            held = self.project.store.image_holders(image_id, except_owner=self.claim.owner)
        except StoreError as e:
            log.warning("could not read who else has the image open: %s", e)
            return
        self.open_elsewhere = (image_id, [o for o in held if not holder_gone(o)])

    @property
    def read_only(self) -> bool:
        """The shown image is being edited by another owner (a team's store): no edits, no saves."""
        return self.locked is not None and self.current is not None and self.current.record.id == self.locked[0]

    def recheck_lock(self) -> bool:
        """On a store with exclusive claims, ask again who edits the image last opened: a read-only one
        is claimed as soon as its holder has left (and its regions read again), an editable one turns
        read-only when a lead took it over. True when that changed."""
        image_id = self.requested
        if not self.project.store.exclusive_claims or image_id is None:
            return False
        was = self.locked
        if was is not None and was[0] == image_id:
            others = [o for o in self.claim.hold(image_id) if not holder_gone(o)]
            self.locked = (image_id, others) if others else None
            if self.locked is None:
                self.reread([image_id])
        else:
            try:
                holders = self.project.store.image_holders(image_id)
            except StoreError as e:
                log.warning("could not read who edits the image: %s", e)
                return False
            others = [o for o in holders if o != self.claim.owner and not holder_gone(o)]
            self.locked = (image_id, others) if others and self.claim.owner not in holders else None
        return self.locked != was

    def prefetch(self, image_ids: Iterable[int | None]) -> None:
        for i in image_ids:
            if i is not None and i not in self.cache and i not in self.pending:
                self._submit(i)

    def _submit(self, image_id: int) -> None:
        if self.closed:  # a shown image's read-ahead arriving after the window closed (Open folder)
            return
        try:
            rec = self.project.store.image(image_id)
        except KeyError:
            return
        window = self.current.window if (self.current is not None and self.current.record.id == image_id) else None
        def failed(f: Failure) -> None:
            self._failed(rec, f.error)
        fut = self.loader.submit(lambda: load_image(self.project, rec, window), self._loaded, failed)
        self.pending[image_id] = fut

    def _loaded(self, li: LoadedImage) -> None:
        self.pending.pop(li.record.id, None)
        self.cache[li.record.id] = li
        self._trim()
        if li.record.id == self.requested:
            self._show(li)

    def _failed(self, rec: ImageRecord, e: BaseException) -> None:
        self.pending.pop(rec.id, None)
        self.unreadable.emit(rec.id)
        if rec.id == self.requested:
            if self.doc is not None:
                self._hold(self.doc)
            self.current, self.doc = None, None
            msg = describe(e)
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
        """Make `li` the current image: its regions as the store has them, with the edits the
        store does not have yet (a failed save, held in memory) on top."""
        rec = self.project.store.image(li.record.id)
        li.record = rec
        self._paths[rec.id] = rec.path
        h, w = li.array.shape[:2]
        old = self.doc
        if old is not None and old.image_id != rec.id:
            self._hold(old)
        kept = self.held.pop(rec.id, None)
        if kept is None and old is not None and old.image_id == rec.id:
            kept = old
        if kept is not None and self._in_flight(kept):  # a write still running settles into it
            doc = kept
        else:
            doc = Document(rec.id, w, h, self.project.store.regions(rec.id), self.project.store.new_region_id)
            if kept is not None and kept.has_unsaved:
                _carry_unsaved(kept, doc)
        self.current = li
        self.doc = doc
        # the image's undo history survives switching away and back (all histories together are
        # bounded by memory; the least recently used go first)
        history = self.histories.pop(rec.id, None)
        if history is not None:
            self.doc.undo_stack = history
        else:
            self.base_status[rec.id] = rec.status
        self.histories[rec.id] = self.doc.undo_stack
        self._trim_histories()
        self.image_shown.emit(li, self.doc)

    def _trim_histories(self) -> None:
        total = sum(h.nbytes for h in self.histories.values())
        while total > self.history_bytes and len(self.histories) > 1:
            k, h = self.histories.popitem(last=False)
            self.base_status.pop(k, None)
            total -= h.nbytes

    def forget_histories(self) -> None:
        """Regions changed outside the editor (an import, a folder prediction): old undo steps
        would no longer fit them."""
        self.histories.clear()
        self.base_status.clear()
        if self.doc is not None:
            self.doc.undo_stack.clear()
            self.histories[self.doc.image_id] = self.doc.undo_stack
            if self.current is not None:
                self.base_status[self.doc.image_id] = self.project.store.image(self.doc.image_id).status

    def reread(self, image_ids: Iterable[int]) -> None:
        """These images' regions changed in the store outside the editor (a propagation, or its
        undo): their undo histories no longer fit them, and the shown one is read again."""
        ids = set(image_ids)
        for i in ids:
            self.histories.pop(i, None)
            self.base_status.pop(i, None)
        if self.current is not None and self.current.record.id in ids:
            self.flush(docs=[self.doc] if self.doc is not None else [])
            self._show(self.current)

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
    #
    # Every edit lives in a Document until the store has it. A save takes the document's dirty
    # regions and writes them on the writer thread; when the write fails they go back into the
    # same Document (restore_dirty), which stays in memory - as the current document, or in
    # `held` once the user has moved to another image - and is written again by the timer with
    # a growing pause, until it succeeds. Nothing is dropped until the store has it; closing
    # asks first (MainWindow.closeEvent).

    def autosave_tick(self) -> None:
        now = time.monotonic()
        for doc in self._live_docs():
            # one write in flight per document: edits made meanwhile go in the next one
            if not doc.stroking and self._needs_write(doc) and not self._in_flight(doc) and \
                    now >= self._retry_at.get(doc.image_id, 0.0):
                self._save_async(doc)
        self._emit_saved_state()

    def _live_docs(self) -> list[Document]:
        docs = list(self.held.values())
        if self.doc is not None and self.doc.image_id not in self.held:
            docs.append(self.doc)
        return docs

    def _needs_write(self, doc: Document) -> bool:
        return doc.has_unsaved or doc.image_id in self._pending_status

    def _in_flight(self, doc: Document) -> bool:
        return any(j.doc is doc for j in self._jobs)

    def _save_async(self, doc: Document) -> _SaveJob:
        ups, dels = doc.take_dirty()
        status = self._pending_status.pop(doc.image_id, None)
        li = self.current
        if status is None and doc is self.doc and li is not None and li.record.id == doc.image_id:
            status = self._edit_status(doc, li.record.status)
            if status is not None:
                li.record = replace(li.record, status=status)
        job = _SaveJob(doc, ups, dels, status)
        store, image_id, owner = self.project.store, doc.image_id, self.claim.owner

        def save() -> _SaveJob:
            try:
                store.save_regions(image_id, ups, dels, status=status, owner=owner)  # refused under another's claim
            except BaseException as e:  # settled on the GUI thread: the edits go back to doc  # noqa: BLE001
                job.error = e
            return job

        self._jobs.append(job)
        job.future = self.saver.submit(save, self._settle)
        return job

    def _edit_status(self, doc: Document, status: str) -> str | None:
        """The status the shown image's edits give it (None: it stays as it is).

        A person's edit makes a new or predicted image in progress. Undoing back to where the
        image's history began (nothing left to undo, nothing dropped from the history) gives it
        back the status it had then, when that was new or predicted and the edits alone changed
        it (in progress, or predicted by Segment image). Done and skipped are a person's word and
        stay; so does an image opened in progress."""
        base = self.base_status.get(doc.image_id)
        if doc.undo_stack.at_start and base in (NEW, PREDICTED) and status in (PREDICTED, IN_PROGRESS) \
                and status != base:
            doc.user_edited = False  # a redo is an edit again
            return base
        if doc.user_edited and status in (NEW, PREDICTED) and not doc.undo_stack.at_start:
            return IN_PROGRESS
        return None

    def _settle(self, job: _SaveJob) -> None:
        """A save finished (GUI thread). Runs once per job, from flush() or the worker's signal."""
        if job.settled:
            return
        job.settled = True
        self._jobs = [j for j in self._jobs if j is not job]
        doc, iid = job.doc, job.doc.image_id
        if job.error is None:
            self.save_errors.pop(iid, None)
            self._backoff.pop(iid, None)
            self._retry_at.pop(iid, None)
            if job.status is not None:
                li = self.current
                if li is not None and li.record.id == iid:
                    li.record = replace(li.record, status=job.status)
                self.status_changed.emit(iid, job.status)
        else:
            doc.restore_dirty(job.ups, job.dels)  # kept in memory, written again by the timer
            if job.status is not None:
                self._pending_status.setdefault(iid, job.status)
            self._note_failure(iid, job.error)
        self._release(doc)
        self._emit_saved_state()

    def _note_failure(self, image_id: int, e: BaseException) -> None:
        reason = save_error_text(e)
        self.save_errors[image_id] = reason
        pause = min(self._backoff.get(image_id, RETRY_FIRST_S / 2) * 2, RETRY_MAX_S)
        self._backoff[image_id] = pause
        self._retry_at[image_id] = time.monotonic() + pause
        log.warning("could not save %s: %s (will retry in %.0f s)", self.image_name(image_id), reason, pause)
        self.save_failed.emit(f"Could not save {self.image_name(image_id)}: {reason}; retrying")

    def _hold(self, doc: Document) -> None:
        """The document is no longer shown: keep it while the store lacks any of its edits."""
        if self._needs_write(doc) or self._in_flight(doc):
            self.held[doc.image_id] = doc

    def _release(self, doc: Document) -> None:
        if doc is not self.doc and self.held.get(doc.image_id) is doc and \
                not self._needs_write(doc) and not self._in_flight(doc):
            del self.held[doc.image_id]

    def image_name(self, image_id: int) -> str:
        return self._paths.get(image_id, f"image {image_id}")

    def flush(self, timeout: float = 60.0, docs: list[Document] | None = None) -> bool:
        """Write everything edited so far and wait for it (Ctrl+S, closing, before an export or
        a model run). True when the store has it all; False when a write failed (the edits are
        kept and retried). `docs`: only these documents (switching image flushes the shown one)."""
        if self.doc is not None and self.doc.stroking:
            self.doc.end_stroke()
        docs = self._live_docs() if docs is None else docs
        for doc in docs:
            if self._needs_write(doc):
                self._save_async(doc)
        deadline = time.monotonic() + timeout
        for job in [j for j in self._jobs if any(j.doc is d for d in docs)]:
            assert job.future is not None  # set by _save_async as the job is queued
            try:
                job.future.result(timeout=max(0.0, deadline - time.monotonic()))
            except (FutureTimeout, CancelledError):  # still running: it settles through the signal
                continue
            self._settle(job)
        self._emit_saved_state()
        return self.all_saved

    @property
    def all_saved(self) -> bool:
        """True when the store holds every edit (the title's unsaved mark is off)."""
        return not self._jobs and not self.held and \
            not (self.doc is not None and self._needs_write(self.doc))

    def unsaved_images(self) -> list[str]:
        """Names of the images whose edits the store does not have yet."""
        ids = {d.image_id for d in self._live_docs() if self._needs_write(d)} | {j.doc.image_id for j in self._jobs}
        return [self.image_name(i) for i in sorted(ids, key=self.image_name)]

    def discard_unsaved(self) -> None:
        """Drop the edits that could not be saved (only after the user said so)."""
        names = self.unsaved_images()
        if names:
            log.warning("discarding unsaved edits to %s", ", ".join(names))
        self.held.clear()
        if self.doc is not None:
            self.doc.take_dirty()
        self._pending_status.clear()
        self.save_errors.clear()
        self._emit_saved_state()

    def _emit_saved_state(self) -> None:
        s = self.all_saved
        if s != self._was_saved:
            self._was_saved = s
            self.saved_state.emit(s)
        failing = bool(self.save_errors)
        if self._was_failing and not failing:
            self.save_recovered.emit("All edits saved")
        self._was_failing = failing

    def set_status(self, status: str) -> None:
        if self.current is None:
            return
        self.flush()
        rid = self.current.record.id
        self._pending_status.pop(rid, None)  # an older status still waiting must not win later
        try:
            self.project.store.set_status(rid, status)
            self.current.record = self.project.store.image(rid)
        except (StoreError, OSError) as e:  # written by the autosave timer once it can be
            self._pending_status[rid] = status
            self._note_failure(rid, e)
            self._emit_saved_state()
            return
        self.status_changed.emit(rid, status)

    def close(self) -> None:
        self.closed = True
        self.timer.stop()
        if not self.flush():
            log.error("closing with edits the store does not have: %s", ", ".join(self.unsaved_images()))
        self.claim.release()
        self.loader.shutdown(wait=False)
        self.saver.shutdown(wait=True)


@dataclass(eq=False)
class _SaveJob:
    doc: Document
    ups: list
    dels: list
    status: str | None
    error: BaseException | None = None
    settled: bool = False
    future: Future | None = None


def _carry_unsaved(old: Document, new: Document) -> None:
    """Move the edits the store lacks from `old` onto `new` (read again from the store)."""
    ups, dels = old.take_dirty()
    for d in dels:
        new.regions.pop(d, None)
    for r in ups:
        new.regions[r.id] = r
    new.restore_dirty(ups, dels)


def save_error_text(e: BaseException) -> str:
    """A failed write in words: the store's message ('the project database ... is locked by another
    process (database is locked)'), 'No space left on device'."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, (StoreError, OSError)):
        return str(e) or type(e).__name__
    return f"{type(e).__name__}: {e}"
