"""Edit › Undo and Redo in the window: the newest step wins, among the open image's own edits
(its Document's history), the project-level steps that live outside it (a class delete, a
propagation run) and their redo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segstudio.gui import status_times

if TYPE_CHECKING:
    from segstudio.gui.frames_window import FramesWindow


def undo(win: FramesWindow) -> None:
    doc = win.editor.doc
    history = doc.undo_stack if doc is not None else None
    say = win.statusBar().showMessage
    if win.propagation.undo_is_newest(history):
        say(f"Undo: {win.propagation.undo()}", status_times.ERROR_MS)
        return
    if (history is None or not history.can_undo) and win.classes_dock.can_undo:
        # a class delete is a project-level step; it forgot every image's history, so when the
        # open image has nothing to undo, the delete is the newest step
        label = win.classes_dock.undo()
        say(f"Undo: {label}" if label else "Nothing to undo", status_times.BRIEF_MS)
        return
    if doc is not None:
        label = win.editor.undo()  # tools drop their seeds and previews first
        win.canvas.reset_tool()
        say(f"Undo: {label}" if label else "Nothing to undo", status_times.BRIEF_MS)


def redo(win: FramesWindow) -> None:
    doc = win.editor.doc
    say = win.statusBar().showMessage
    if win.propagation.redo_is_newest(doc.undo_stack if doc is not None else None):
        say(f"Redo: {win.propagation.redo()}", status_times.ERROR_MS)
        return
    if doc is not None:
        label = win.editor.redo()
        win.canvas.reset_tool()
        say(f"Redo: {label}" if label else "Nothing to redo", status_times.BRIEF_MS)
