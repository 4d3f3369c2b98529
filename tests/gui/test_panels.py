"""The docks and dialogs as a person meets them: statuses that follow the edits, a wheel that
scrolls the panel, keys that go back to the canvas, errors shown whole, an export that takes
reviewed images only, choices that survive a restart, sparse labels named before training."""

import re

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.core.region import Region
from tests.gui.test_window import drag


def status_shown(win, image_id) -> str:
    m = win.files.model
    return m.data(m.index(m.row(image_id), 1))


def wheel(widget, steps: int = -1) -> None:
    """One notch of the mouse wheel over the middle of `widget` (negative: towards the user)."""
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def show_model_dock(win, qtbot, height=520):
    win.resize(1100, height)
    win.model_dw.raise_()
    qtbot.waitUntil(lambda: win.model_dock.isVisible(), timeout=5000)
    return win.model_dw.widget()  # the scroll area around the panel


def mark(win, status: str, image_id: int) -> None:
    win.project.store.set_status(image_id, status)
    win.files.refresh()


# ------------------------------------------------------------------ statuses
def test_first_edit_makes_a_new_image_in_progress_in_the_files_panel(window, qtbot):
    from segstudio.cli.project import info_dict
    from segstudio.gui.stats import statistics
    win = window
    iid = win.editor.doc.image_id
    assert status_shown(win, iid) == "new" and "new 3" in win.files.counts.text()
    win.set_tool("brush")
    drag(qtbot, win, [(20, 20), (40, 20), (60, 30)])
    # the row and the counts follow the store as soon as the edit is in it
    qtbot.waitUntil(lambda: status_shown(win, iid) == "in progress", timeout=3000)
    assert "in progress 1" in win.files.counts.text() and "new 2" in win.files.counts.text()
    assert win.project.store.image(iid).status == "in_progress"
    assert statistics(win.project.store)["status"]["in_progress"] == 1
    assert info_dict(win.project)["status"]["in_progress"] == 1


def test_fixing_a_predicted_image_makes_it_in_progress_everywhere(window, qtbot):
    from segstudio.gui.stats import StatsDialog
    win = window
    iid = win.editor.doc.image_id
    win.set_status("predicted")  # as a model run leaves it
    assert status_shown(win, iid) == "predicted" and "predicted 1" in win.files.counts.text()
    win.set_tool("brush")
    drag(qtbot, win, [(70, 70), (90, 80)])
    qtbot.waitUntil(lambda: status_shown(win, iid) == "in progress", timeout=3000)
    assert "predicted 0" in win.files.counts.text() and "in progress 1" in win.files.counts.text()
    dlg = StatsDialog(win, win.project.store)
    assert dlg.stats["status"]["in_progress"] == 1 and dlg.stats["status"]["predicted"] == 0
    dlg.close()


# ------------------------------------------------------------------ wheel and focus
def test_wheel_over_the_model_panel_scrolls_it_and_leaves_the_boxes_alone(window, qtbot):
    win = window
    area = show_model_dock(win, qtbot)
    dock, panel = win.model_dock, win.model_dock.train_panel
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0  # the panel is taller than its dock here
    scope, budget = dock.scope.currentIndex(), panel.budget.value()
    assert dock.scope.focusPolicy() == Qt.FocusPolicy.StrongFocus
    bar.setValue(0)
    wheel(dock.scope)
    assert dock.scope.currentIndex() == scope  # "Unlabelled images" stays
    assert bar.value() > 0  # the panel scrolled instead
    before = bar.value()
    wheel(panel.budget)
    assert panel.budget.value() == budget and bar.value() > before
    wheel(dock.arch)
    assert dock.arch.currentIndex() == 0
    # a box the user chose (focused) takes the wheel
    win.activateWindow()
    dock.scope.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(dock.scope.hasFocus, timeout=3000)
    wheel(dock.scope)
    assert dock.scope.currentIndex() != scope


def test_files_filter_ignores_the_wheel_until_chosen(window, qtbot):
    combo = window.files.status_combo
    wheel(combo)
    assert combo.currentIndex() == 0 and window.files.model.rowCount() == 3


