"""The Classes panel with real clicks: Delete asks (delete the regions / move them / cancel) and is
one undo step (Ctrl+Z brings the class, its regions and the statuses back); Load… and Save… open
their file dialogs; the Ignore switch; and the Import dialog's question about binary masks.

Every modal is answered by a script (`answer_dialogs`): a dialog that no script expects is
rejected and recorded, so a test fails instead of hanging."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QThread, Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QInputDialog, QMessageBox, QPushButton

from segstudio.core.project import Project
from segstudio.core.region import Region
from tests.gui.test_window import drag

LEFT = Qt.MouseButton.LeftButton
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def answer_dialogs(monkeypatch):
    """answers[class name] = fn(dialog) that clicks the dialog's controls; exec returns its result."""
    answers: dict = {}
    unexpected: list[str] = []

    def fake_exec(dlg):
        fn = answers.get(type(dlg).__name__)
        if fn is None:
            unexpected.append(f"{type(dlg).__name__}: {getattr(dlg, 'text', lambda: '')()}")
            return QDialog.DialogCode.Rejected
        dlg.show()
        fn(dlg)
        dlg.hide()
        return dlg.result()

    monkeypatch.setattr(QDialog, "exec", fake_exec)
    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    answers["unexpected"] = unexpected
    return answers


def _window(qtbot, folder):
    """A window over `folder`: classes object, cell, __ignore__; photo0 and photo1 (done) hold two
    cell regions each and an object region; photo2 (done) holds an object region."""
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    p = Project.open(folder)
    s = p.store
    obj, cell = s.add_class("object"), s.add_class("cell", (10, 200, 30))
    s.add_class("__ignore__", ignore=True)
    for k, rec in enumerate(s.images()):
        regs = [Region(0, obj.id, np.ones((10, 12), bool), 100, 80)]
        if k < 2:
            regs += [Region(0, cell.id, np.ones((8, 8), bool), 10 + k, 10),
                     Region(0, cell.id, np.eye(9, dtype=bool), 40, 30 + k)]
        for r, rid in zip(regs, s.reserve_region_ids(len(regs)), strict=True):
            r.id = rid
        s.save_regions(rec.id, regs, status="done")
    win = MainWindow(p, app_settings())
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    return win


@pytest.fixture
def win(qtbot, gui_folder):
    w = _window(qtbot, gui_folder)
    yield w
    if w.isVisible():
        w.close()


def _snapshot(store):
    classes = [(c.id, c.name, c.color, c.hotkey, c.ignore) for c in store.classes()]
    regions = sorted((rec.path, r.id, r.class_id, r.x, r.y, r.mask.tobytes()) for rec in store.images()
                     for r in store.regions(rec.id))
    statuses = {rec.path: rec.status for rec in store.images()}
    return classes, regions, statuses


def _select(win, name):
    c = win.project.store.class_by_name(name)
    win.classes_dock.set_current(c.id)
    return c


def _button(win, text):
    """The panel's button by its text, as a person finds it."""
    return next(b for b in win.classes_dock.findChildren(QPushButton) if b.text() == text)


def _click(button):
    QTest.mouseClick(button, LEFT)


def _doc_classes(win):
    return sorted(r.class_id for r in win.editor.doc.regions.values())


def test_delete_asks_and_cancel_changes_nothing(win, answer_dialogs):
    before = _snapshot(win.project.store)
    answer_dialogs["DeleteClassDialog"] = lambda d: _click(d.cancel_button)
    _select(win, "cell")
    _click(_button(win, "Delete"))
    assert _snapshot(win.project.store) == before
    assert not answer_dialogs["unexpected"]


