"""Propagate ◀ / ▶ N frames in the window: the open frame's objects carried to the next (or
previous) frames by editing.propagation_run, on a worker thread, cancellable, with progress.

The open frame is saved first, then the run starts from it. It never writes the open frame (it
is `protect`ed) nor a frame a person worked on (the run checks each frame's status in the store);
a frame the window opens while the run goes on is held by the window's claim, and the run stops
there (the run is given no claim owner of its own, so every window's claim stops it).

One run is one undo step. It lives outside the open image's history, as a class delete does:
Edit › Undo reaches it when the open image has nothing newer (gui/window_undo.py). Undo puts
back what each written frame held; a frame a person changed since keeps what it has, and the
status bar names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast, Any

from PySide6.QtCore import QObject

from segstudio.core.errors import describe
from segstudio.gui import status_times
from segstudio.gui.workers import Failure, Job

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu

    from segstudio.core.undo import UndoStack
    from segstudio.editing.propagation_run import PropagationRun
    from segstudio.gui.frames_window import FramesWindow
    from segstudio.gui.sequence_view import SequenceView

FORWARD_KEYS = "Ctrl+."
BACKWARD_KEYS = "Ctrl+,"
MAX_STEPS = 32  # propagation runs kept for undo (each holds the regions of the frames it wrote)
_NONE = object()


def _top(stack: UndoStack, which: str) -> object:
    """The newest step of an image's history (`_done`) or of what was undone (`_undone`): which
    step is newest decides whether Ctrl+Z reaches the image's edits or a propagation."""
    steps = getattr(stack, which)
    return steps[-1] if steps else None


@dataclass(eq=False)
class RunStep:
    run: PropagationRun
    key: str  # the sequence
    label: str
    classes_len: int  # class deletes in their history when the run ended: a later one is newer
    tops: dict[int, object] = field(default_factory=dict)  # image id -> newest step of its history then
    redo_tops: dict[int, object] = field(default_factory=dict)  # after undo: newest undone step then


