"""Questions about classes: what a class delete does with the class's regions, and what the 255
of binary masks (label maps with only 0 and 255) becomes in an import."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QRadioButton,
                               QVBoxLayout, QWidget)

from segstudio.gui.docks.common import plain_label
from segstudio.io.labelmap import BINARY_DEFAULT

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.core.store import Store


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class DeleteClassDialog(QDialog):
    """Delete a class: delete its regions, or move them to another class; Cancel changes nothing."""

    def __init__(self, parent: QWidget | None, cls: LabelClass, usage: tuple[int, int, int],
                 others: list[LabelClass]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Delete class")
        n, images, done = usage
        lay = QVBoxLayout(self)
        lay.addWidget(plain_label(f"Delete class “{cls.name}”? It has {_plural(n, 'region')} on "
                                  f"{_plural(images, 'image')}."))
        reopen = f" ({_plural(done, 'done image')} go{'es' if done == 1 else ''} back to in progress)" if done else ""
        self.delete_regions = QRadioButton(f"Delete its {_plural(n, 'region')}{reopen}")
        self.move_regions = QRadioButton("Move them to")
        self.target = QComboBox()
        for o in others:
            self.target.addItem(o.name, o.id)
        group = QButtonGroup(self)
        group.addButton(self.delete_regions)
        group.addButton(self.move_regions)
        self.delete_regions.setChecked(True)
        self.move_regions.setEnabled(bool(others))
        self.target.setEnabled(False)
        self.move_regions.toggled.connect(self.target.setEnabled)
        row = QHBoxLayout()
        row.addWidget(self.move_regions)
        row.addWidget(self.target, 1)
        if n:
            lay.addWidget(self.delete_regions)
            lay.addLayout(row)
        else:
            self.delete_regions.hide()
            self.move_regions.hide()
            self.target.hide()
        lay.addWidget(plain_label("Edit › Undo (Ctrl+Z) brings the class and its regions back."))
        self.buttons = QDialogButtonBox()
        self.ok_button = self.buttons.addButton("Delete class", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def reassign_to(self) -> int | None:
        """The class the regions move to; None: they are deleted."""
        return self.target.currentData() if self.move_regions.isChecked() else None


class BinaryClassDialog(QDialog):
    """Import 255 of binary masks as a class (picked or typed) or as ignore; Cancel stops the import."""

    def __init__(self, parent: QWidget | None, first_mask: str, classes: list[str]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Binary masks")
        lay = QVBoxLayout(self)
        lay.addWidget(plain_label(
            f"The label maps hold only 0 and 255 ({first_mask} is the first): binary masks. "
            "0 stays background. Import the 255 pixels as:"))
        self.as_class = QRadioButton("Class")
        self.name = QComboBox()
        self.name.setEditable(True)  # a new class by name, or one the project has
        names = classes if len(classes) == 1 else [BINARY_DEFAULT, *[c for c in classes if c != BINARY_DEFAULT]]
        self.name.addItems(names)
        self.as_ignore = QRadioButton("Ignore: training skips these pixels and exports leave them out")
        group = QButtonGroup(self)
        group.addButton(self.as_class)
        group.addButton(self.as_ignore)
        self.as_class.setChecked(True)
        self.as_class.toggled.connect(self.name.setEnabled)
        row = QHBoxLayout()
        row.addWidget(self.as_class)
        row.addWidget(self.name, 1)
        lay.addLayout(row)
        lay.addWidget(self.as_ignore)
        self.buttons = QDialogButtonBox()
        self.ok_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def _accept(self) -> None:
        if self.as_class.isChecked() and not self.name.currentText().strip():
            self.name.setFocus()  # a class needs a name
            return
        self.accept()

    def answer(self) -> str:
        """A class name, or `__ignore__` (the importer's word for ignore)."""
        return self.name.currentText().strip() if self.as_class.isChecked() else "__ignore__"


class BinaryQuestion(QObject):
    """The import's `binary_class` callback: called on the import's worker thread, it asks on
    the GUI thread (BinaryClassDialog) and waits for the answer (None: Cancel)."""

    _asked = Signal(str)

    def __init__(self, parent: QWidget, store: Store) -> None:
        super().__init__(parent)
        self.widget, self.store = parent, store
        self._answer: str | None = None
        self._answered = threading.Event()
        self._asked.connect(self._ask)  # queued: the worker thread emits, the GUI thread asks

    def __call__(self, first_mask: str) -> str | None:
        if QThread.currentThread() == self.thread():  # called on the GUI thread itself: ask directly
            self._ask(first_mask)
            return self._answer
        self._answered.clear()
        self._asked.emit(first_mask)
        self._answered.wait()
        return self._answer

    def _ask(self, first_mask: str) -> None:
        self._answer = None
        try:
            names = [c.name for c in self.store.classes() if not c.ignore]
            dlg = BinaryClassDialog(self.widget, first_mask, names)
            if dlg.exec() == QDialog.DialogCode.Accepted:
                self._answer = dlg.answer()
        finally:
            self._answered.set()
