"""The window as a user drives it, offscreen: real mouse and key events on the canvas."""

import json

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest


def view_point(win, x, y) -> QPoint:
    return win.canvas.mapFromScene(QPointF(x, y))


def drag(qtbot, win, pts, button=Qt.MouseButton.LeftButton, mods=Qt.KeyboardModifier.NoModifier):
    vp = win.canvas.viewport()
    QTest.mousePress(vp, button, mods, view_point(win, *pts[0]))
    for p in pts[1:]:
        QTest.mouseMove(vp, view_point(win, *p))
    QTest.mouseRelease(vp, button, mods, view_point(win, *pts[-1]))


def click(win, x, y, button=Qt.MouseButton.LeftButton):
    QTest.mouseClick(win.canvas.viewport(), button, Qt.KeyboardModifier.NoModifier, view_point(win, x, y))


def key(win, k, mods=Qt.KeyboardModifier.NoModifier):
    QTest.keyClick(win.canvas, k, mods)


def test_open_navigate_and_status(window, qtbot):
    win = window
    first = win.editor.doc.image_id
    assert win.files.model.rowCount() == 3
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    second = win.editor.doc.image_id
    key(win, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: win.editor.doc.image_id == first, timeout=5000)
    key(win, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # done and next
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    assert win.project.store.image(first).status == "done"
    assert "done 1" in win.files.counts.text()
    win.files.status_combo.setCurrentIndex(win.files.status_combo.findText("Done"))
    assert win.files.model.rowCount() == 1 and second != first


def test_paint_undo_redo_and_autosave(window, qtbot):
    win = window
    win.set_tool("brush")
    win.brush_spin.setValue(4)
    drag(qtbot, win, [(20, 20), (40, 20), (60, 30)])
    doc = win.editor.doc
    assert len(doc.regions) == 1
    rid = next(iter(doc.regions))
    area = doc.regions[rid].area
    assert area > 100
    assert "●" in win.windowTitle()  # unsaved mark
    qtbot.waitUntil(lambda: win.project.store.region_count(doc.image_id) == 1, timeout=3000)
    qtbot.waitUntil(lambda: "●" not in win.windowTitle(), timeout=3000)
    assert win.project.store.image(doc.image_id).status == "in_progress"
    key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.regions
    key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert doc.regions[rid].area == area
    key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(win, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert rid in doc.regions
    # the overlay shows it: labels under the stroke carry the class's palette index
    assert win.canvas.overlay.labels[20, 30] > 0


def test_polygon_then_change_class(window, qtbot):
    win = window
    c2 = win.project.store.add_class("other")
    win.classes_changed()
    win.classes_dock.refresh()
    win.set_tool("polygon")
    for x, y in [(10, 10), (50, 10), (50, 40), (10, 40)]:
        click(win, x, y)
    key(win, Qt.Key.Key_Return)
    doc = win.editor.doc
    assert len(doc.regions) == 1
    r = next(iter(doc.regions.values()))
    assert abs(r.area - 41 * 31) < 120
    win.classes_dock.set_current(c2.id)
    win.editor.select([r.id])
    win.classes_dock.set_current(c2.id)
    win.change_class()
    assert r.class_id == c2.id
    win.session.flush()
    assert win.project.store.regions(doc.image_id)[0].class_id == c2.id
    # Esc cancels a polygon in progress
    click(win, 100, 100)
    click(win, 120, 100)
    key(win, Qt.Key.Key_Escape)
    assert not win.tools["polygon"].points and len(doc.regions) == 1


def test_box_grabcut(window, qtbot):
    win = window
    win.set_tool("grabcut")
    drag(qtbot, win, [(45, 25), (80, 60), (118, 97)])
    doc = win.editor.doc
    qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=10000)
    r = next(iter(doc.regions.values()))
    truth = np.zeros((120, 160), bool)
    yy, xx = np.mgrid[0:120, 0:160]
    truth[(xx - 80) ** 2 + (yy - 60) ** 2 <= 25 ** 2] = True
    full = r.full_mask(160, 120)
    assert (full & truth).sum() / (full | truth).sum() > 0.85


def test_select_merge_split_delete(window, qtbot):
    win = window
    win.set_tool("polygon")
    for poly in ([(10, 10), (30, 10), (30, 30)], [(60, 60), (90, 60), (90, 90)]):
        for x, y in poly:
            click(win, x, y)
        key(win, Qt.Key.Key_Return)
    doc = win.editor.doc
    a, b = sorted(doc.regions)
    win.set_tool("select")
    click(win, 25, 15)
    assert win.editor.selected == [a]
    QTest.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     view_point(win, 85, 70))
    assert win.editor.selected == [a, b]
    win.merge_selected()
    assert len(doc.regions) == 1
    win.split_selected()
    assert len(doc.regions) == 2
    win.delete_selected()
    assert len(doc.regions) == 0
    win.undo()
    assert len(doc.regions) == 2


