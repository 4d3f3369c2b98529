"""Issue 23, the window's part: unreadable files, Cancel, the dialogs, stale status text and the
polish items, driven as a person drives the window (keys, clicks, menu actions); every modal is
answered by a monkeypatched static, so nothing waits for a person."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QPushButton

from tests.gui.conftest import open_window

CTRL, SHIFT, NO = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.NoModifier


# ------------------------------------------------------------------ helpers
def vpoint(win, x, y) -> QPoint:
    return win.canvas.mapFromScene(QPointF(x, y))


def key(win, k, mods=NO):
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, k, mods)


def stroke(win, pts):
    win.set_tool("brush")
    win.brush_spin.setValue(5)
    vp = win.canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, NO, vpoint(win, *pts[0]))
    for p in pts[1:]:
        QTest.mouseMove(vp, vpoint(win, *p))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, NO, vpoint(win, *pts[-1]))


def click_row(win, path: str) -> None:
    """Click an image's row in the Files list."""
    m = win.files.model
    row = next(r for r in range(m.rowCount()) if m.record(r).path == path)
    view = win.files.view
    view.scrollTo(m.index(row, 0))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, NO, view.visualRect(m.index(row, 0)).center())


def shown(win) -> str | None:
    li = win.session.current
    return li.record.path if li is not None else None


def listed_paths(win) -> list[str]:
    m = win.files.model
    return [m.record(r).path for r in range(m.rowCount())]


def status_text(win, path: str) -> str:
    m = win.files.model
    row = listed_paths(win).index(path)
    return m.data(m.index(row, 1))


def wait_status(qtbot, win, path: str, status: str) -> None:
    rec = lambda: win.project.store.image_by_path(path)  # noqa: E731
    qtbot.waitUntil(lambda: rec().status == status, timeout=15000)  # 2 shared cores: generous
    qtbot.waitUntil(lambda: status_text(win, path) == status.replace("_", " "), timeout=15000)


def trigger(win, text: str) -> None:
    """Trigger a menu action by its text, as a click on the menu entry does."""
    for menu in win.menus:
        for a in menu.actions():
            if a.text().replace("&", "") == text:
                a.trigger()
                return
    raise AssertionError(f"no menu action {text!r}")


@pytest.fixture
def broken_window(qtbot, gui_folder):
    """photo0, photo0_broken (not an image), photo1, photo2; the window shows photo0."""
    (gui_folder / "photo0_broken.png").write_bytes(b"not a png at all")
    win = open_window(qtbot, gui_folder)
    assert shown(win) == "photo0.png"
    yield win
    win.close()


def open_broken(qtbot, win) -> None:
    click_row(win, "photo0_broken.png")
    qtbot.waitUntil(lambda: "cannot open" in win.windowTitle(), timeout=10000)


# ------------------------------------------------------------------ unreadable files
def test_an_unreadable_image_is_counted_apart_not_as_new(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)
    qtbot.waitUntil(lambda: "unreadable 1" in win.files.counts.text(), timeout=5000)
    counts = win.files.counts.text()
    assert "new 3" in counts and "new 4" not in counts, counts  # photo0..2; not the broken one
    assert status_text(win, "photo0_broken.png") == "unreadable"


def test_n_passes_an_unreadable_image_by(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)  # now the store knows it cannot be read
    click_row(win, "photo0.png")
    qtbot.waitUntil(lambda: shown(win) == "photo0.png", timeout=10000)
    key(win, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: shown(win) not in (None, "photo0.png") or "cannot open" in win.windowTitle(),
                    timeout=10000)
    assert shown(win) == "photo1.png", win.windowTitle()