def test_segment_folder_gives_the_keys_back_to_the_canvas(window, qtbot, tmp_path):
    pytest.importorskip("torch")
    from tests.gui.test_model_gui import load_unet
    from tests.inference.helpers import tiny_unet_checkpoint
    win = window
    show_model_dock(win, qtbot, height=800)
    dock, panel = win.model_dock, win.model_dock.train_panel
    load_unet(win, qtbot, tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",)))
    win.activateWindow()
    done = []
    dock.folder_finished.connect(done.append)
    budget = panel.budget.value()
    qtbot.waitUntil(dock.seg_folder.isEnabled, timeout=10000)  # the load has settled
    QTest.mouseClick(dock.seg_folder, Qt.MouseButton.LeftButton)
    assert QApplication.focusWidget() is win.canvas
    assert not panel.budget.hasFocus()
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    assert QApplication.focusWidget() is win.canvas
    # typed keys reach the window's tools and classes, not the Budget box
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_5)
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_P)  # the polygon tool's key
    assert panel.budget.value() == budget
    assert win.canvas.tool is win.tools["polygon"]


# ------------------------------------------------------------------ error text
def test_load_error_keeps_its_cause_and_goes_when_the_kind_changes(window, qtbot):
    dock = window.model_dock
    msg = ("Mask R-CNN COCO weights are not in the torch cache (~/.cache/torch/hub/checkpoints/"
           "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth) (download failed: <urlopen error [Errno -3] "
           "Temporary failure in name resolution>)")
    dock.worker.load_failed.emit(msg)
    qtbot.waitUntil(lambda: "Cannot load" in dock.model_label.text(), timeout=3000)
    assert dock.model_label.textFormat() == Qt.TextFormat.PlainText
    assert "<urlopen error [Errno -3] Temporary failure in name resolution>" in dock.model_label.text()
    # what a person sees: the label's rendering shows the whole cause, so its plain text is all of it
    # (its first line; the second says what is loaded now: no model)
    assert dock.model_label.text().endswith("resolution>)\nNo model loaded.")
    dock.worker.job_failed.emit("RuntimeError: <bad> thing")
    qtbot.waitUntil(lambda: "<bad> thing" in dock.progress_label.text(), timeout=3000)
    assert dock.progress_label.textFormat() == Qt.TextFormat.PlainText
    assert dock.train_panel.status.textFormat() == Qt.TextFormat.PlainText
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))  # another kind: the old error goes
    assert "Cannot load" not in dock.model_label.text() and "<bad>" not in dock.progress_label.text()


