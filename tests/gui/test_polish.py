"""Polish found by a new user: a garbage checkpoint is named as such (and logged in one line), the
dialogs' wrapped hints are not clipped, the counts agree between Files and Export, N says when the
image shown is the last unfinished one, and the Classes panel says what Load/Save/Delete did."""

from __future__ import annotations

import logging
import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from tests.conftest import make_image

NOT_TORCH = "broken.pt is not a PyTorch checkpoint (corrupt, truncated, or another kind of file)"


def _broken(tmp_path):
    p = tmp_path / "broken.pt"
    p.write_bytes(os.urandom(5000))  # what the new user chose: 5 kB of random bytes
    return p


class _Records(logging.Handler):
    """The records of the "segstudio" logger at every level, whatever another test did to the
    root logger's handlers (caplog listens there)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _Records:
        log = logging.getLogger("segstudio")
        self._level = log.level
        log.addHandler(self)
        log.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc) -> None:
        log = logging.getLogger("segstudio")
        log.removeHandler(self)
        log.setLevel(self._level)


def test_a_garbage_checkpoint_chosen_in_the_model_panel_is_named_so_and_logged_in_one_line(
        window, qtbot, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    win, dock = window, window.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    bad = _broken(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    win.model_dw.raise_()
    QTest.mouseClick(dock.browse, Qt.MouseButton.LeftButton)
    assert dock.weights.currentData() == str(bad)
    with _Records() as caplog:
        QTest.mouseClick(dock.load_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Cannot load" in dock.model_label.text(), timeout=60000)
    text = dock.model_label.text()
    assert NOT_TORCH in text, text
    assert "weights_only" not in text and "PyTorch 2.6" not in text
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud and all("Traceback" not in r.getMessage() and "\n" not in r.getMessage() for r in loud), \
        [r.getMessage() for r in loud]
    assert any("Traceback" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_predict_with_a_garbage_checkpoint_says_what_it_is(tmp_path, capsys):
    pytest.importorskip("torch")
    from segstudio.cli import main
    folder = tmp_path / "imgs"
    make_image(folder / "a.png", 64, 48, seed=1)
    code = main(["predict", str(folder), "--model", "unet", "--weights", str(_broken(tmp_path)), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert NOT_TORCH in err and "weights_only" not in err + out and "Traceback" not in err, err


# ------------------------------------------------------------------ dialogs: wrapped text not clipped
def _dialog(kind):
    from PySide6.QtWidgets import QApplication
    dlgs = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    assert len(dlgs) == 1, dlgs
    return dlgs[0]


def _not_clipped(qtbot, label, png) -> None:
    """The label has the height its wrapped text needs at its width (else Qt cuts it top and
    bottom), once the layout requests queued have been handled; the dialog is rendered to `png`
    to be looked at."""
    def fits() -> bool:
        need = label.heightForWidth(label.width())
        return label.height() >= (need if need >= 0 else label.sizeHint().height())
    try:
        qtbot.waitUntil(fits, timeout=1000)
    finally:
        label.window().grab().save(str(png))
    assert label.isVisible() and label.text()


def test_import_hint_for_label_maps_is_not_clipped(window, qtbot, tmp_path):
    from segstudio.gui.dialogs import ImportDialog
    from tests.gui.test_window_trust import trigger
    trigger(window, "Import annotations…")
    dlg = _dialog(ImportDialog)
    qtbot.waitExposed(dlg)
    dlg.fmt.setFocus()
    for _ in range(dlg.fmt.count()):  # Down through the formats, as a person with the keyboard
        if dlg.fmt.currentData() == "labelmap":
            break
        QTest.keyClick(dlg.fmt, Qt.Key.Key_Down)
    assert dlg.fmt.currentData() == "labelmap"
    _not_clipped(qtbot, dlg.hint, tmp_path / "import_labelmap.png")
    dlg.reject()


def test_export_summary_is_not_clipped_after_a_run(window, qtbot, tmp_path):
    from segstudio.gui.dialogs import ExportDialog
    from tests.gui.test_window_trust import trigger
    trigger(window, "Export dataset…")
    dlg = _dialog(ExportDialog)
    qtbot.waitExposed(dlg)
    QTest.mouseClick(dlg.status_boxes["new"], Qt.MouseButton.LeftButton)  # a two-line summary
    dlg.out.setText(str(tmp_path / "out"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    assert dlg.progress.isVisible() and dlg.report.isVisible()
    _not_clipped(qtbot, dlg.summary, tmp_path / "export_after_run.png")
    dlg.reject()


# ------------------------------------------------------------------ counts agree, in good grammar
def test_export_dialog_counts_unreadable_images_apart_as_the_files_panel_does(qtbot, gui_folder, tmp_path):
    from segstudio.gui.dialogs import ExportDialog
    from tests.gui.conftest import open_window
    from tests.gui.test_window_trust import open_broken, shown, trigger
    (gui_folder / "photo0_broken.png").write_bytes(b"not a png at all")
    win = open_window(qtbot, gui_folder)
    assert shown(win) == "photo0.png"
    open_broken(qtbot, win)  # the window learns it cannot be read
    qtbot.waitUntil(lambda: "unreadable 1" in win.files.counts.text(), timeout=5000)
    assert "new 3" in win.files.counts.text()
    trigger(win, "Export dataset…")
    dlg = _dialog(ExportDialog)
    assert dlg.status_boxes["new"].text() == "new (3)"  # as Files counts them, not 4
    QTest.mouseClick(dlg.status_boxes["new"], Qt.MouseButton.LeftButton)
    QTest.mouseClick(dlg.status_boxes["done"], Qt.MouseButton.LeftButton)  # off: new only
    text = dlg.summary.text()
    assert text.startswith("Will export 3 images: 3 new.") and "1 unreadable image is left out." in text, text
    dlg.out.setText(str(tmp_path / "out"))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    report = dlg.report.toPlainText()
    assert "Exported: 3 images, 0 regions, 1 unreadable image left out" in report, report
    dlg.reject()
    win.close()


def test_report_counts_say_one_thing_in_the_singular():
    from segstudio.io.common import Report
    rep = Report(images=1, regions=1)
    rep.left_out.append(("a.png", "corrupt"))
    rep.missing.append(("b.png", 1))
    rep.errors.append(("c.json", "bad"))
    text = rep.summary()
    assert text == ("1 image, 1 region, 1 error, 1 unreadable image left out, "
                    "1 missing image left out (1 annotation kept in the project)"), text


# ------------------------------------------------------------------ N on the last unfinished image
def test_n_on_the_last_unfinished_image_says_this_one_is_the_last(window, qtbot):
    from tests.gui.test_input_events import message
    from tests.gui.test_window_trust import key, shown
    win = window
    for expected in ("photo1.png", "photo2.png"):  # photo0, photo1 done; each time the next one opens
        key(win, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda expected=expected: shown(win) == expected, timeout=10000)
    key(win, Qt.Key.Key_N)
    assert message(win) == "No other unfinished image (this one is the last)"
    assert shown(win) == "photo2.png"
    key(win, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the last one done too
    qtbot.waitUntil(lambda: win.project.store.status_counts()["done"] == 3, timeout=10000)
    key(win, Qt.Key.Key_N)
    assert message(win) == "No unfinished images left"


# ------------------------------------------------------------------ Classes panel: Load, Save, Delete say what they did
@pytest.fixture
def classes_win(qtbot, gui_folder):
    from tests.gui.test_classes_panel import _window
    w = _window(qtbot, gui_folder)  # classes object, cell, __ignore__; cell has 4 regions
    yield w
    w.close()


def _panel_button(win, text):
    from PySide6.QtWidgets import QPushButton
    return next(b for b in win.classes_dock.findChildren(QPushButton) if b.text() == text)


def test_classes_load_says_what_it_added_and_skipped(classes_win, tmp_path, monkeypatch):
    from tests.gui.test_input_events import message
    win = classes_win
    src = tmp_path / "list.txt"
    src.write_text("background\nnucleus\ncell\nmembrane #102030\nvesicle\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(src), "")))
    QTest.mouseClick(_panel_button(win, "Load…"), Qt.MouseButton.LeftButton)
    assert message(win) == ("Loaded 3 classes from list.txt "
                            "(skipped: background — 0 is background; cell — already there)"), message(win)
    assert [c.name for c in win.project.store.classes()][-3:] == ["nucleus", "membrane", "vesicle"]
    QTest.mouseClick(_panel_button(win, "Load…"), Qt.MouseButton.LeftButton)  # again: nothing new
    assert message(win).startswith("Loaded 0 classes from list.txt (skipped: background — 0 is background; "
                                   "nucleus — already there; cell — already there;"), message(win)


def test_classes_save_says_where(classes_win, tmp_path, monkeypatch):
    from tests.gui.test_input_events import message
    win = classes_win
    out = tmp_path / "saved.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    QTest.mouseClick(_panel_button(win, "Save…"), Qt.MouseButton.LeftButton)
    assert out.is_file() and message(win) == f"Saved 3 classes to {out}", message(win)


def test_classes_delete_says_what_went_and_how_to_get_it_back(classes_win, monkeypatch):
    from PySide6.QtWidgets import QDialog
    from tests.gui.test_input_events import message
    win = classes_win

    def answer(dlg):  # the Delete dialog, answered with clicks: delete the regions too, OK
        dlg.show()
        QTest.mouseClick(dlg.delete_regions, Qt.MouseButton.LeftButton)
        QTest.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
        dlg.hide()
        return dlg.result()
    monkeypatch.setattr(QDialog, "exec", answer)
    win.classes_dock.set_current(win.project.store.class_by_name("cell").id)
    QTest.mouseClick(_panel_button(win, "Delete"), Qt.MouseButton.LeftButton)
    assert win.project.store.class_by_name("cell") is None
    assert message(win) == "Deleted class cell and its 4 regions (Ctrl+Z brings them back)", message(win)