def test_ctrl_enter_on_an_unreadable_image_says_why(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)
    win.statusBar().clearMessage()
    key(win, Qt.Key.Key_Return, CTRL)
    msg = win.statusBar().currentMessage()
    assert "photo0_broken.png" in msg and "cannot be marked done" in msg and "cannot be opened" in msg, msg
    assert win.project.store.image_by_path("photo0_broken.png").status == "new"  # nothing was marked
    key(win, Qt.Key.Key_K, CTRL)  # Mark skipped: the same answer, not silence
    assert "cannot be marked skipped" in win.statusBar().currentMessage()


def test_a_replaced_unreadable_file_counts_again_once_opened(qtbot, broken_window, gui_folder):
    win = broken_window
    open_broken(qtbot, win)
    qtbot.waitUntil(lambda: "unreadable 1" in win.files.counts.text(), timeout=5000)
    shutil.copy(gui_folder / "photo1.png", gui_folder / "photo0_broken.png")  # a readable copy
    click_row(win, "photo0.png")
    qtbot.waitUntil(lambda: shown(win) == "photo0.png", timeout=10000)
    click_row(win, "photo0_broken.png")
    qtbot.waitUntil(lambda: shown(win) == "photo0_broken.png", timeout=10000)
    qtbot.waitUntil(lambda: "unreadable" not in win.files.counts.text(), timeout=5000)
    assert "new 4" in win.files.counts.text()
    assert status_text(win, "photo0_broken.png") == "new"


def _reddish(img, rect) -> int:
    n = 0
    for x in range(rect.left(), rect.right()):
        for y in range(rect.top(), rect.bottom()):
            c = QColor(img.pixel(x, y))
            if c.red() > 150 and c.green() < 110 and c.blue() < 110:
                n += 1
    return n


def test_the_red_cross_stays_visible_on_the_selected_row(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)
    m, view = win.files.model, win.files.view
    row = listed_paths(win).index("photo0_broken.png")
    qtbot.waitUntil(lambda: m.record(row).error is not None, timeout=5000)
    assert view.selectionModel().isRowSelected(row, m.index(row, 0).parent())  # the shown image's row
    view.viewport().setFocus()  # an active, focused view: the strongest highlight
    rect = view.visualRect(m.index(row, 0))
    rect.setWidth(min(rect.width(), 30))  # the decoration at the row's start
    img = view.viewport().grab().toImage()
    assert _reddish(img, rect) >= 4, "no red cross in the selected row"


# ------------------------------------------------------------------ Cancel
def test_cancel_in_segment_folder_says_cancelled_not_done(window, qtbot, tmp_path):
    pytest.importorskip("torch")
    from tests.gui.test_model_gui import load_unet
    from tests.inference.helpers import tiny_unet_checkpoint
    win = window
    load_unet(win, qtbot, tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",)))
    dock = win.model_dock
    win.model_dw.raise_()
    dock.scope.setCurrentIndex(dock.scope.findData(None))  # all 3 images
    finished = []
    dock.folder_finished.connect(finished.append)
    QTest.mouseClick(dock.seg_folder, Qt.MouseButton.LeftButton)
    assert dock.cancel_button.isEnabled()
    QTest.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(finished), timeout=60000)
    text = dock.progress_label.text()
    assert re.search(r"Cancelled after [0-2] of 3 images", text), text
    assert "Done" not in text


# ------------------------------------------------------------------ dialogs
def _dialog(kind):
    dlgs = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    assert len(dlgs) == 1, dlgs
    return dlgs[0]