# ------------------------------------------------------------------ export
def test_export_dialog_takes_done_images_by_default_and_counts_them(window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Ok)
    win = window
    ids = win.files.model.ids
    store = win.project.store
    cls = store.classes()[0]
    for i, st in zip(ids, ("done", "in_progress", "predicted")):
        store.save_regions(i, [Region(store.new_region_id(), cls.id, np.ones((5, 5), bool), 3, 3)], status=st)
    win.session.reload_current()
    dlg = win.export_dialog()
    qtbot.addWidget(dlg)
    boxes = dlg.status_boxes
    assert [s for s, cb in boxes.items() if cb.isChecked()] == ["done"]
    assert dlg.summary.text() == "Will export 1 image: 1 done"
    assert dlg.run_button.isEnabled()
    QTest.mouseClick(boxes["in_progress"], Qt.MouseButton.LeftButton)
    assert dlg.summary.text().startswith("Will export 2 images: 1 done, 1 in progress")
    assert "not marked done" in dlg.summary.text()
    dlg.resize(760, dlg.sizeHint().height())
    assert not dlg.grab().isNull()  # renders (the closing note's picture came from here)
    for s in ("done", "in_progress"):
        QTest.mouseClick(boxes[s], Qt.MouseButton.LeftButton)
    assert dlg.summary.text().startswith("No images to export")
    assert not dlg.run_button.isEnabled()
    QTest.mouseClick(boxes["new"], Qt.MouseButton.LeftButton)  # no image is new now
    assert dlg.summary.text().startswith("No images to export") and not dlg.run_button.isEnabled()
    QTest.mouseClick(boxes["done"], Qt.MouseButton.LeftButton)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.out.setText(str(tmp_path / "c.json"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=10000)
    assert dlg.result.images == 1  # the done image only
    dlg.accept()


def test_import_dialog_says_what_label_map_values_mean(window, qtbot):
    dlg = window.import_dialog()
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    text = dlg.hint.text()
    assert dlg.hint.isVisibleTo(dlg)
    assert "0 = background" in text and "1…N = the classes" in text and "255" in text and "ignore" in text
    dlg.reject()


def test_dialogs_list_datumaro_formats_only_when_it_is_installed(window, qtbot, monkeypatch):
    from segstudio.io import registry
    for available in (True, False):
        monkeypatch.setattr(registry, "bridge_available", lambda a=available: a)
        imp, exp = window.import_dialog(), window.export_dialog()
        qtbot.addWidget(imp)
        qtbot.addWidget(exp)
        assert imp.fmt.findData("coco") >= 0 and exp.fmt.findData("yolo") >= 0  # native: always
        assert (imp.fmt.findData("cityscapes") >= 0) is available and (imp.fmt.findData("cvat") >= 0) is available
        assert (exp.fmt.findData("cvat") >= 0) is available
        for fmt, needs_list in (("yolo", True), ("labelmap", True), ("coco", False)):
            imp.fmt.setCurrentIndex(imp.fmt.findData(fmt))
            assert imp.class_row.isVisibleTo(imp) is needs_list
        imp.reject()
        exp.reject()


# ------------------------------------------------------------------ kept with the project
def test_model_choices_and_budget_survive_a_restart(qtbot, gui_folder, tmp_path):
    pytest.importorskip("torch")
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    from tests.inference.helpers import tiny_unet_checkpoint
    ck = str(tiny_unet_checkpoint(tmp_path / "trained.pt", classes=("object",)))
    p = Project.open(gui_folder)
    p.store.add_class("object")
    p.store.add_model(ck, "unet", {"mean_iou": 0.5})
    win = MainWindow(p, app_settings())
    qtbot.addWidget(win)
    win.show()
    dock, panel = win.model_dock, win.model_dock.train_panel
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.weights.setCurrentIndex(dock.weights.findData(ck))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.auto_load.setChecked(True)
    panel.budget_kind.setCurrentIndex(panel.budget_kind.findData("minutes"))
    panel.budget.setValue(7)
    panel.ignore_unlabelled.setChecked(True)
    win.close()
    p.close()
    p2 = Project.open(gui_folder)
    win2 = MainWindow(p2, app_settings())
    qtbot.addWidget(win2)
    win2.show()
    dock, panel = win2.model_dock, win2.model_dock.train_panel
    assert dock.arch.currentData() == "unet" and dock.weights.currentData() == ck
    assert dock.device.currentData() == "cpu" and dock.auto_load.isChecked()
    assert panel.budget_kind.currentData() == "minutes" and panel.budget.value() == 7
    assert panel.ignore_unlabelled.isChecked()
    # auto-load: the trained model is loaded without a click
    qtbot.waitUntil(lambda: dock.info is not None, timeout=60000)
    assert dock.info["checkpoint"] == ck and "trained.pt" in dock.model_label.text()
    win2.close()


# ------------------------------------------------------------------ sparse labels
def test_train_panel_names_sparsely_labelled_done_images(window, qtbot):
    win = window
    store = win.project.store
    cls = store.classes()[0]
    ids = win.files.model.ids
    # a scribble of 3 x 20 pixels on a 160 x 120 image: 0.3 % labelled
    for i in ids[:2]:
        store.save_regions(i, [Region(store.new_region_id(), cls.id, np.ones((3, 20), bool), 50, 50)], status="done")
    full = np.ones((120, 160), bool)
    store.save_regions(ids[2], [Region(store.new_region_id(), cls.id, full, 0, 0)], status="done")
    dock, panel = win.model_dock, win.model_dock.train_panel
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    show_model_dock(win, qtbot, height=800)
    qtbot.waitUntil(lambda: panel.coverage_label.isVisible(), timeout=10000)
    text = panel.coverage_label.text()
    assert text.startswith("2 of 3 done images have less than 5 % of their pixels labelled")
    assert "learns every unlabelled pixel as background" in text and "Ignore unlabelled pixels" in text
    QTest.mouseClick(panel.ignore_unlabelled, Qt.MouseButton.LeftButton)
    assert panel.ignore_unlabelled.isChecked() and panel.settings()["ignore_unlabelled"]
    assert "are ignored in training" in panel.coverage_label.text()
    dock.arch.setCurrentIndex(dock.arch.findData("maskrcnn"))  # not a per-pixel model: no warning
    assert not panel.coverage_label.isVisible() and not panel.ignore_unlabelled.isEnabled()
    assert not panel.settings()["ignore_unlabelled"]


# ------------------------------------------------------------------ words
def test_model_panel_words(window, qtbot, tmp_path):
    pytest.importorskip("torch")
    from segstudio.gui.docks.model_dock import plural, uncertainty_text
    from tests.gui.test_model_gui import load_unet
    from tests.inference.helpers import tiny_unet_checkpoint
    assert [plural(n, "class") for n in (0, 1, 2)] == ["0 classes", "1 class", "2 classes"]
    assert plural(1, "region") == "1 region" and plural(3, "image") == "3 images"
    assert uncertainty_text(0.669) == "model uncertainty 0.67 (0 sure – 1 unsure)"
    win = window
    dock = win.model_dock
    show_model_dock(win, qtbot, height=800)
    dock.ensure_probed()
    qtbot.waitUntil(lambda: dock.detected.text().startswith("detected:"), timeout=60000)
    detected = dock.detected.text()
    if "cpu:" in detected:  # e.g. "detected: cpu: CPU, 2 cores (the model uses 1 thread) — no GPU: …"
        assert re.search(r"CPU, \d+ cores? \(the model uses \d+ threads?\)", detected), detected
        assert "1 threads" not in detected and "1 cores" not in detected
    load_unet(win, qtbot, tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",)))
    assert "unet, 1 class " in dock.model_label.text() and "classes" not in dock.model_label.text()
    dock.segment_image()
    qtbot.waitUntil(lambda: "model uncertainty" in dock.progress_label.text(), timeout=30000)
    assert re.search(r"model uncertainty \d\.\d\d \(0 sure – 1 unsure\)$", dock.progress_label.text())
    assert "from 0 (sure" in dock.progress_label.toolTip()


def test_statistics_header_is_not_cut(window, qtbot):
    from segstudio.gui.stats import StatsDialog
    dlg = StatsDialog(window, window.project.store)
    qtbot.addWidget(dlg)
    dlg.show()
    hh = dlg.table.horizontalHeader()
    fm = hh.fontMetrics()
    for col in range(dlg.table.columnCount()):
        text = dlg.table.horizontalHeaderItem(col).text()
        assert hh.sectionSize(col) >= fm.horizontalAdvance(text), text
    dlg.close()


def test_class_order_buttons_leave_qwidget_move_alone(window, qtbot):
    """The ▲/▼ slot is move_class: it used to be called `move`, which hid QWidget.move(x, y)."""
    win, store = window, window.project.store
    for name in ("first_cls", "second_cls"):
        if name not in {c.name for c in store.classes()}:
            store.add_class(name)
    win.classes_dock.refresh()
    names = [c.name for c in store.classes()]
    win.classes_dock.set_current(store.classes()[0].id)
    win.classes_dock.down.click()
    assert [c.name for c in store.classes()] == [names[1], names[0], *names[2:]]
    win.classes_dock.move(3, 4)  # Qt's own move (a TypeError while the slot shadowed it)
    assert (win.classes_dock.x(), win.classes_dock.y()) == (3, 4)
