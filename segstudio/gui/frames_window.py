"""The main window as the frame bar, the Propagate actions and Undo see it (a Protocol: these
modules are imported by gui/main_window.py, so they name what they use instead of importing it).
The frame bar's and the Propagate control's own types are not named here: they import this
module, and a type-only import back would close a circle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu, QMenuBar, QStatusBar, QWidget

    from segstudio.core.project import Project
    from segstudio.editing.editor import EditorState
    from segstudio.gui.canvas import Canvas
    from segstudio.gui.docks.classes import ClassesDock
    from segstudio.gui.docks.files import FilesDock
    from segstudio.gui.docks.regions import RegionsDock
    from segstudio.gui.session import Session


class FramesWindow(Protocol):
    @property
    def project(self) -> Project: ...
    @property
    def session(self) -> Session: ...
    @property
    def files(self) -> FilesDock: ...
    @property
    def editor(self) -> EditorState: ...
    @property
    def canvas(self) -> Canvas: ...
    @property
    def classes_dock(self) -> ClassesDock: ...
    @property
    def regions_dock(self) -> RegionsDock: ...
    @property
    def sequence(self) -> Any: ...  # gui.sequence_view.SequenceView
    @property
    def propagation(self) -> Any: ...  # gui.propagate_action.PropagateControl
    @property
    def menus(self) -> list[QMenu]: ...

    def statusBar(self) -> QStatusBar: ...
    def centralWidget(self) -> QWidget | None: ...
    def menuBar(self) -> QMenuBar: ...
    def window(self) -> QWidget: ...
    def addAction(self, action: QAction) -> None: ...
    def open_image(self, image_id: int) -> None: ...