def test_export_dialog_remembers_and_can_run_again(window, qtbot, tmp_path, monkeypatch):
    from segstudio.gui.dialogs import ExportDialog
    win = window
    trigger(win, "Export dataset…")
    dlg = _dialog(ExportDialog)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    dlg.status_boxes["new"].setChecked(True)
    dlg.out.setText(str(tmp_path / "first"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    assert len(list((tmp_path / "first").glob("*.png"))) == 3
    # the run is over: the form and Run again stay, next to Close
    assert dlg.run_button.isVisible() and dlg.run_button.isEnabled() and dlg.run_button.text() == "Run again"
    assert dlg.close_button.isVisible() and dlg.fmt.isEnabled() and dlg.out.isEnabled()
    first = dlg.result
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.out.setText(str(tmp_path / "second" / "ann.json"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not first, timeout=20000)
    assert (tmp_path / "second" / "ann.json").is_file()
    QTest.mouseClick(dlg.close_button, Qt.MouseButton.LeftButton)
    assert not dlg.isVisible()
    # opened again: the last run's format, output and statuses
    trigger(win, "Export dataset…")
    dlg2 = _dialog(ExportDialog)
    assert dlg2 is not dlg
    assert dlg2.fmt.currentData() == "coco"
    assert dlg2.out.text() == str(tmp_path / "second" / "ann.json")
    assert dlg2.status_boxes["new"].isChecked()
    # Browse… starts beside the remembered output
    seen = {}

    def save_name(parent, caption, start, *a, **k):
        seen["start"] = start
        return "", ""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_name))
    browse = next(b for b in dlg2.findChildren(QPushButton) if b.text() == "Browse…")
    QTest.mouseClick(browse, Qt.MouseButton.LeftButton)
    assert seen["start"] == str(tmp_path / "second" / "ann.json")
    dlg2.reject()


def test_import_dialog_remembers_and_can_run_again(window, qtbot, tmp_path, monkeypatch):
    from segstudio.gui.dialogs import ExportDialog, ImportDialog
    win = window
    trigger(win, "Export dataset…")  # a COCO file to import
    ex = _dialog(ExportDialog)
    ex.fmt.setCurrentIndex(ex.fmt.findData("coco"))
    ex.status_boxes["new"].setChecked(True)
    ex.out.setText(str(tmp_path / "coco" / "ann.json"))
    QTest.mouseClick(ex.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ex.result is not None, timeout=20000)
    ex.reject()
    trigger(win, "Import annotations…")
    dlg = _dialog(ImportDialog)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.source.setText(str(tmp_path / "coco" / "ann.json"))
    dlg.status.setCurrentIndex(dlg.status.findData("in_progress"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    assert dlg.run_button.isVisible() and dlg.run_button.isEnabled() and dlg.close_button.isVisible()
    first = dlg.result
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)  # Run again
    qtbot.waitUntil(lambda: dlg.result is not first, timeout=20000)
    QTest.mouseClick(dlg.close_button, Qt.MouseButton.LeftButton)
    trigger(win, "Import annotations…")
    dlg2 = _dialog(ImportDialog)
    assert dlg2.fmt.currentData() == "coco"
    assert dlg2.source.text() == str(tmp_path / "coco" / "ann.json")
    assert dlg2.status.currentData() == "in_progress"
    seen = {}

    def open_name(parent, caption, start, *a, **k):
        seen["start"] = start
        return "", ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(open_name))
    browse = next(b for b in dlg2.findChildren(QPushButton) if b.text() == "Browse…")
    QTest.mouseClick(browse, Qt.MouseButton.LeftButton)
    assert seen["start"] == str(tmp_path / "coco")
    dlg2.reject()


# ------------------------------------------------------------------ stale text
def hover(win, x, y):
    # from a point beside it first: a move to where the cursor already is (a previous test may
    # have left it there) sends no event
    QTest.mouseMove(win.canvas.viewport(), vpoint(win, x + 3, y + 3))
    QTest.mouseMove(win.canvas.viewport(), vpoint(win, x, y))


def test_readout_forgets_an_undone_region_and_an_image_it_left(window, qtbot):
    win = window
    stroke(win, [(30, 30), (60, 30)])
    doc = win.editor.doc
    assert len(doc.regions) == 1
    hover(win, 45, 30)
    assert win.readout.region_label.text().startswith("object #"), win.readout.region_label.text()
    key(win, Qt.Key.Key_Z, CTRL)
    assert not doc.regions
    assert win.readout.region_label.text() == ""  # the region is gone
    key(win, Qt.Key.Key_Z, CTRL | SHIFT)
    assert win.readout.region_label.text().startswith("object #")  # and back with redo
    first = doc.image_id
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id != first, timeout=10000)
    assert win.readout.region_label.text() == ""  # nothing there on this image


