"""The main window's menus and toolbar: every action, its shortcuts, tip and icon (built once,
by MainWindow.__init__, onto the window's attributes: `MenuWindow` says which)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QAbstractButton, QDoubleSpinBox, QLabel, QSlider, QSpinBox, QToolBar, QToolButton

from segstudio.core.records import SKIPPED
from segstudio.gui.toolbox import TOOL_ICONS, icon
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

    from segstudio.core.project import Project
    from segstudio.editing.editor import EditorState
    from segstudio.editing.tools import Tool
    from segstudio.gui.canvas import Canvas
    from segstudio.gui.docks.classes import ClassesDock

BRUSH_STEP = 1.25  # ] grows the brush radius by this factor, [ shrinks it by its inverse
MAX_BRUSH_RADIUS = 500  # px


class MenuWindow(Protocol):
    """The main window (gui.main_window.MainWindow) as its menus see it: what they hold, what
    their actions call, and the attributes build_actions sets."""

    # set by build_actions
    toolbar: QToolBar
    open_action: QAction
    export_action: QAction
    save_action: QAction
    undo_action: QAction
    redo_action: QAction
    hide_action: QAction
    outline_action: QAction
    instances_action: QAction
    tool_group: QActionGroup
    tool_actions: dict[str, QAction]
    brush_spin: QSpinBox
    tol_spin: QDoubleSpinBox
    opacity: QSlider
    menus: list[QMenu]
    edit_actions: list[QAction]  # what changes the shown image: off while it is read-only (a team's claim)

    # read
    @property
    def settings(self) -> QSettings: ...
    @property
    def project(self) -> Project: ...
    @property
    def canvas(self) -> Canvas: ...
    @property
    def editor(self) -> EditorState: ...
    @property
    def tools(self) -> Mapping[str, Tool]: ...
    @property
    def model_dock(self) -> object: ...  # its buttons get icons, looked up by name
    @property
    def classes_dock(self) -> ClassesDock: ...

    # the Qt window
    def window(self) -> QWidget: ...  # the window itself: the actions' parent
    def menuBar(self) -> QMenuBar: ...
    def addToolBar(self, toolbar: QToolBar) -> None: ...
    def addAction(self, action: QAction) -> None: ...
    def close(self) -> bool: ...

    # what the actions call
    def open_folder(self, folder: str | None = None) -> object: ...
    def import_dialog(self) -> object: ...
    def export_dialog(self) -> object: ...
    def save_now(self) -> None: ...
    def undo(self) -> None: ...
    def redo(self) -> None: ...
    def delete_selected(self) -> None: ...
    def merge_selected(self) -> None: ...
    def split_selected(self) -> None: ...
    def fill_holes(self) -> None: ...
    def change_class(self) -> None: ...
    def raise_selected(self, up: bool) -> None: ...
    def escape(self) -> None: ...
    def toggle_overlay(self) -> None: ...
    def toggle_outline(self) -> None: ...
    def toggle_instances(self) -> None: ...
    def auto_window(self) -> None: ...
    def levels_dialog(self) -> object: ...
    def show_stats(self) -> object: ...
    def step_image(self, step: int) -> None: ...
    def next_unfinished(self) -> None: ...
    def mark_done_next(self) -> None: ...
    def set_status(self, status: str) -> None: ...
    def set_tool(self, name: str) -> None: ...
    def brush_size(self, factor: float) -> None: ...
    def show_shortcuts(self) -> object: ...
    def show_getting_started(self) -> None: ...
    def about(self) -> None: ...


def add_action(win: MenuWindow, menu: QMenu, text: str, slot: Callable[..., object], keys: str | Sequence[str] = (),
               tip: str = "", checkable: bool = False, icon_name: str = "") -> QAction:
    """A menu action with its shortcuts, tips and icon, also on the window (its shortcut works
    wherever the focus is)."""
    a = QAction(text, win.window())
    if icon_name:
        a.setIcon(icon(icon_name))
    if keys:
        a.setShortcuts([QKeySequence(k) for k in ([keys] if isinstance(keys, str) else keys)])
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(f"{text.replace('&', '')} ({', '.join(keys) if not isinstance(keys, str) else keys})"
                     f"\n{tip}" if keys else tip)
    a.setCheckable(checkable)
    connect_plain(a.triggered, slot)
    menu.addAction(a)
    win.addAction(a)
    return a


def build_actions(win: MenuWindow) -> None:
    """The menus and the toolbar, with every action and shortcut."""
    mb = win.menuBar()
    tb = QToolBar("Tools", win.window())
    tb.setObjectName("tools_toolbar")
    win.toolbar = tb
    win.addToolBar(tb)
    f = mb.addMenu("&File")
    win.open_action = add_action(win, f, "&Open folder…", lambda: win.open_folder(), "Ctrl+O",
                                 "Open a folder of images", icon_name="folder-open")
    last = win.settings.value("last_folder")
    if last and last != str(win.project.folder):
        add_action(win, f, f"Open last folder ({last[-40:]})", lambda: win.open_folder(last), icon_name="folder-clock")
    f.addSeparator()
    add_action(win, f, "&Import annotations…", win.import_dialog, "Ctrl+I", icon_name="file-input")
    win.export_action = add_action(win, f, "&Export dataset…", win.export_dialog, "Ctrl+E",
                                   "COCO, PNG label maps, instance maps, labelme, YOLO-seg or VOC",
                                   icon_name="file-output")
    f.addSeparator()
    win.save_action = add_action(win, f, "&Save now", win.save_now, "Ctrl+S",
                                 "Edits are saved automatically; this forces it", icon_name="save")
    add_action(win, f, "&Quit", win.close, "Ctrl+Q", icon_name="log-out")
    e = mb.addMenu("&Edit")
    win.undo_action = add_action(win, e, "&Undo", win.undo, ["Ctrl+Z"], "Undo the last edit", icon_name="undo-2")
    win.redo_action = add_action(win, e, "&Redo", win.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo what was undone",
                                 icon_name="redo-2")
    e.addSeparator()
    edits = [win.undo_action, win.redo_action,
             add_action(win, e, "&Delete region", win.delete_selected, ["Del"], icon_name="trash-2"),
             add_action(win, e, "&Merge selected regions", win.merge_selected, "M",
                        "Shift+click regions to select several", icon_name="merge"),
             add_action(win, e, "&Split into connected parts", win.split_selected, "K", icon_name="ungroup"),
             add_action(win, e, "&Fill holes", win.fill_holes, "H", icon_name="paint-bucket"),
             add_action(win, e, "&Change class to current", win.change_class, "C", icon_name="tag"),
             add_action(win, e, "&Raise region", lambda: win.raise_selected(True), "Ctrl+]",
                        icon_name="bring-to-front"),
             add_action(win, e, "&Lower region", lambda: win.raise_selected(False), "Ctrl+[",
                        icon_name="send-to-back")]
    add_action(win, e, "Cancel shape / select &none", win.escape, "Esc", icon_name="x")
    v = mb.addMenu("&View")
    add_action(win, v, "&Fit image", win.canvas.fit, "Ctrl+0", icon_name="maximize")
    add_action(win, v, "&Actual pixels (1:1)", win.canvas.actual_size, "Ctrl+1", icon_name="scan")
    # about the view centre (the wheel and a pinch zoom about the cursor); plain + and - work
    # wherever the focus is, except in a box that takes typed text
    add_action(win, v, "Zoom &in", lambda: win.canvas.zoom_by(1.25), ("+", "=", "Ctrl+="), icon_name="zoom-in")
    add_action(win, v, "Zoom &out", lambda: win.canvas.zoom_by(0.8), ("-", "Ctrl+-"), icon_name="zoom-out")
    v.addSeparator()
    win.hide_action = add_action(win, v, "&Hide regions", win.toggle_overlay, "T", checkable=True, icon_name="eye-off")
    win.outline_action = add_action(win, v, "&Outlines only", win.toggle_outline, "O", checkable=True,
                                    icon_name="square-dashed")
    win.instances_action = add_action(win, 
        v, "Colour &instances apart", win.toggle_instances,
        tip="Touching regions of one class in different shades of its colour, to see where one ends",
        checkable=True, icon_name="blend")
    add_action(win, v, "Auto &window/level (16-bit)", win.auto_window, "Ctrl+L", icon_name="contrast")
    add_action(win, v, "Window/&level…", win.levels_dialog, "Ctrl+Shift+L", icon_name="sliders-horizontal")
    add_action(win, v, "Dataset &statistics…", win.show_stats, "Ctrl+Shift+I", icon_name="chart-column")
    i = mb.addMenu("&Image")
    add_action(win, i, "&Next image", lambda: win.step_image(1), ["D", "PgDown"], icon_name="chevron-right")
    add_action(win, i, "&Previous image", lambda: win.step_image(-1), ["A", "PgUp"], icon_name="chevron-left")
    add_action(win, i, "Next &unfinished image", win.next_unfinished, "N", icon_name="skip-forward")
    edits.append(add_action(win, i, "Mark &done and go to next", win.mark_done_next, ["Ctrl+Return", "Ctrl+Enter"],
                            icon_name="circle-check"))
    edits.append(add_action(win, i, "Mark &skipped", lambda: win.set_status(SKIPPED), "Ctrl+K", icon_name="ban"))
    for a in (win.open_action, win.export_action, win.save_action):
        tb.addAction(a)
    tb.addSeparator()
    tb.addAction(win.undo_action)
    tb.addAction(win.redo_action)
    tb.addSeparator()
    t = mb.addMenu("&Tools")
    win.tool_group = QActionGroup(win.window())
    win.tool_actions = {}
    for name, tool in win.tools.items():
        a = add_action(win, t, tool.label, lambda n=name: win.set_tool(n), tool.shortcut, tool.tip,
                      checkable=True, icon_name=TOOL_ICONS.get(name, ""))
        win.tool_group.addAction(a)
        win.tool_actions[name] = a
        tb.addAction(a)
    tb.addSeparator()
    add_action(win, t, "Bigger brush", lambda: win.brush_size(BRUSH_STEP), "]")
    add_action(win, t, "Smaller brush", lambda: win.brush_size(1 / BRUSH_STEP), "[")
    tb.addWidget(QLabel(" Brush "))
    win.brush_spin = QSpinBox()
    win.brush_spin.setRange(1, MAX_BRUSH_RADIUS)
    win.brush_spin.setSuffix(" px")
    win.brush_spin.setToolTip("Brush radius ([ and ])")
    win.brush_spin.valueChanged.connect(lambda v: setattr(win.editor, "brush_radius", float(v)))
    tb.addWidget(win.brush_spin)
    tb.addWidget(QLabel(" Wand "))
    win.tol_spin = QDoubleSpinBox()
    win.tol_spin.setRange(0, 100)
    win.tol_spin.setSuffix(" %")
    win.tol_spin.setToolTip("Magic wand tolerance, percent of the display range (16-bit aware)")
    win.tol_spin.valueChanged.connect(lambda v: setattr(win.editor, "wand_tolerance", float(v)))
    tb.addWidget(win.tol_spin)
    tb.addWidget(QLabel(" Opacity "))
    win.opacity = QSlider(Qt.Orientation.Horizontal)
    win.opacity.setRange(0, 100)
    win.opacity.setFixedWidth(90)
    win.opacity.valueChanged.connect(lambda v: win.canvas.overlay.set_opacity(v / 100))
    tb.addWidget(win.opacity)
    tb.addSeparator()
    done = QAction(icon("circle-check"), "Done → next", win.window())
    done.setToolTip("Mark this image done and open the next unfinished one (Ctrl+Enter)")
    connect_plain(done.triggered, win.mark_done_next)
    edits.append(done)
    win.edit_actions = edits
    tb.addAction(done)
    done_button = tb.widgetForAction(done)
    if isinstance(done_button, QToolButton):
        done_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    h = mb.addMenu("&Help")
    add_action(win, h, "&Keyboard shortcuts", win.show_shortcuts, "F1", icon_name="keyboard")
    add_action(win, h, "&Getting started", win.show_getting_started, icon_name="lightbulb")
    add_action(win, h, "&About segstudio", win.about, icon_name="info")
    panel_icons(win)
    win.menus = [f, e, v, i, t, h]
    for k in range(1, 10):  # class hotkeys
        a = QAction(win.window())
        a.setShortcut(QKeySequence(str(k)))
        connect_plain(a.triggered, partial(win.classes_dock.select_hotkey, str(k)))
        win.addAction(a)


def panel_icons(win: MenuWindow) -> None:
    """Icons on the Model panel's buttons (looked up by name: the panel works without them)."""
    buttons: list[tuple[object, str, str]] = [
        (win.model_dock, "load_button", "brain"), (win.model_dock, "seg_image", "play"),
        (win.model_dock, "seg_folder", "images"), (win.model_dock, "cancel_button", "circle-x")]
    train = getattr(win.model_dock, "train_panel", None)
    buttons += [(train, "train_button", "graduation-cap"), (train, "repredict", "refresh-cw"),
                (train, "evaluate_button", "list-checks")]
    for owner, attr, name in buttons:
        b = getattr(owner, attr, None)
        if isinstance(b, QAbstractButton):
            b.setIcon(icon(name))