class PropagateControl(QObject):
    def __init__(self, win: FramesWindow, frames: SequenceView) -> None:
        super().__init__(win.window())
        self.win, self.frames = win, frames
        self.job: Job | None = None
        self.done: list[RunStep] = []
        self.undone: list[RunStep] = []
        self.last: dict[str, PropagationRun] = {}  # sequence -> its last run (the bar marks where it stopped)
        frames.sequence_changed.connect(lambda key: self.show_stop(self.last.get(key), key))
        bar = frames.bar
        bar.propagate_requested.connect(lambda backward: self.start(backward))
        bar.cancel_requested.connect(self.cancel)
        self.forward_action: QAction | None = None
        self.backward_action: QAction | None = None
        self.cancel_action: QAction | None = None

    def add_actions(self, menu: QMenu) -> None:
        from segstudio.gui.window_menus import MenuWindow, add_action
        w = cast(MenuWindow, self.win)
        self.forward_action = add_action(w, menu, "Propagate ▶ N frames", lambda: self.start(False), FORWARD_KEYS,
            "Carry the open frame's objects to the next frames (N: the box on the frame bar); frames a "
            "person worked on are never written", icon_name="play")
        self.backward_action = add_action(w, menu, "Propagate ◀ N frames", lambda: self.start(True), BACKWARD_KEYS,
            "Carry the open frame's objects to the frames before it", icon_name="chevron-left")
        self.cancel_action = add_action(w, menu, "Cancel propagation", self.cancel, icon_name="circle-x")
        self.cancel_action.setEnabled(False)

    # ---------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, backward: bool = False) -> bool:
        """Save the open frame and propagate from it (False, with a message, when it cannot)."""
        w, seq = self.win, self.frames
        say = w.statusBar().showMessage
        if self.job is not None:
            say("A propagation is running (Cancel stops it)", status_times.NOTE_MS)
            return False
        li = w.session.current
        k = seq.index_of.get(li.record.id) if li is not None else None
        if li is None or k is None or seq.key is None:
            say("Open a frame of a sequence to propagate from it", status_times.NOTE_MS)
            return False
        if not w.session.flush():
            say("The open frame's edits are not saved yet: propagation waits for them", status_times.ERROR_MS)
            return False
        from segstudio.editing.propagation_run import propagate
        project, frames, count = w.project, list(seq.frames), seq.bar.count.value()
        protect = [li.record.id]
        key = seq.key

        def work(progress, cancelled) -> PropagationRun:
            # the project's live model, where it has one, is evidence for each carried object (it
            # is loaded here, on the worker, apart from the Model panel's: nothing waits for it)
            from segstudio.inference.propagate_refine import live_evidence
            found = live_evidence(project)
            # owner=None: a claim of any window stops it, this window's on a frame opened meanwhile too
            run = propagate(project, frames, k, count, backward, refine=found[0] if found else None,
                            protect=protect, owner=None, cancel=cancelled, progress=lambda d, t: progress(d, t))
            run.evidence = found[1] if found else None
            return run

        job = Job(work, self)
        # the undo histories as they were: a frame opened while the run goes (after it was written:
        # the run never writes one a window holds) gets a new history, which fits what it shows
        before = dict(w.session.histories)
        job.progress.connect(lambda d, t, _text: seq.bar.set_progress(d, t))
        job.returned.connect(lambda run: self._finished(run, key, before))
        job.errored.connect(self._failed)
        job.finished.connect(self._ended)
        self.job = job
        seq.bar.set_running(True)
        seq.bar.set_stop(None, "")
        self._enable(True)
        say(f"Propagating {'◀' if backward else '▶'} from frame {k}…")
        job.start()
        return True

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.win.statusBar().showMessage("Cancelling the propagation after this frame…", status_times.BRIEF_MS)

    def shutdown(self, wait: float = 10.0) -> None:
        """The window closes: stop the run between two frames and wait for it (it writes the store)."""
        if self.job is not None:
            self.job.cancel()
            self.job.wait(wait)

    def _enable(self, running: bool) -> None:
        for a, on in ((self.forward_action, not running), (self.backward_action, not running),
                      (self.cancel_action, running)):
            if a is not None:
                a.setEnabled(on)

    def _ended(self) -> None:
        self.job = None
        self.frames.bar.set_running(False)
        self._enable(False)

    def _failed(self, failure: Failure) -> None:
        self.win.statusBar().showMessage(f"Propagation failed: {describe(failure.error)}", status_times.ERROR_MS)
        self.frames.bar.set_stop(None, f"propagation failed: {describe(failure.error)}")

    def _finished(self, run: PropagationRun, key: str, before: dict | None = None) -> None:
        self.last[key] = run
        written = list(run.written)
        hist = self.win.session.histories
        # frames opened since the run started were read after it wrote them: their edits and
        # history stay (only histories older than the run no longer fit their frames)
        fresh = {i for i in written if before is not None and i in hist and hist[i] is not before.get(i)}
        self._changed([i for i in written if i not in fresh], also=[i for i in written if i in fresh])
        text = run.summary()
        if run.written:
            n = len(run.frames)
            s = self.win.session
            step = RunStep(run, key, f"Propagate to {n} frame{'s' * (n != 1)}", len(self.win.classes_dock.history),
                           {i: _top(h, "_done") for i, h in s.histories.items()})
            self.done.append(step)
            del self.done[:-MAX_STEPS]
            self.undone.clear()
            text += " (Ctrl+Z takes it back)"
        self.win.statusBar().showMessage(text, status_times.ERROR_MS)
        self.show_stop(run, key)

    def show_stop(self, run: PropagationRun | None, key: str | None = None) -> None:
        """The stop mark and its reason on the frame bar (for the sequence shown)."""
        bar = self.frames.bar
        if run is None or run.stopped_at is None or (key is not None and key != self.frames.key):
            bar.set_stop(None, "")
            return
        k = run.stopped_at
        reason = run.reason.removeprefix(f"frame {k} ")  # "frame 14 holds a person's work": said once
        bar.set_stop(k, f"Propagation stopped at frame {k}: {reason}")

    def _changed(self, image_ids: list[int], also: tuple[int, ...] | list[int] = ()) -> None:
        """Frames' regions changed in the store outside the editor: rows and counts read them again,
        their undo histories go (they no longer fit), an open one is read again. `also`: rows to
        refresh whose open document is already what the store holds."""
        w = self.win
        for i in [*image_ids, *also]:
            w.files.model.invalidate(i)
        w.files.update_counts()
        w.session.reread(image_ids)

    # ---------------------------------------------------------------- undo / redo
    def undo_is_newest(self, history: Any) -> bool:
        """The newest run is newer than the open image's newest step (`history`: its UndoStack,
        None when no image is open) and than the newest class delete."""
        if not self.done:
            return False
        step = self.done[-1]
        if len(self.win.classes_dock.history) > step.classes_len:
            return False
        if history is None or not history.can_undo:
            return True
        doc = self.win.editor.doc
        return doc is not None and step.tops.get(doc.image_id, _NONE) is _top(history, "_done")

    def redo_is_newest(self, history: Any) -> bool:
        if not self.undone:
            return False
        top = _top(history, "_undone") if history is not None else None
        doc = self.win.editor.doc
        return top is None or (doc is not None and self.undone[-1].redo_tops.get(doc.image_id, _NONE) is top)

    def undo(self) -> str:
        from segstudio.editing.propagation_run import undo_run
        step = self.done.pop()
        s = self.win.session
        s.flush()
        kept = undo_run(self.win.project, step.run, owner=s.claim.owner)
        self._changed(*_split(step.run, kept))  # a frame the person changed since keeps its undo too
        self.last.pop(step.key, None)
        step.redo_tops = {i: _top(h, "_undone") for i, h in s.histories.items()}
        self.undone.append(step)
        self.show_stop(None)
        return step.label + _kept_text(kept)

    def redo(self) -> str:
        from segstudio.editing.propagation_run import redo_run
        step = self.undone.pop()
        s = self.win.session
        s.flush()
        kept = redo_run(self.win.project, step.run, owner=s.claim.owner)
        self._changed(*_split(step.run, kept))
        self.last[step.key] = step.run
        step.tops = {i: _top(h, "_done") for i, h in s.histories.items()}
        self.done.append(step)
        self.show_stop(step.run, step.key)
        return step.label + _kept_text(kept)