def test_readout_is_empty_while_no_image_is_displayed(qtbot, broken_window):
    win = broken_window

    def over_the_image():  # hovered again on each try: the view may still be fitting the image to the window
        hover(win, 20, 20)
        return bool(win.readout.pos_label.text() and win.readout.value_label.text())
    qtbot.waitUntil(over_the_image, timeout=5000)
    open_broken(qtbot, win)
    r = win.readout
    assert (r.pos_label.text(), r.value_label.text(), r.region_label.text(), r.zoom_label.text()) == ("",) * 4
    hover(win, 25, 25)  # the mouse over an empty canvas
    assert (r.pos_label.text(), r.value_label.text()) == ("", "")


# ------------------------------------------------------------------ polish
def test_files_sort_by_name_as_a_person_counts(qtbot, tmp_path):
    d = tmp_path / "nums"
    d.mkdir()
    for n in (1, 2, 10, 11, 3, 20):
        Image.fromarray(np.full((20, 20, 3), n, np.uint8)).save(d / f"img{n}.png")
    win = open_window(qtbot, d)
    assert listed_paths(win) == ["img1.png", "img2.png", "img3.png", "img10.png", "img11.png", "img20.png"]
    key(win, Qt.Key.Key_D)  # the next image follows the list
    qtbot.waitUntil(lambda: shown(win) == "img2.png", timeout=10000)
    win.close()


def test_most_uncertain_first_shows_the_value(window, qtbot):
    win = window
    store = win.project.store
    ids = {r.path: r.id for r in store.images()}
    store.set_uncertainty({ids["photo0.png"]: 0.12, ids["photo2.png"]: 0.87})
    combo = win.files.order_combo
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Down)  # By name -> Most uncertain first
    assert combo.currentData() == "uncertainty"
    m, view = win.files.model, win.files.view
    col = next(c for c in range(m.columnCount()) if m.headerData(c, Qt.Orientation.Horizontal) == "Uncertainty")
    assert not view.isColumnHidden(col)
    rows = [(m.data(m.index(r, 0)), m.data(m.index(r, col))) for r in range(m.rowCount())]
    assert rows == [("photo2.png", "0.87"), ("photo0.png", "0.12"), ("photo1.png", "–")]
    QTest.keyClick(combo, Qt.Key.Key_Up)  # back to By name: the column goes
    assert view.isColumnHidden(col)


def test_first_start_shows_the_annotated_sample(qtbot, tmp_path):
    from segstudio.app import SAMPLES, open_samples
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    if not SAMPLES.is_dir():
        pytest.skip("no bundled samples in this install")
    project = open_samples(tmp_path / "store" / "project.db")
    win = MainWindow(project, app_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_first()  # what segstudio does with no folder and no last image
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=20000)
    rec = win.session.current.record
    annotated = max(project.store.image_ids(), key=project.store.region_count)
    assert rec.id == annotated and project.store.region_count(rec.id) > 0, rec.path
    assert rec.path != "flower.jpg"
    win.close()
    project.close()


def test_open_folder_starts_outside_the_install(qtbot, tmp_path, monkeypatch):
    from segstudio.app import SAMPLES, open_samples
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    if not SAMPLES.is_dir():
        pytest.skip("no bundled samples in this install")
    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_PICTURES_DIR", str(home / "Pictures"))
    seen = []

    def pick(parent, caption, start="", *a, **k):
        seen.append(start)
        return ""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(pick))
    project = open_samples(tmp_path / "store" / "project.db")
    win = MainWindow(project, app_settings())
    qtbot.addWidget(win)
    win.show()
    trigger(win, "Open folder…")  # over the bundled samples
    install = SAMPLES.resolve().parent.parent
    assert seen and not Path(seen[-1]).resolve().is_relative_to(install), seen
    assert Path(seen[-1]).resolve() in (home.resolve(), (home / "Pictures").resolve())
    # after a folder was opened, Open folder starts there
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    win2 = win.open_folder(str(folder))
    qtbot.addWidget(win2)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)
    trigger(win2, "Open folder…")
    assert Path(seen[-1]).resolve() == folder.resolve(), seen
    win2.close()
    project.close()


