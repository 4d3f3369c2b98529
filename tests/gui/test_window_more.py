"""Folder switching, window/level, undo history across images."""

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest


def _drag(win, pts):
    vp = win.canvas.viewport()
    to = [win.canvas.mapFromScene(QPointF(*p)) for p in pts]
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, to[0])
    for p in to[1:]:
        QTest.mouseMove(vp, p)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, to[-1])


def test_undo_history_survives_switching_images(window, qtbot):
    win = window
    win.set_tool("brush")
    _drag(win, [(20, 20), (50, 20)])
    first = win.editor.doc.image_id
    assert win.editor.doc.undo_stack.can_undo
    win.step_image(1)
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    win.step_image(-1)
    qtbot.waitUntil(lambda: win.editor.doc.image_id == first, timeout=5000)
    doc = win.editor.doc
    assert len(doc.regions) == 1 and doc.undo_stack.can_undo
    win.undo()
    assert not doc.regions
    win.session.flush()
    assert win.project.store.region_count(first) == 0


def test_open_another_folder(window, qtbot, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QMessageBox
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    assert window.open_folder(str(tmp_path / "missing")) is None
    assert "folder not found" in shown[0] and window.isVisible()  # a message; the window stays
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(other / "x.png")
    new = window.open_folder(str(other))
    qtbot.addWidget(new)
    qtbot.waitUntil(lambda: new.editor.doc is not None, timeout=10000)
    assert new.project.folder == other and new.files.model.rowCount() == 1
    assert not window.isVisible()
    new.close()


def test_a_closed_window_is_not_kept(window, qtbot, tmp_path):
    from PIL import Image

    from segstudio.gui.main_window import open_windows
    before = open_windows()
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(other / "x.png")
    new = window.open_folder(str(other))
    qtbot.addWidget(new)
    assert any(w is new for w in open_windows())
    qtbot.waitUntil(lambda: new.editor.doc is not None, timeout=10000)
    new.close()
    qtbot.waitUntil(lambda: len(open_windows()) == len(before), timeout=5000)
    assert all(a is b for a, b in zip(open_windows(), before, strict=True))


def test_levels_dialog_changes_the_display(qtbot, tmp_path):
    import tifffile

    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    d = tmp_path / "u16"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20))
    win = MainWindow(Project.open(d), app_settings())
    qtbot.addWidget(win)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    dlg = win.levels_dialog()
    before = win.session.current.levels[0][1].copy()
    dlg.high.setValue(dlg.low.value() + 100)
    after = win.session.current.levels[0][1]
    assert not np.array_equal(before, after) and after.max() == 255
    dlg.auto()
    assert win.editor.window == win.session.current.window
    dlg.accept()
    win.close()


def test_model_panel_offers_maskrcnn_v1(window):
    dock = window.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("maskrcnn-v1"))
    spec = dock.spec()
    assert spec["arch"] == "maskrcnn" and spec["variant"] == "v1" and spec["weights"] is None
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    assert dock.spec()["arch"] == "unet"


def test_export_dialog_refuses_a_folder_it_did_not_write(window, qtbot, tmp_path):
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "thesis.docx").write_bytes(b"years of work")
    for target in (docs, window.project.folder.parent, window.project.folder):
        dlg = window.export_dialog()
        dlg.status_boxes["new"].setChecked(True)  # done only by default, and no image is done here
        dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
        dlg.out.setText(str(target))
        dlg.run_button.click()
        assert dlg.job is None  # nothing started
        assert "Cannot export there" in dlg.report.toPlainText()
        assert dlg.run_button.isEnabled() and dlg.run_button.isVisible()  # the user can pick another
        dlg.reject()
    assert [p.name for p in docs.iterdir()] == ["thesis.docx"]
    assert sorted(p.name for p in window.project.folder.iterdir()) == [".segstudio", "photo0.png",
                                                                       "photo1.png", "photo2.png"]
    # an empty folder is fine, and exporting there again replaces the first export
    for _ in range(2):
        dlg = window.export_dialog()
        dlg.status_boxes["new"].setChecked(True)
        dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
        dlg.out.setText(str(tmp_path / "labels"))
        dlg.run_button.click()
        qtbot.waitUntil(lambda: dlg.result is not None, timeout=10000)
        dlg.accept()
    assert len(list((tmp_path / "labels").glob("*.png"))) == 3


def test_plus_and_minus_zoom_about_the_centre_wherever_the_focus_is(window, qtbot):
    win = window
    win.canvas.fit()
    win.files.view.setFocus()
    qtbot.waitUntil(lambda: win.focusWidget() is win.files.view, timeout=2000)
    vp = win.canvas.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    before = win.canvas.mapToScene(centre.toPoint())
    z = win.canvas.zoom
    QTest.keyClick(win.focusWidget() or win, Qt.Key.Key_Plus)
    QTest.keyClick(win.focusWidget() or win, Qt.Key.Key_Plus)
    assert win.canvas.zoom > z * 1.5
    after = win.canvas.mapToScene(centre.toPoint())
    assert abs(after.x() - before.x()) <= 1.5 and abs(after.y() - before.y()) <= 1.5
    QTest.keyClick(win.focusWidget() or win, Qt.Key.Key_Minus)
    assert win.canvas.zoom < z * 1.5
