"""The main window: canvas in the middle, docks for files, classes, regions and the model.

The window owns no annotation state: the Document (core) holds the regions and their undo
history, the Session loads and saves, the tools edit. The window wires them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent
from PySide6.QtWidgets import (QDockWidget, QDoubleSpinBox, QMainWindow, QMenu, QMessageBox, QSlider,
                               QSpinBox, QToolBar, QVBoxLayout, QWidget)

from segstudio import __version__
from segstudio.core import imageio
from segstudio.core.records import DONE, UNFINISHED
from segstudio.gui.canvas import Canvas
from segstudio.gui.dialogs import ExportDialog, ImportDialog, ShortcutsDialog, confirm_unsaved
from segstudio.gui.docks.classes import ClassesDock
from segstudio.gui.docks.files import FilesDock
from segstudio.gui.docks.model_dock import ModelDock
from segstudio.gui.model_worker import ModelWorker
from segstudio.gui import gc_guard, model_results, status_times, window_undo
from segstudio.gui.docks.regions import RegionsDock
from segstudio.editing.editor import DEFAULT_BRUSH_RADIUS, DEFAULT_WAND_TOLERANCE
from segstudio.gui.window_editor import WindowEditor
from segstudio.gui.save_label import SaveLabel
from segstudio.gui.session import Session
from segstudio.gui.settings import app_settings, get_bool, get_float, open_folder_start
from segstudio.gui.cursor_readout import CursorReadout
from segstudio.gui.notices import GETTING_STARTED, GETTING_STARTED_KEY, NoticeBar, unreadable_text
from segstudio.gui.open_elsewhere import OpenElsewhereNotice
from segstudio.gui.propagate_action import PropagateControl, add_frames_menu
from segstudio.gui.sequence_view import SequenceView
from segstudio.gui.team import TeamView
from segstudio.gui.window_menus import build_actions
from segstudio.gui.toolbox import TOOLS, icons_dir, set_window_icon
from segstudio.gui.workers import Background

if TYPE_CHECKING:
    from segstudio.core.document import Change, Document
    from segstudio.core.project import Project
    from segstudio.core.records import ImageRecord
    from segstudio.editing.editor import T
    from segstudio.gui.levels import LevelsDialog
    from segstudio.gui.session import LoadedImage
    from segstudio.gui.stats import StatsDialog
    from segstudio.inference.runtime.classmap import ClassMapper
    from segstudio.inference.runtime.segmenter import Detection, Prediction


DEFAULT_OPACITY = 0.45  # of the region overlay: the image stays readable under it
REGIONS_REFRESH_MS = 150  # the regions list follows edits this long after the last one
PROBE_DELAY_MS = 300  # docks report visible during the first layout: probe the model after it

_WINDOWS: list[MainWindow] = []  # windows opened from a window live on after it closes; each leaves when closed


def open_windows() -> list[MainWindow]:
    """The windows opened from another window and not yet closed."""
    return list(_WINDOWS)


def _forget_window(win: MainWindow) -> None:
    _WINDOWS[:] = [w for w in _WINDOWS if w is not win]


class MainWindow(QMainWindow):
    # made by window_menus.build_actions
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
    edit_actions: list[QAction]

    def __init__(self, project: Project, settings: QSettings | None = None) -> None:
        super().__init__()
        gc_guard.acquire()  # collect cycles on this thread only, never on a worker's
        self._gc_held = True
        self.project = project
        self.settings = settings or app_settings()
        self.editor = WindowEditor(self)
        self.session = Session(project, parent=self)
        self.assists = Background(1, "segstudio-assist", self)
        self.canvas = Canvas(self)
        # above the canvas: the getting-started strip (bundled samples, first run) and the notice
        # of an image that cannot be opened
        self.getting_started = NoticeBar("getting_started", "lightbulb", "info")
        self.getting_started.close_button.setToolTip("Close; Help › Getting started shows it again")
        self.getting_started.dismissed.connect(self._getting_started_dismissed)
        self.image_notice = NoticeBar("image_notice", "triangle-alert", "error")
        # the image shown is open in another window or process as well (its claim in the store)
        self.open_elsewhere = OpenElsewhereNotice(self.session, lambda: self.editor.doc is not None, self)
        self.shared_notice, self.claims_timer = self.open_elsewhere.bar, self.open_elsewhere.timer
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.getting_started)
        lay.addWidget(self.image_notice)
        lay.addWidget(self.shared_notice)
        lay.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        set_window_icon(self)
        self.tools = {cls.name: cls(self.editor) for cls in TOOLS}
        self._build_docks()
        build_actions(self)
        self.sequence = SequenceView(self)  # the frame bar under the image, while it is a frame
        self.propagation = PropagateControl(self, self.sequence)
        add_frames_menu(self)
        self._build_status()
        self._restore_settings()
        self._wire()
        self.team = TeamView(self, self, self)  # claims read-only, review, history, live view (a team's store)
        self.claims_timer.timeout.connect(self.team.recheck)
        self._regions_timer = QTimer(self)
        self._regions_timer.setSingleShot(True)
        self._regions_timer.setInterval(REGIONS_REFRESH_MS)
        self._regions_timer.timeout.connect(self.regions_dock.refresh)
        self.set_tool("brush")
        self.classes_changed()
        self.files.refresh()
        self.update_title()
        self.error_label = None
        self._show_getting_started_if_new()

    # ================================================================= construction
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title.lower() + "_dock")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _build_docks(self) -> None:
        store = self.project.store
        self.files = FilesDock(store, self)
        self.classes_dock = ClassesDock(store, self.editor, self, flush_edits=self.session.flush)
        self.regions_dock: RegionsDock = RegionsDock(self.editor, self)
        self.worker = ModelWorker(self.project, self)
        self.model_dock = ModelDock(self.project, self.worker, self, flush_edits=self.session.flush)
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.files_dw = self._dock("Files", self.files, L)
        self.classes_dw = self._dock("Classes", self.classes_dock, R)
        self.regions_dw = self._dock("Regions", self.regions_dock, R)
        self.model_dw = self._dock("Model", self.model_dock.in_scroll_area(), R)
        self.tabifyDockWidget(self.regions_dw, self.model_dw)
        self.regions_dw.raise_()
        self.resizeDocks([self.classes_dw, self.regions_dw], [220, 520], Qt.Orientation.Vertical)
        self.resizeDocks([self.files_dw, self.classes_dw], [260, 380], Qt.Orientation.Horizontal)

    def _build_status(self) -> None:
        def class_name(cid: int) -> str | None:
            c = self.regions_dock.classes.get(cid)
            return c.name if c else None
        self.readout = CursorReadout(self.statusBar(), self.editor, class_name)

    def _restore_settings(self) -> None:
        s = self.settings
        geo = s.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1400, 880)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.opacity.setValue(int(get_float(s, "view/opacity", DEFAULT_OPACITY) * 100))
        self.canvas.overlay.set_opacity(self.opacity.value() / 100)
        self.brush_spin.setValue(int(get_float(s, "tools/brush_radius", DEFAULT_BRUSH_RADIUS)))
        self.tol_spin.setValue(get_float(s, "tools/wand_tolerance", DEFAULT_WAND_TOLERANCE))
        if get_bool(s, "view/outline", False):
            self.outline_action.setChecked(True)
            self.canvas.overlay.set_outline(True)
        if get_bool(s, "view/instance_colours", False):
            self.instances_action.setChecked(True)
            self.canvas.overlay.set_instances(True)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/opacity", self.opacity.value() / 100)
        s.setValue("view/outline", self.outline_action.isChecked())
        s.setValue("view/instance_colours", self.instances_action.isChecked())
        s.setValue("tools/brush_radius", self.brush_spin.value())
        s.setValue("tools/wand_tolerance", self.tol_spin.value())
        if not self.is_samples():  # the samples live in the install: not a folder to go back to
            s.setValue("last_folder", str(self.project.folder))
        s.sync()

    def _wire(self) -> None:
        self.files.activated.connect(self.open_image)
        self.session.image_shown.connect(self._image_shown)
        self.session.image_failed.connect(self._image_failed)
        self.session.unreadable.connect(self.files.record_changed)  # counted apart, passed by N
        self.session.saved_state.connect(lambda _: self.update_title())
        # a failed save stays in the status bar (a permanent label) until the retry succeeds
        self.save_label = SaveLabel(self.session, self.statusBar(), self.update_title)
        self.session.status_changed.connect(self._status_changed)
        self.model_dock.live_panel.repredicted.connect(self._repredicted)
        self.classes_dock.classes_changed.connect(self.classes_changed)
        self.classes_dock.visibility_changed.connect(self._visibility_changed)
        # a class delete or its undo: classes, regions and statuses changed in the store
        self.classes_dock.regions_changed.connect(self._after_import)
        self.classes_dock.regions_changed.connect(self.session.forget_histories)
        self.regions_dock.selection_changed.connect(self.editor.select)
        self.regions_dock.visibility_changed.connect(self._visibility_changed)
        # docks report visible while the window is first laid out: look again a moment later
        self.model_dw.visibilityChanged.connect(
            lambda v: v and QTimer.singleShot(PROBE_DELAY_MS, self.model_dock.ensure_probed))
        self.model_dock.apply_prediction.connect(self.apply_prediction)
        self.model_dock.candidates_failed.connect(  # clears "Asking the model…"
            lambda _i, m: self.statusBar().showMessage(f"The model could not answer: {m}", status_times.FAILED_MS))
        self.model_dock.folder_finished.connect(lambda _: self._after_import())
        # a panel's button did its job: the keys go back to the canvas (tools, class digits)
        self.model_dock.focus_canvas.connect(lambda: self.canvas.setFocus())
        self.classes_dock.focus_canvas.connect(lambda: self.canvas.setFocus())
        self.classes_dock.message.connect(lambda text: self.statusBar().showMessage(text, status_times.NOTE_MS))
        # the Files row and counts read the store again once it holds the edits (status included)
        self.session.saved_state.connect(self._files_saved_state)
        self.session.status_changed.connect(lambda *_: self.model_dock.train_panel.labels_changed())
        self.model_dock.folder_finished.connect(lambda _: self.model_dock.train_panel.labels_changed())
        self.canvas.hovered.connect(self.readout.show_at)
        self.canvas.left.connect(self.readout.pointer_left)
        self.failed_record: ImageRecord | None = None  # the image that could not be opened, while it is the one shown
        self.canvas.zoom_changed.connect(self.readout.show_zoom)

    # ================================================================= images
    def open_first(self) -> None:
        last = self.team.last_image()
        ids = self.files.model.ids
        if last in ids:
            self.open_image(last)
        elif ids:
            self.open_image(ids[0])

    def open_image(self, image_id: int) -> None:
        if self.editor.doc is not None and self.editor.doc.image_id == image_id:
            return
        self.session.open(image_id)  # tools forget their state in _image_shown, after the stroke is saved
        self.files.show_current(image_id)

    def _image_shown(self, li: LoadedImage, doc: Document) -> None:
        ed = self.editor
        same = ed.doc is not None and ed.doc.image_id == li.record.id  # read again: the view stays
        ed.reset_tools()  # seeds, points and boxes belong to the image they were made on
        self.canvas.reset_tool()
        if ed.doc is not None:
            ed.doc.disconnect(self._doc_changed)
        ed.doc, ed.image, ed.window = doc, li.array, li.window
        ed.selected = []
        ed.hidden_regions = set()
        h, w = li.array.shape[:2]
        self.canvas.set_image(li.levels, w, h, keep_view=same)
        self.canvas.overlay.set_document(doc, ed, w, h)
        self.canvas.selection.set_regions([])
        doc.connect(self._doc_changed)
        self.regions_dock.refresh()
        self.files.show_current(li.record.id)
        self.model_dock.current_image = (li.record.id, li.array)
        self.model_dock.live_panel.image_opened(li.record.id, li.record.path)
        self.team.remember_last_image(li.record.id)
        self.sequence.image_shown(li.record)  # a frame: the next frames decode ahead
        prev_id, next_id = self.sequence.neighbours(li.record.id) or self.files.neighbours(li.record.id)
        self.session.prefetch([next_id, prev_id])
        self.model_dock.image_shown(li.record, li.array, li.window, next_id)
        self.statusBar().showMessage(f"{li.record.path}  {w} x {h}  {li.array.dtype}", status_times.INFO_MS)
        self.image_notice.hide()
        self.open_elsewhere.show_for(li.record)
        self.team.image_shown(li.record)
        self.failed_record = None
        self.readout.image_changed(self.canvas.viewport().underMouse())  # what is under the cursor on it
        row = self.files.model.row(li.record.id)
        listed = self.files.model.record(row) if row is not None else None
        if listed is not None and listed.error != li.record.error:  # a replaced file reads again
            self.files.record_changed(li.record.id)
        self.update_title()

    def _image_failed(self, rec: ImageRecord, message: str) -> None:
        self.editor.reset_tools()
        self.canvas.reset_tool()
        self.editor.doc, self.editor.image = None, None
        self.canvas.clear_image()
        self.canvas.overlay.doc = None
        self.regions_dock.refresh()
        self.files.record_changed(rec.id)
        self.failed_record = rec
        self.shared_notice.hide()
        self.team.image_failed()
        self.readout.clear()  # nothing is displayed: no position, value, region or zoom
        self.statusBar().showMessage(f"Cannot open {rec.path}: {message}", status_times.ERROR_MS)
        self.sequence.image_failed(rec)  # the frame bar follows to the frame that failed
        # stays above the canvas until another image opens: the status bar's message times out
        self.image_notice.show_text(unreadable_text(rec.path, message, str(self.project.folder)))
        self.update_title(f"cannot open {rec.path}")

    def step_image(self, step: int) -> None:
        cur = self.editor.doc.image_id if self.editor.doc is not None else self.files.current_id
        prev_id, next_id = self.files.neighbours(cur)
        target = next_id if step > 0 else prev_id
        if target is not None:
            self.open_image(target)

    def next_unfinished(self) -> None:
        cur = self.editor.doc.image_id if self.editor.doc is not None else self.files.current_id
        nxt = self.team.next_unfinished(cur) if self.team.exclusive else self.files.next_unfinished(cur)
        if nxt is None:
            rec = self.project.store.images_by_ids([cur]).get(cur) if cur is not None else None
            this_one = rec is not None and rec.status in UNFINISHED and not rec.error
            self.statusBar().showMessage("No other unfinished image (this one is the last)" if this_one
                                         else "No unfinished images left", status_times.NOTE_MS)
        else:
            self.open_image(nxt)

    def set_status(self, status: str) -> None:
        if self.session.current is None:
            self._cannot_mark(status)
            return
        self.session.set_status(status)

    def mark_done_next(self) -> None:
        if self.session.current is None:
            self._cannot_mark(DONE)
            return
        self.set_status(DONE)
        self.next_unfinished()

    def _cannot_mark(self, status: str) -> None:
        """Ctrl+Enter or Ctrl+K with no image shown: say why nothing happened."""
        rec, word = self.failed_record, status.replace("_", " ")
        if rec is not None:
            text = (f"{rec.path} cannot be marked {word}: it cannot be opened ({rec.error or 'unreadable'}). "
                    "Replace it with a readable copy, or go on with the next unfinished image (N)")
        else:
            text = f"No image is open to mark {word}"
        self.statusBar().showMessage(text, status_times.ERROR_MS)

    def _status_changed(self, image_id: int, status: str) -> None:
        self.files.record_changed(image_id)
        self.model_dock.live_panel.status_changed(image_id, status)  # a done image teaches the live model

    def _repredicted(self, image_ids: list) -> None:
        """The live model drew new predictions on these images (never the open one)."""
        current = self.session.current.record.id if self.session.current is not None else None
        for i in image_ids:
            if i != current:
                self.session.forget(i)  # its prefetched record says 'new'; the store knows better
            self.files.record_changed(i)

    def _files_saved_state(self, saved: bool) -> None:
        li = self.session.current
        if saved and li is not None:
            self.files.record_changed(li.record.id)

    # ================================================================= editing
    def _doc_changed(self, change: Change) -> None:
        self.canvas.overlay.refresh(change.box)
        self.readout.refresh()  # an undone or new region under the cursor
        if set(change.region_ids) & set(self.editor.selected) or change.kind == "removed":
            doc = self.editor.doc
            assert doc is not None  # the change comes from the open document
            self.editor.select([i for i in self.editor.selected if i in doc.regions])
            self._refresh_selection_outline()
        self._regions_timer.start()
        self.update_title()

    def on_selection_changed(self) -> None:
        self._refresh_selection_outline()
        self.regions_dock.sync_selection()
        doc = self.editor.doc
        if doc is not None and len(self.editor.selected) == 1:
            r = doc.regions.get(self.editor.selected[0])
            if r is not None and r.class_id != self.editor.current_class_id:
                self.classes_dock.set_current(r.class_id)  # select a region: its class becomes current

    def _refresh_selection_outline(self) -> None:
        doc = self.editor.doc
        regs = [doc.regions[i] for i in self.editor.selected if doc is not None and i in doc.regions]
        self.canvas.selection.set_regions(regs)

    def escape(self) -> None:
        """Esc first cancels what the tool is drawing; pressed again it clears the selection."""
        tool = self.canvas.tool
        if tool is not None and tool.key("Escape"):
            self.canvas.update_preview()
            return
        self.editor.select([])

    def undo(self) -> None:
        window_undo.undo(self)  # the newest step: the open image's, a class delete's or a propagation's

    def redo(self) -> None:
        window_undo.redo(self)

    def delete_selected(self) -> None:
        doc = self.editor.doc
        if doc is None or not self.editor.selected:
            return
        with doc.group("Delete regions"):
            for rid in list(self.editor.selected):
                if rid in doc.regions:
                    doc.remove_region(rid)
        self.editor.select([])

    def merge_selected(self) -> None:
        doc = self.editor.doc
        if doc is None or len(self.editor.selected) < 2:
            self.statusBar().showMessage("Shift+click two regions or more to merge them", status_times.INFO_MS)
            return
        rid = doc.merge(list(self.editor.selected))
        self.editor.select([rid])

    def split_selected(self) -> None:
        rid, doc = self.editor.primary, self.editor.doc
        if rid is not None and doc is not None:  # a primary region implies an open document
            ids = doc.split(rid)
            self.editor.select(ids)
            self.statusBar().showMessage(f"Split into {len(ids)} regions", status_times.BRIEF_MS)

    def fill_holes(self) -> None:
        rid, doc = self.editor.primary, self.editor.doc
        if rid is not None and doc is not None:  # a primary region implies an open document
            doc.fill_holes(rid)

    def change_class(self) -> None:
        doc, cid = self.editor.doc, self.editor.current_class_id
        if doc is None or cid is None:
            return
        with doc.group("Change class"):
            for rid in self.editor.selected:
                doc.set_attrs(rid, class_id=cid)

    def raise_selected(self, up: bool) -> None:
        rid, doc = self.editor.primary, self.editor.doc
        if rid is not None and doc is not None:  # a primary region implies an open document
            doc.raise_region(rid, up)

    def set_tool(self, name: str) -> None:
        tool = self.tools[name]
        self.canvas.set_tool(tool)  # the old tool forgets its points, seeds and preview
        self.tool_actions[name].setChecked(True)
        self.statusBar().showMessage(tool.hint or tool.tip)  # stays until the next message

    def brush_size(self, factor: float) -> None:
        v = self.brush_spin.value()
        self.brush_spin.setValue(max(1, int(round(v * factor)) if factor > 1 else int(v * factor)))
        self.canvas.update_preview()

    def run_assist(self, fn: Callable[[], T], done: Callable[[T], None], label: str) -> None:
        """Classical assists run on a worker; the result is applied if the image is still the same."""
        doc = self.editor.doc
        self.statusBar().showMessage(f"{label}…")

        def apply(result: T) -> None:
            if self.editor.doc is doc:
                # "done" first: what the tool says about its result ("found no object…") must win
                self.statusBar().showMessage(f"{label}: done", status_times.DONE_MS)
                done(result)

        self.assists.submit(fn, apply, lambda f: self.statusBar().showMessage(f"{label} failed: {f.error}",
                                                                                     status_times.FAILED_MS))

    # ================================================================= model results
    def _model_mapper(self) -> ClassMapper | None:
        return model_results.model_mapper(self.project, self.model_dock.info,
                                          self.model_dock.create_classes.isChecked())

    def _classes_added(self) -> None:
        """A model's classes were created in the store: the panels show them."""
        self.classes_dock.refresh()
        self.classes_changed()

    def apply_prediction(self, image_id: int, pred: Prediction) -> None:
        if self.team.refuse_edit():  # the shown image is someone else's to edit
            return
        info, mapper = self.model_dock.info, self._model_mapper()
        assert info is not None and mapper is not None  # a prediction comes from the loaded model
        source = info["name"]
        model_results.apply_prediction(
            self.editor.doc, self.project.store, mapper, source, image_id, pred,
            open_status=lambda: self.session.current.record.status,  # type: ignore[union-attr]  # asked only for the open image
            set_status=self.session.set_status,
            classes_added=self._classes_added)
        self.files.model.invalidate(image_id)
        self.files.update_counts()

    def accept_detection(self, det: Detection) -> int | None:
        doc, mapper, info = self.editor.doc, self._model_mapper(), self.model_dock.info
        if doc is None or mapper is None or info is None:  # no mapper without a model (info)
            return None
        return model_results.accept_detection(
            doc, self.project.store, mapper, info["name"], det,
            message=lambda text: self.statusBar().showMessage(text, status_times.NOTE_MS),
            classes_added=self._classes_added)

    # ================================================================= view
    def classes_changed(self) -> None:
        classes = self.project.store.classes()
        self.canvas.overlay.set_classes(classes)
        self.regions_dock.set_classes(classes)
        self.regions_dock.refresh()
        if self.editor.current_class_id is None and classes:
            self.editor.current_class_id = classes[0].id
            self.classes_dock.set_current(classes[0].id)

    def _visibility_changed(self) -> None:
        self.canvas.overlay.update_colors()
        self.canvas.overlay.rebuild()

    def toggle_overlay(self) -> None:
        self.canvas.overlay.set_shown(not self.hide_action.isChecked())

    def toggle_outline(self) -> None:
        self.canvas.overlay.set_outline(self.outline_action.isChecked())

    def toggle_instances(self) -> None:
        on = self.instances_action.isChecked()
        self.canvas.overlay.set_instances(on)
        self.settings.setValue("view/instance_colours", on)  # kept even if the window never closes cleanly

    # ================================================================= getting started
    def is_samples(self) -> bool:
        """This window shows the bundled sample images (segstudio started with no folder)."""
        if self.project.store.get_setting("samples_imported", False):
            return True  # set only on the samples' store (segstudio.app.open_samples)
        try:
            return self.project.folder.resolve() == (icons_dir().parent / "samples").resolve()
        except OSError:
            return False

    def _show_getting_started_if_new(self) -> None:
        """The getting-started strip: on the bundled samples and on a first run, until it is closed once."""
        s = self.settings
        if get_bool(s, GETTING_STARTED_KEY, False):
            return
        if self.is_samples() or s.value("last_folder") is None:
            self.show_getting_started()

    def show_getting_started(self) -> None:
        samples = " (this window shows the bundled samples)" if self.is_samples() else ""
        self.getting_started.show_text(GETTING_STARTED.format(samples=samples))

    def _getting_started_dismissed(self) -> None:
        self.settings.setValue(GETTING_STARTED_KEY, True)
        self.settings.sync()

    def auto_window(self) -> None:
        li = self.session.current
        if li is None or li.array.dtype == np.uint8:
            return
        self.set_window(imageio.auto_window(li.array))

    def levels_dialog(self) -> LevelsDialog | None:
        li = self.session.current
        if li is None or li.array.dtype == np.uint8:
            self.statusBar().showMessage("Window/level is for 16-bit and float images", status_times.INFO_MS)
            return None
        from segstudio.gui.levels import LevelsDialog
        assert li.window is not None  # load_image gives every non-8-bit image a window
        dlg = LevelsDialog(self, li.array, li.window, self.set_window)
        dlg.open()
        return dlg

    def set_window(self, window: tuple[float, float]) -> None:
        li = self.session.current
        if li is None:
            return
        self.session.set_window(window)
        self.editor.window = window
        h, w = li.array.shape[:2]
        self.canvas.set_image(li.levels, w, h, keep_view=True)

    def update_title(self, note: str | None = None) -> None:
        saved = self.session.all_saved
        li = self.session.current
        name = li.record.path if li is not None else (note or "no image")
        state = "" if saved else ("  (not saved: retrying)" if self.session.save_errors else "  (saving…)")
        store = self.project.store  # a team's project names its server: which one the edits go to
        where = self.project.folder.name + ("" if store.kind == "sqlite" else f" on {store.location} as {store.user}")
        self.setWindowTitle(f"{'' if saved else '● '}{name} — {where} — segstudio{state}")

    # ================================================================= files and dialogs
    def save_now(self) -> None:
        ok = self.session.flush()
        self.update_title()
        if ok:
            self.statusBar().showMessage("All edits saved", status_times.BRIEF_MS)

    def import_dialog(self) -> ImportDialog:
        self.session.flush()
        dlg = ImportDialog(self, self.project)
        dlg.finished.connect(lambda _: self._after_import())
        dlg.open()
        return dlg

    def _after_import(self) -> None:
        self.classes_dock.refresh()
        self.classes_changed()
        self.files.refresh()
        self.session.reload_current()

    def export_dialog(self) -> ExportDialog:
        self.session.flush()
        dlg = ExportDialog(self, self.project)
        dlg.open()
        return dlg

    def show_shortcuts(self) -> ShortcutsDialog:
        dlg = ShortcutsDialog(self, self.menus)
        dlg.open()
        return dlg

    def show_stats(self) -> StatsDialog:
        from segstudio.gui.stats import StatsDialog
        self.session.flush()
        dlg = StatsDialog(self, self.project.store)
        dlg.open()
        return dlg

    def open_folder(self, folder: str | None = None) -> MainWindow | None:
        """Another folder in a new window (this one closes once the new one is up)."""
        from pathlib import Path

        from PySide6.QtWidgets import QFileDialog

        from segstudio.core.project import Project, ProjectError
        from segstudio.core.store import StoreError
        if folder is None:
            start = open_folder_start(self.settings, None if self.is_samples() else self.project.folder,
                                      icons_dir().parent / "samples")
            folder = QFileDialog.getExistingDirectory(self, "Open image folder", start)
            if not folder:
                return None
        here = self.project  # the same folder again keeps its store (a team's server stays the server)
        same = Path(folder).resolve() == here.folder.resolve() and here.store.kind != "sqlite"
        try:
            project = Project.open(folder, store=here.store.location if same else None)
        except (ProjectError, StoreError, OSError) as e:
            QMessageBox.warning(self, "Open folder", f"Cannot open {folder}:\n{e}")
            return None
        win = MainWindow(project, self.settings)
        _WINDOWS.append(win)
        win.show()
        win.open_first()
        self.close()
        return win

    def about(self) -> None:
        QMessageBox.about(self, "About segstudio",
                          f"segstudio {__version__}\nProject: {self.project.store.location}")

    def confirm_close(self) -> bool:
        """Write every edit; when the store refuses, ask before anything is discarded."""
        if confirm_unsaved(self, self.session):
            return True
        self.update_title()
        return False

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_close():
            event.ignore()
            return
        self.model_dock.shutdown(wait=2.0)  # both model threads: the pre-label model's and the click model's
        self.propagation.shutdown()
        self.claims_timer.stop()
        self.team.shutdown()
        self.session.close()
        self.save_settings()
        self.assists.shutdown(wait=False)
        super().closeEvent(event)
        if any(w is self for w in _WINDOWS):
            # later, not here: dropping the last reference inside closeEvent would delete the
            # window while Qt is still closing it
            QTimer.singleShot(0, lambda: _forget_window(self))
        if self._gc_held:
            self._gc_held = False
            gc_guard.release()