def test_weights_note_has_one_full_stop(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from segstudio.gui.weights_dialog import WeightsDialog
    from segstudio.inference.runtime import weights_catalog as wc
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    import torch
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(wc, "entries", lambda: [wc.WeightsEntry("tiny", "Tiny", ("tests",), "tiny.pth",
                                                               "https://example.invalid/tiny.pth")])
    dlg = WeightsDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.job is None and bool(dlg.statuses) and "present" in dlg.note.text(), timeout=30000)
    note = dlg.note.text()
    assert "Add file…" in note and "…." not in note, note


# ------------------------------------------------------------------ status after undo
@pytest.mark.parametrize("opened, edited", [("new", "in_progress"), ("predicted", "in_progress"),
                                            ("done", "done"), ("in_progress", "in_progress"),
                                            ("skipped", "skipped")])
def test_undoing_every_edit_gives_back_the_status_the_image_was_opened_with(qtbot, gui_folder, opened, edited):
    from segstudio.core.project import Project
    p = Project.open(gui_folder)
    p.store.set_status(p.store.image_by_path("photo0.png").id, opened)
    p.close()
    win = open_window(qtbot, gui_folder)
    assert shown(win) == "photo0.png"
    stroke(win, [(30, 30), (60, 40)])
    wait_status(qtbot, win, "photo0.png", edited)
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=15000)
    key(win, Qt.Key.Key_Z, CTRL)
    assert not win.editor.doc.regions
    wait_status(qtbot, win, "photo0.png", opened)
    key(win, Qt.Key.Key_Z, CTRL | SHIFT)  # redo: edited again
    wait_status(qtbot, win, "photo0.png", edited)
    win.close()


def test_undo_after_coming_back_restores_the_first_status(window, qtbot):
    win = window
    stroke(win, [(30, 30), (60, 40)])
    stroke(win, [(30, 60), (60, 70)])
    wait_status(qtbot, win, "photo0.png", "in_progress")
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: shown(win) == "photo1.png", timeout=10000)
    key(win, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: shown(win) == "photo0.png", timeout=10000)
    key(win, Qt.Key.Key_Z, CTRL)
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=15000)
    assert win.project.store.image_by_path("photo0.png").status == "in_progress"  # one edit is left
    key(win, Qt.Key.Key_Z, CTRL)
    wait_status(qtbot, win, "photo0.png", "new")
    assert "in progress 0" in win.files.counts.text()


def test_a_dropped_history_start_keeps_in_progress(window, qtbot):
    """When the oldest steps were dropped to bound memory, undoing what is left does not reach
    the state the image was opened in: the status stays."""
    win = window
    win.editor.doc.undo_stack.max_bytes = 1  # every new step drops the one before
    stroke(win, [(30, 30), (60, 40)])
    stroke(win, [(30, 60), (60, 70)])
    wait_status(qtbot, win, "photo0.png", "in_progress")
    key(win, Qt.Key.Key_Z, CTRL)
    assert len(win.editor.doc.regions) == 1
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=15000)
    assert win.project.store.image_by_path("photo0.png").status == "in_progress"