def _kept_text(kept: list[str]) -> str:
    if not kept:
        return ""
    names = ", ".join(kept[:3]) + (f" and {len(kept) - 3} more" if len(kept) > 3 else "")
    return f"; kept {len(kept)} frame{'s' * (len(kept) != 1)} a person changed since: {names}"


def add_frames_menu(win: FramesWindow) -> None:
    """The Frames menu (after Image): frame keys and Propagate, listed in Help › Keyboard shortcuts."""
    from PySide6.QtWidgets import QMenu
    menu = QMenu("F&rames", win.window())
    menus = win.menus
    after = next((k for k, m in enumerate(menus) if m.title() == "&Image"), len(menus) - 1)
    before = menus[after + 1].menuAction() if after + 1 < len(menus) else None
    if before is not None:
        win.menuBar().insertMenu(before, menu)
    else:
        win.menuBar().addMenu(menu)
    menus.insert(after + 1, menu)
    win.sequence.add_actions(menu)
    menu.addSeparator()
    win.propagation.add_actions(menu)
    # the Regions panel's typed object numbers that were not taken say why in the status bar
    win.regions_dock.message.connect(lambda text: win.statusBar().showMessage(text, status_times.NOTE_MS))


def _split(run: PropagationRun, kept: list[str]) -> tuple[list[int], list[int]]:
    """(the run's frames that undo or redo rewrote, those it left as a person had made them)."""
    by_path = dict(zip((f.path for f in run.frames), run.written, strict=False))
    left = {by_path[p] for p in kept if p in by_path}
    return [i for i in run.written if i not in left], sorted(left)
