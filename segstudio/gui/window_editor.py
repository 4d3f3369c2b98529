"""The editor state as the main window runs it: the hooks the tools call (messages, previews,
assist workers, the model's candidates) answered by the window and its docks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from segstudio.gui import status_times
from segstudio.editing.editor import EditorState, T

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStatusBar

    from segstudio.gui.canvas import Canvas
    from segstudio.gui.docks.model_dock import ModelDock
    from segstudio.inference.runtime.segmenter import Detection


class EditorWindow(Protocol):
    """What the editor reaches of the main window (gui.main_window.MainWindow)."""

    @property
    def canvas(self) -> Canvas: ...

    @property
    def model_dock(self) -> ModelDock: ...

    def statusBar(self) -> QStatusBar: ...

    def run_assist(self, fn: Callable[[], T], done: Callable[[T], None], label: str) -> None: ...

    def on_selection_changed(self) -> None: ...

    def accept_detection(self, det: Detection) -> int | None: ...


class WindowEditor(EditorState):
    """EditorState whose hooks reach the window (messages, previews, assist workers)."""

    def __init__(self, window: EditorWindow) -> None:
        super().__init__()
        self.w = window

    def run_assist(self, fn: Callable[[], T], done: Callable[[T], None], label: str) -> None:
        self.w.run_assist(fn, done, label)

    def message(self, text: str) -> None:
        self.w.statusBar().showMessage(text, status_times.NOTE_MS)

    def selection_changed(self) -> None:
        self.w.on_selection_changed()

    def preview_changed(self) -> None:
        self.w.canvas.update_preview()

    def model_loaded(self) -> bool:
        return self.w.model_dock.info is not None

    def click_answer(self) -> str | None:
        return self.w.model_dock.click_answer()

    def click_model_name(self) -> str:
        fam = self.w.model_dock.choice.click_family()
        return fam.title.split(" (")[0] if fam is not None else super().click_model_name()

    def model_candidates(self) -> list[Detection] | None:
        return self.w.model_dock.candidates(self.doc.image_id) if self.doc is not None else None

    def request_model_candidates(self, then: Callable[[], None]) -> None:
        if self.doc is not None and self.image is not None:  # set together with doc
            self.w.model_dock.request_candidates(self.doc.image_id, self.image, then)

    def accept_detection(self, det: Detection) -> int | None:
        return self.w.accept_detection(det)

    def prompt_model(self, points, box, done: Callable[[Any], None]) -> None:
        if self.doc is None or self.image is None:
            done(None)
            return
        self.w.model_dock.prompt(self.doc.image_id, self.image, self.window, points, box, done)