def test_delete_regions_is_one_undo_step_and_reopens_done_images(win, qtbot, answer_dialogs):
    store = win.project.store
    before = _snapshot(store)
    seen = {}

    def delete_regions(d):
        seen["text"] = d.delete_regions.text()
        _click(d.delete_regions)
        _click(d.ok_button)

    answer_dialogs["DeleteClassDialog"] = delete_regions
    cell = _select(win, "cell")
    assert cell.id in _doc_classes(win)
    _click(_button(win, "Delete"))
    assert "4 regions" in seen["text"] and "2 done images go back to in progress" in seen["text"]
    assert store.class_by_name("cell") is None
    assert all(r[2] != cell.id for r in _snapshot(store)[1])
    statuses = _snapshot(store)[2]
    assert statuses == {"photo0.png": "in_progress", "photo1.png": "in_progress", "photo2.png": "done"}
    assert cell.id not in _doc_classes(win)  # the open image shows what the store holds
    assert "in progress 2" in win.files.counts.text()
    # one Ctrl+Z: the class (id, name, colour, hotkey, place), every region and the statuses
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, CTRL)
    assert _snapshot(store) == before
    assert _doc_classes(win).count(cell.id) == 2
    assert "done 3" in win.files.counts.text()
    assert "Delete class" in win.statusBar().currentMessage()
    assert not answer_dialogs["unexpected"]


def test_move_regions_to_another_class_then_undo(win, answer_dialogs):
    store = win.project.store
    before = _snapshot(store)
    obj = store.class_by_name("object")

    def move(d):
        _click(d.move_regions)
        d.target.setCurrentIndex(d.target.findData(obj.id))
        _click(d.ok_button)

    answer_dialogs["DeleteClassDialog"] = move
    cell = _select(win, "cell")
    _click(_button(win, "Delete"))
    _, regions, statuses = _snapshot(store)
    assert store.class_by_name("cell") is None
    assert sum(r[2] == obj.id for r in regions) == 7 and len(regions) == 7
    assert set(statuses.values()) == {"done"}  # nothing was lost: the images stay done
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, CTRL)
    assert _snapshot(store) == before
    assert _doc_classes(win).count(cell.id) == 2


def test_an_edit_after_the_delete_is_undone_first(win, qtbot, answer_dialogs):
    store = win.project.store
    before = _snapshot(store)
    answer_dialogs["DeleteClassDialog"] = lambda d: _click(d.ok_button)
    _select(win, "cell")
    _click(_button(win, "Delete"))
    _select(win, "object")
    win.set_tool("brush")
    n = len(win.editor.doc.regions)
    drag(qtbot, win, [(60, 60), (80, 60), (90, 70)])
    assert len(win.editor.doc.regions) == n + 1
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, CTRL)  # the stroke
    assert len(win.editor.doc.regions) == n and store.class_by_name("cell") is None
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, CTRL)  # then the delete
    win.session.flush()
    assert _snapshot(store) == before


def test_load_and_save_buttons_open_their_file_dialogs(win, tmp_path, monkeypatch):
    src = tmp_path / "list.txt"
    src.write_text("__ignore__\nnucleus #102030\ncell\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(src), "")))
    _click(_button(win, "Load…"))
    store = win.project.store
    assert store.class_by_name("nucleus").color == (0x10, 0x20, 0x30)
    assert [c.name for c in store.classes()] == ["object", "cell", "__ignore__", "nucleus"]
    out = tmp_path / "saved.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    _click(_button(win, "Save…"))
    assert [ln.rsplit(" ", 1)[0] for ln in out.read_text().splitlines()] == ["object", "cell", "__ignore__",
                                                                              "nucleus"]
    texts = [win.classes_dock.list.item(i).text() for i in range(win.classes_dock.list.count())]
    assert any(t.startswith("nucleus") for t in texts)


def test_save_refuses_a_name_that_would_split_over_lines_and_says_so(win, tmp_path, monkeypatch):
    win.project.store.add_class("road\u2028side")
    win.classes_dock.refresh()
    out = tmp_path / "saved.txt"
    said = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    monkeypatch.setattr(QMessageBox, "exec", lambda box: said.append(box.text()) or 0)
    _click(_button(win, "Save…"))
    assert not out.exists()
    assert len(said) == 1 and r"'road\u2028side'" in said[0] and "U+2028" in said[0]


def test_ignore_switch_turns_ignore_off_and_on(win):
    dock, store = win.classes_dock, win.project.store
    _select(win, "cell")
    assert _button(win, "Ignore").isEnabled() and not _button(win, "Ignore").isChecked()
    c = _select(win, "__ignore__")
    assert _button(win, "Ignore").isChecked()
    _click(_button(win, "Ignore"))
    assert not store.class_by_name("__ignore__").ignore
    assert "(ignore)" not in dock.list.currentItem().text()
    assert dock.list.currentItem().data(Qt.ItemDataRole.UserRole) == c.id  # still the selected class
    _click(_button(win, "Ignore"))
    assert store.class_by_name("__ignore__").ignore and "(ignore)" in dock.list.currentItem().text()


def test_renaming_an_ignore_class_asks_whether_it_stays_one(win, monkeypatch):
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("cell body", True)))

    def question(*a, **k):
        asked.append(a[2])
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    c = _select(win, "__ignore__")
    _click(_button(win, "Rename"))
    got = next(x for x in win.project.store.classes() if x.id == c.id)
    assert (got.name, got.ignore) == ("cell body", False) and "ignore class" in asked[0]