def test_undo_after_marking_done_keeps_done(window, qtbot):
    """Done is a person's word: undoing the edits made before it does not take it back."""
    win = window
    stroke(win, [(30, 30), (60, 40)])
    wait_status(qtbot, win, "photo0.png", "in_progress")
    key(win, Qt.Key.Key_Return, CTRL)  # done, and on to the next unfinished image
    qtbot.waitUntil(lambda: shown(win) == "photo1.png", timeout=10000)
    key(win, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: shown(win) == "photo0.png", timeout=10000)
    key(win, Qt.Key.Key_Z, CTRL)
    assert not win.editor.doc.regions
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=15000)
    assert win.project.store.image_by_path("photo0.png").status == "done"
    assert status_text(win, "photo0.png") == "done"


# ------------------------------------------------------------------ unreadable files and the status filters
def choose_filter(win, text: str) -> None:
    """Pick a Files status filter with the keyboard, as a person does on the focused combo."""
    combo = win.files.status_combo
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Home)
    for _ in range(combo.count()):
        if combo.currentText() == text:
            return
        QTest.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == text, f"no status filter {text!r}"


@pytest.mark.parametrize("name", ["New", "Unfinished"])
def test_status_filters_leave_unreadable_images_out(qtbot, broken_window, name):
    win = broken_window
    open_broken(qtbot, win)
    choose_filter(win, name)
    assert listed_paths(win) == ["photo0.png", "photo1.png", "photo2.png"]


def test_all_and_unreadable_filters_list_the_unreadable_image(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)
    choose_filter(win, "New")
    choose_filter(win, "All")
    assert "photo0_broken.png" in listed_paths(win)
    choose_filter(win, "Unreadable")
    assert listed_paths(win) == ["photo0_broken.png"]


def test_clicking_the_unreadable_count_lists_them(qtbot, broken_window):
    win = broken_window
    open_broken(qtbot, win)
    choose_filter(win, "New")
    label = win.files.counts
    qtbot.waitUntil(lambda: "unreadable 1" in label.text(), timeout=5000)
    # click along the counts line until the link is hit (clicks on plain text do nothing)
    for y in range(2, label.height(), 4):
        for x in range(2, label.width(), 6):
            QTest.mouseClick(label, Qt.MouseButton.LeftButton, NO, QPoint(x, y))
            if win.files.status_combo.currentText() != "New":
                break
        else:
            continue
        break
    assert win.files.status_combo.currentText() == "Unreadable"
    assert listed_paths(win) == ["photo0_broken.png"]


# ------------------------------------------------------------------ an image open in another window
def hold_elsewhere(win, path: str, owner: str):
    """Another process's window holds `path`: its own store connection, its own holder id."""
    from segstudio.core.claims import OpenImageClaim
    from segstudio.core.store import SqliteStore
    store = SqliteStore(win.project.store.db_path, create=False)
    claim = OpenImageClaim(store, owner=owner)
    claim.hold(store.image_by_path(path).id)
    return claim


def test_an_image_open_in_another_window_says_so(window, qtbot):
    win = window
    other = hold_elsewhere(win, "photo1.png", "workstation-7:4242:feedbeef")
    try:
        click_row(win, "photo1.png")
        qtbot.waitUntil(lambda: shown(win) == "photo1.png", timeout=10000)
        assert win.shared_notice.isVisible()
        text = win.shared_notice.text.text()
        assert "photo1.png is also open in another window" in text, text
        assert "process 4242 on workstation-7" in text and "leave it alone" in text, text
        click_row(win, "photo2.png")  # nobody else holds this one
        qtbot.waitUntil(lambda: shown(win) == "photo2.png", timeout=10000)
        assert not win.shared_notice.isVisible()
    finally:
        other.release()


def test_a_claim_left_by_a_gone_process_on_this_host_is_not_reported(window, qtbot):
    import socket
    import subprocess
    import sys
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    win = window
    other = hold_elsewhere(win, "photo1.png", f"{socket.gethostname()}:{gone.pid}:deadbeef")
    try:
        click_row(win, "photo1.png")
        qtbot.waitUntil(lambda: shown(win) == "photo1.png", timeout=10000)
        assert not win.shared_notice.isVisible()
    finally:
        other.release()


