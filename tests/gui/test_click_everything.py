"""Every button of the window and its docks clicked, every action triggered, with real events; a
slot that raises (PySide's `checked=False` reaching an optional parameter is the classic case)
fails the test and names the control. Modal questions are answered by stand-ins (cancel, or a
canned file), and a timer closes any modal that still opens."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (QAbstractButton, QApplication, QColorDialog, QDialog, QDockWidget, QFileDialog,
                               QInputDialog, QMessageBox, QToolBar, QWidget, QWidgetAction)
from shiboken6 import isValid

from tests.gui.conftest import open_window

GUI = Path(__file__).resolve().parents[2] / "segstudio" / "gui"

# Controls not clicked, each with its reason (everything else is clicked or triggered).
SKIPPED_ACTIONS = {
    "Quit": "closes the window and ends the app",
}
SKIPPED_DIALOG_BUTTONS = {  # by text, in the dialogs the actions open
    "Download": "Get weights…: downloads from the internet",
}
SKIPPED_BUTTONS = {  # attribute paths from the window
    "model_dock.load_button": "loads a model on the model thread (torch, weights: long model work)",
    "model_dock.seg_image": "runs the model (long model work; disabled with no model anyway)",
    "model_dock.seg_folder": "runs the model over the folder (long model work)",
    "model_dock.train_panel.train_button": "trains a model (long model work)",
    "model_dock.train_panel.repredict": "re-predicts the folder with a model (long model work)",
    "model_dock.train_panel.evaluate_button": "evaluates a checkpoint (long model work)",
    "model_dock.live_panel.enabled": "switches the live learner on: loads the trainers (long model work)",
    "model_dock.live_panel.rollback_button": "loads another model version (long model work)",
}


def _attr(win, path):
    obj = win
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _label(w) -> str:
    if isinstance(w, QAction):
        text = w.text().replace("&", "")
        return text or f"shortcut {w.shortcut().toString()}"
    name = type(w).__name__
    return f"{name} {w.text() or w.toolTip() or w.objectName()!r}"


@pytest.fixture
def answered_modals(monkeypatch, tmp_path):
    """Stand-ins for every modal the window opens: file pickers return a canned class list to
    load or a path to save to (else cancel); questions, inputs and colours cancel; an exec()'d
    dialog is rejected. Returns the list of what was asked."""
    asked: list[str] = []
    class_list = tmp_path / "canned_classes.txt"
    class_list.write_text("canned_cat\ncanned_dog\n", encoding="utf-8")
    saved = tmp_path / "saved_classes.txt"

    def open_name(parent=None, caption="", *a, **k):
        asked.append(f"open file: {caption}")
        return (str(class_list), "") if "class" in caption.lower() else ("", "")

    def save_name(parent=None, caption="", *a, **k):
        asked.append(f"save file: {caption}")
        return (str(saved), "") if "class" in caption.lower() else ("", "")

    def directory(parent=None, caption="", *a, **k):
        asked.append(f"folder: {caption}")
        return ""

    def question(parent=None, title="", *a, **k):
        asked.append(f"message: {title}")
        return QMessageBox.StandardButton.Cancel

    def exec_(self, *a, **k):
        asked.append(f"exec: {type(self).__name__} {self.windowTitle()}")
        self.reject()
        return 0

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(open_name))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_name))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(directory))
    for name in ("warning", "question", "information", "critical"):
        monkeypatch.setattr(QMessageBox, name, staticmethod(question))
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda parent=None, title="", *a: asked.append(title)))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: (asked.append("text"), ("", False))[1]))
    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(lambda *a, **k: (asked.append("item"), ("", False))[1]))
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: (asked.append("colour"), QColor())[1]))
    monkeypatch.setattr(QDialog, "exec", exec_)
    monkeypatch.setattr(QMessageBox, "exec", exec_)
    # anything modal that still opens (a dialog made another way) is closed by this timer
    # (not the dialogs the test is clicking through: `spare`)
    spare: list[QWidget] = []
    timer = QTimer()
    timer.setInterval(100)

    seen: list[QWidget] = []  # the modal of the last tick: closed when it is still there at the next

    def close_modal():
        m = QApplication.activeModalWidget()
        if m is not None and not any(m is w for w in spare) and any(m is w for w in seen):
            asked.append(f"closed modal: {m.windowTitle()}")
            m.close()
        seen[:] = [m] if m is not None else []
    timer.timeout.connect(close_modal)
    timer.start()
    yield asked, saved, spare
    timer.stop()


def _open_dialogs() -> list[QDialog]:
    """Dialogs opened with open() (window-modal, not blocking)."""
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and isValid(w) and w.isVisible()]


def _close_dialogs(win) -> None:
    """Rejected before the next click."""
    for w in _open_dialogs():
        if isValid(w):
            w.reject()


def _actions(win) -> list[QAction]:
    """The actions a user reaches: menus (recursively), toolbars, the window's shortcuts, the
    docks' toggles. (Not pyqtgraph's plot context-menu internals, which only work from their menu.)"""
    seen: dict[int, QAction] = {}

    def add(a: QAction) -> None:
        if a.isSeparator() or id(a) in seen:
            return
        seen[id(a)] = a
        if a.menu() is not None:
            for sub in a.menu().actions():
                add(sub)
    for menu in win.menuBar().actions():
        add(menu)
    for tb in win.findChildren(QToolBar):
        for a in tb.actions():
            add(a)
    for a in win.actions():
        add(a)
    for dw in win.findChildren(QDockWidget):
        add(dw.toggleViewAction())
    return [a for a in seen.values() if a.menu() is None and not isinstance(a, QWidgetAction)  # a toolbar's box
            and a.text().replace("&", "") not in SKIPPED_ACTIONS]


DOCK_TITLE_BUTTONS = ("qt_dockwidget_floatbutton", "qt_dockwidget_closebutton")  # Qt's own, on each dock's
# title bar: not clicked (closing a dock would hide the buttons still to click); each dock's show /
# hide is triggered through its toggle action below


def _buttons(win) -> list[QAbstractButton]:
    """Every button the user can see in the window and its docks (the toolbar's too)."""
    return [b for b in win.findChildren(QAbstractButton) if b.isVisible() and b.objectName() not in DOCK_TITLE_BUTTONS]


@pytest.mark.slow  # the window, ~40 buttons and ~60 actions: 5-10 s on 2 CPU cores
def test_every_button_and_action_runs_without_an_exception(qtbot, gui_folder, answered_modals, capfd, caplog):
    asked, saved, spare = answered_modals
    win = open_window(qtbot, gui_folder)
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    win.model_dw.raise_()  # the Model panel's buttons are shown (tabified with Regions)
    skipped = {id(_attr(win, p)): p for p in SKIPPED_BUTTONS}
    failures: list[str] = []
    done: list[str] = []

    def run(label, fn, inside_dialogs=True) -> None:
        with qtbot.capture_exceptions() as errors:
            fn()
            QTest.qWait(30)  # queued slots and timers run
            if inside_dialogs:  # the dialog it opened: every button in it too
                spare[:] = _open_dialogs()
                for dlg in list(spare):
                    for b in [b for b in dlg.findChildren(QAbstractButton) if b.isVisible()]:
                        if not isValid(dlg) or not dlg.isVisible() or not isValid(b):
                            break  # a Close (or Run) closed it
                        if b.text().replace("&", "") in SKIPPED_DIALOG_BUTTONS:
                            continue
                        done.append(f"{label} › {_label(b)}")
                        QTest.mouseClick(b, Qt.MouseButton.LeftButton, pos=b.rect().center())
                        QTest.qWait(30)
                        for job in dlg.findChildren(QObject) if isValid(dlg) else []:  # its job ends first
                            if hasattr(job, "running") and callable(job.running):
                                qtbot.waitUntil(lambda j=job: not j.running(), timeout=30000)
            spare.clear()
            _close_dialogs(win)
            QTest.qWait(10)
        failures.extend(f"{label}: {e[0].__name__}: {e[1]}" for e in errors)
        done.append(label)

    # every button: a real mouse click in its middle
    for b in _buttons(win):
        if id(b) in skipped or not win.isVisible():
            continue
        run(_label(b), lambda b=b: QTest.mouseClick(b, Qt.MouseButton.LeftButton, pos=b.rect().center()))
    clicked = len(done)
    assert clicked >= 25, done  # the Classes, Model, Train and Live panels, the toolbar

    # every action of the menus (their submenus too), the toolbar, the window (class hotkeys) and
    # the docks' show/hide: triggered; a checkable one twice, so it ends as it began
    actions = _actions(win)
    for a in actions:
        if not win.isVisible():
            break
        run(_label(a), lambda a=a: (a.trigger(), a.isCheckable() and a.trigger()))
    assert win.isVisible(), "an action closed the window"
    assert len(done) - clicked >= 40, done[clicked:]
    assert not failures, "\n".join(failures)
    # the Classes panel's Load… and Save… did their job with the canned files
    names = [c.name for c in win.project.store.classes()]
    assert "canned_cat" in names and "canned_dog" in names, (names, asked)
    assert saved.exists() and "canned_cat" in saved.read_text(encoding="utf-8")
    # an exception on a worker thread reaches the window as a message and the log: none either
    # (opening Get weights… while the Model panel probed the device once broke torch's import)
    QTest.qWait(300)
    qtbot.waitUntil(lambda: not win.worker.busy, timeout=30000)
    failed = [r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records
              if r.name == "segstudio" and r.levelno >= logging.WARNING and "failed" in r.getMessage()]
    assert not failed, "\n".join(failed)
    err = capfd.readouterr().err
    assert "TypeError" not in err and "Traceback" not in err, err[-3000:]


# A bound method connected straight to clicked/triggered/toggled receives the signal's bool in its
# first optional parameter. The rule (segstudio/gui/signals.py): connect through connect_plain.
BOOL_SIGNALS = ("clicked", "triggered")
WANTS_THE_ARGUMENT = {  # not a button's bool: the slot takes what the signal carries
    "self.view.clicked.connect(self._clicked)": "QAbstractItemView.clicked(QModelIndex): the row clicked",
}


def _bare_connections(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect" \
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in BOOL_SIGNALS \
                and node.args and not isinstance(node.args[0], ast.Lambda) \
                and ast.unparse(node) not in WANTS_THE_ARGUMENT:
            out.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Lambda) and node.args.defaults and node.args.args \
                and isinstance(node.args.defaults[0], ast.Constant) and node.args.defaults[0].value is False:
            out.append(f"{path.name}:{node.lineno}: lambda with a `checked` catcher: {ast.unparse(node)}")
    return out


OPTIONAL_OK = {  # a slot with a defaulted parameter that the signal fills as the slot means it
    "self.list.currentItemChanged.connect(self._current)": "currentItemChanged(current, previous): both items",
}


def _optional_slots(path: Path) -> list[str]:
    """`.connect(self.method)` where the method has a parameter with a default: whatever signal it
    is, PySide fills that parameter from the signal's arguments (the Classes Load…/Save… bug)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defaulted = {d.name for d in ast.walk(tree) if isinstance(d, ast.FunctionDef)
                 and (d.args.defaults or any(k is not None for k in d.args.kw_defaults))}
    return [f"{path.name}:{n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "connect"
            and n.args and isinstance(n.args[0], ast.Attribute) and n.args[0].attr in defaulted
            and ast.unparse(n) not in OPTIONAL_OK]


def test_no_signal_fills_a_slots_optional_parameter():
    found = [line for p in sorted(GUI.rglob("*.py")) for line in _optional_slots(p)]
    assert not found, "connect these through connect_plain (or a lambda that passes what is meant):\n" \
        + "\n".join(found)


def test_buttons_and_actions_connect_through_connect_plain():
    bare = [line for p in sorted(GUI.rglob("*.py")) for line in _bare_connections(p)]
    assert not bare, "connect these with segstudio.gui.signals.connect_plain:\n" + "\n".join(bare)


def test_connect_plain_drops_the_checked_argument(qtbot):
    from PySide6.QtWidgets import QPushButton

    from segstudio.gui.signals import connect_plain
    got = []

    def slot(answer=None):
        got.append(answer)
    b = QPushButton("x")
    qtbot.addWidget(b)
    connect_plain(b.clicked, slot)
    b.show()
    QTest.mouseClick(b, Qt.MouseButton.LeftButton)
    assert got == [None]