# ------------------------------------------------------------------ the Import dialog
def _binary_masks(folder, names):
    folder.mkdir()
    for k, n in enumerate(names):
        m = np.zeros((120, 160), np.uint8)
        m[20:60, 30 + k:90] = 255
        Image.fromarray(m).save(folder / n)


def _import(win, qtbot, source):
    from segstudio.gui.dialogs import ImportDialog
    action = next(a for a in win.findChildren(QAction) if a.text().startswith("&Import annotations"))
    action.trigger()
    dlg = win.findChildren(ImportDialog)[-1]
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    dlg.source.setText(str(source))
    dlg.classes.setText("")
    _click(dlg.run_button)
    qtbot.waitUntil(lambda: dlg.report.isVisible() and dlg.report.toPlainText() != "", timeout=15000)
    return dlg


def test_import_dialog_asks_what_the_masks_255_is(win, qtbot, tmp_path, answer_dialogs):
    _binary_masks(tmp_path / "masks", ["photo0.png", "photo1.png"])
    asked = []

    def name_it(d):
        asked.append(QThread.currentThread() == QApplication.instance().thread())  # asked on the GUI thread
        d.name.setEditText("membrane")
        _click(d.ok_button)

    answer_dialogs["BinaryClassDialog"] = name_it
    dlg = _import(win, qtbot, tmp_path / "masks")
    assert asked == [True]
    store = win.project.store
    mem = store.class_by_name("membrane")
    assert mem is not None and not mem.ignore
    assert store.regions_per_class().get(mem.id) == 2
    text = dlg.report.toPlainText()
    assert "warning:" in text and "'membrane'" in text
    assert not answer_dialogs["unexpected"]
    dlg.accept()


def test_import_dialog_question_offers_ignore_and_cancel(win, qtbot, tmp_path, answer_dialogs):
    _binary_masks(tmp_path / "masks", ["photo0.png", "photo1.png"])
    answer_dialogs["BinaryClassDialog"] = lambda d: _click(d.cancel_button)
    before = _snapshot(win.project.store)
    dlg = _import(win, qtbot, tmp_path / "masks")
    assert dlg.report.toPlainText().startswith("Cancelled")
    assert _snapshot(win.project.store) == before
    dlg.accept()

    def as_ignore(d):
        _click(d.as_ignore)
        _click(d.ok_button)

    answer_dialogs["BinaryClassDialog"] = as_ignore
    dlg = _import(win, qtbot, tmp_path / "masks")
    n = 40 * 60 + 40 * 59  # the two masks' 255 pixels
    assert f"{n:,} pixels imported as ignore" in dlg.report.toPlainText()
    ign = win.project.store.class_by_name("__ignore__")
    assert win.project.store.regions_per_class().get(ign.id) == 2
    dlg.accept()