# ------------------------------------------------------------------ export recovery in the dialog's report
def test_export_dialog_shows_what_recovering_a_killed_export_did(window, qtbot, tmp_path):
    from segstudio.gui.dialogs import ExportDialog
    from tests.io.test_export_recovery_report import leave_killed_export
    win = window
    out = tmp_path / "exports" / "out"
    out.parent.mkdir()
    left = leave_killed_export(win.project, out)
    trigger(win, "Export dataset…")
    dlg = _dialog(ExportDialog)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    dlg.status_boxes["new"].setChecked(True)
    dlg.out.setText(str(out))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    shown_text = dlg.report.toPlainText()
    assert dlg.report.isVisible()
    assert f"put the previous export back in {out}" in shown_text, shown_text
    assert f"removed 1 leftover of killed or interrupted exports to {out}" in shown_text, shown_text
    assert f"kept {left['legacy']}: an unfinished export of an older segstudio" in shown_text, shown_text
    assert len(list(out.glob("*.png"))) == 3
    dlg.reject()


def test_the_window_learns_when_another_window_opens_its_image_later(window, qtbot):
    win = window
    win.claims_timer.setInterval(50)  # asks the store every 3 s; the test need not wait that long
    assert shown(win) == "photo0.png" and not win.shared_notice.isVisible()
    other = hold_elsewhere(win, "photo0.png", "workstation-7:4242:feedbeef")
    try:
        qtbot.waitUntil(win.shared_notice.isVisible, timeout=5000)
        assert "process 4242 on workstation-7" in win.shared_notice.text.text()
    finally:
        other.release()
    qtbot.waitUntil(lambda: not win.shared_notice.isVisible(), timeout=5000)  # closed there: gone here


def test_a_closed_open_elsewhere_notice_stays_closed(window, qtbot):
    win = window
    win.claims_timer.setInterval(50)
    other = hold_elsewhere(win, "photo0.png", "workstation-7:4242:feedbeef")
    try:
        qtbot.waitUntil(win.shared_notice.isVisible, timeout=5000)
        QTest.mouseClick(win.shared_notice.close_button, Qt.MouseButton.LeftButton)
        qtbot.wait(300)  # several rechecks
        assert not win.shared_notice.isVisible()
        third = hold_elsewhere(win, "photo0.png", "zz-laptop:77:0badc0de")  # someone else too: said again
        try:
            qtbot.waitUntil(win.shared_notice.isVisible, timeout=5000)
        finally:
            third.release()
    finally:
        other.release()


def _readout(win) -> tuple[str, str, str]:
    r = win.readout
    return r.pos_label.text(), r.value_label.text(), r.region_label.text()


def test_readout_empties_when_the_pointer_leaves_the_canvas_and_stays_empty_on_an_image_shown_from_the_keys(
        window, qtbot):
    win = window
    stroke(win, [(30, 30), (60, 30)])  # a region on this image
    first = win.editor.doc.image_id
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id != first, timeout=10000)
    stroke(win, [(30, 30), (60, 30)])  # and at the same place on the next
    key(win, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: win.editor.doc.image_id == first, timeout=10000)
    hover(win, 45, 30)
    assert all(_readout(win)) and _readout(win)[2].startswith("object #"), _readout(win)
    files = win.files.view.viewport()
    QTest.mouseMove(files, files.rect().center())  # the pointer over the Files list
    assert _readout(win) == ("", "", ""), _readout(win)
    key(win, Qt.Key.Key_D)  # the next image, from the keyboard: the pointer is still over the list
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=10000)
    assert _readout(win) == ("", "", ""), _readout(win)
    assert win.readout.zoom_label.text()  # the zoom is about the image, not the pointer: it stays
    hover(win, 45, 30)  # back over the canvas: read out again
    assert _readout(win)[2].startswith("object #"), _readout(win)