def test_export_coco_and_png_from_dialogs(window, qtbot, tmp_path):
    win = window
    win.set_tool("polygon")
    for x, y in [(10, 10), (50, 10), (50, 40)]:
        click(win, x, y)
    key(win, Qt.Key.Key_Return)
    dlg = win.export_dialog()
    dlg.status_boxes["in_progress"].setChecked(True)  # done only by default; the polygon made it in progress
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.out.setText(str(tmp_path / "out" / "c.json"))
    dlg.run_button.click()
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=10000)
    assert "1 region" in dlg.report.toPlainText() and "1 regions" not in dlg.report.toPlainText()
    d = json.loads((tmp_path / "out" / "c.json").read_text())
    assert len(d["annotations"]) == 1
    dlg.accept()
    dlg = win.export_dialog()
    for s in ("new", "in_progress"):
        dlg.status_boxes[s].setChecked(True)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    dlg.out.setText(str(tmp_path / "png"))
    dlg.run_button.click()
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=10000)
    assert len(list((tmp_path / "png").glob("*.png"))) == 3
    dlg.accept()


def test_import_dialog_reports_errors(window, qtbot, tmp_path):
    win = window
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    dlg = win.import_dialog()
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.source.setText(str(bad))
    dlg.run_button.click()
    qtbot.waitUntil(lambda: "Failed" in dlg.report.toPlainText(), timeout=10000)
    assert "not valid JSON" in dlg.report.toPlainText()
    dlg.accept()


def test_close_and_reopen_keeps_edits(qtbot, gui_folder):
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    p = Project.open(gui_folder)
    p.store.add_class("object")
    win = MainWindow(p, app_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    win.set_tool("brush")
    drag(qtbot, win, [(20, 20), (60, 20)])
    image_id = win.editor.doc.image_id
    area = next(iter(win.editor.doc.regions.values())).area
    win.opacity.setValue(70)
    win.close()  # no explicit save: closing must not lose the stroke
    p.close()
    p2 = Project.open(gui_folder)
    regs = p2.store.regions(image_id)
    assert len(regs) == 1 and regs[0].area == area
    win2 = MainWindow(p2, app_settings())
    qtbot.addWidget(win2)
    assert win2.opacity.value() == 70  # settings persist
    win2.show()
    win2.open_first()
    qtbot.waitUntil(lambda: win2.editor.doc is not None, timeout=10000)
    assert win2.editor.doc.image_id == image_id  # reopens where the user was
    assert len(win2.editor.doc.regions) == 1
    win2.close()


def test_broken_image_shows_error_and_folder_goes_on(qtbot, gui_folder):
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    (gui_folder / "aaa_broken.png").write_bytes(b"not a png")
    p = Project.open(gui_folder)
    win = MainWindow(p, app_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: "cannot open" in win.windowTitle(), timeout=10000)
    rec = p.store.image_by_path("aaa_broken.png")
    assert "not an image" in rec.error
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    win.close()


def test_shortcut_reference_lists_actions(window):
    dlg = window.show_shortcuts()
    names = {r[1] for r in dlg.rows}
    assert {"Undo", "Brush", "Polygon", "Next image"} <= names
    assert any(r[2] == "Ctrl+Z" for r in dlg.rows)
    dlg.accept()


def test_sixteen_bit_pixel_value_in_status(qtbot, tmp_path):
    import tifffile
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    d = tmp_path / "u16"
    d.mkdir()
    a = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    tifffile.imwrite(d / "a.tif", a)
    win = MainWindow(Project.open(d), app_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    win.canvas.hovered.emit(10.5, 5.5)
    assert win.readout.value_label.text() == f"value {int(a[5, 10])}"
    lo, hi = win.editor.window
    win.set_window((lo, (lo + hi) / 2))
    assert win.editor.window[1] == (lo + hi) / 2
    win.close()
