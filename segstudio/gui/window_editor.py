"""The editor state as the main window runs it: the hooks the tools call (messages, previews,
assist workers, the model's candidates) answered by the window and its docks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segstudio.gui.editor import EditorState

if TYPE_CHECKING:
    from segstudio.gui.main_window import MainWindow


class WindowEditor(EditorState):
    """EditorState whose hooks reach the window (messages, previews, assist workers)."""

    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.w = window

    def run_assist(self, fn, done, label):
        self.w.run_assist(fn, done, label)

    def message(self, text):
        self.w.statusBar().showMessage(text, 5000)

    def selection_changed(self):
        self.w.on_selection_changed()

    def preview_changed(self):
        self.w.canvas.update_preview()

    def model_loaded(self):
        return self.w.model_dock.info is not None

    def model_kind(self):
        info = self.w.model_dock.info
        return info.get("arch") if info else None

    def model_candidates(self):
        return self.w.model_dock.candidates(self.doc.image_id) if self.doc is not None else None

    def request_model_candidates(self, then):
        if self.doc is not None:
            self.w.model_dock.request_candidates(self.doc.image_id, self.image, then)

    def accept_detection(self, det):
        return self.w.accept_detection(det)
