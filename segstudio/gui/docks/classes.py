"""Classes dock: add, rename, recolour, delete (asking what becomes of the regions), reorder,
visibility, hotkeys 1-9, load / save a class list."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QColorDialog, QFileDialog, QHBoxLayout, QInputDialog, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QVBoxLayout, QWidget)

from segstudio.core.classes import read_class_file, write_class_file
from segstudio.gui.docks.common import guard_inputs, warn

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.core.store import ProjectStore
    from segstudio.gui.editor import EditorState


def color_icon(rgb: tuple[int, int, int]) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class ClassesDock(QWidget):
    current_changed = Signal(object)  # class id or None
    classes_changed = Signal()  # names, colours, order, membership
    visibility_changed = Signal()
    regions_changed = Signal()  # a delete moved or removed regions in the store
    focus_canvas = Signal()  # a button did its job: the keys go back to the canvas

    def __init__(self, store: ProjectStore, editor: EditorState, parent: QWidget | None = None, *,
                 flush_edits: Callable[[], object] | None = None) -> None:
        """`flush_edits` saves the pending edits; it runs before a delete changes the store."""
        super().__init__(parent)
        self.store, self.editor = store, editor
        self._flush_edits = flush_edits
        self.list = QListWidget(self)
        self.list.currentItemChanged.connect(self._current)
        self.list.itemChanged.connect(self._item_changed)
        self.list.itemDoubleClicked.connect(lambda _: self.rename())
        self.list.setToolTip("Tick to show, untick to hide a class. Double-click to rename.")
        buttons = []
        for text, slot, tip in [("Add", self.add, "Add a class"), ("Rename", self.rename, ""),
                                ("Colour", self.recolour, ""), ("Delete", self.delete, ""),
                                ("Load…", self.load, "Load a class list (one name per line)"),
                                ("Save…", self.save, "Save the class list")]:
            b = QPushButton(text)
            b.clicked.connect(slot)
            if tip:
                b.setToolTip(tip)
            buttons.append(b)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for b in buttons[:4]:
            row1.addWidget(b)
        for b in buttons[4:]:
            row2.addWidget(b)
        self.up = QPushButton("▲")
        self.down = QPushButton("▼")
        self.up.clicked.connect(lambda: self.move_class(-1))
        self.down.clicked.connect(lambda: self.move_class(1))
        row2.addWidget(self.up)
        row2.addWidget(self.down)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list)
        lay.addLayout(row1)
        lay.addLayout(row2)
        self._filling = False
        self.wheel_guard = guard_inputs(self, self.focus_canvas.emit)
        self.refresh()

    def classes(self) -> list[LabelClass]:
        return self.store.classes()

    def refresh(self) -> None:
        cur = self.editor.current_class_id
        self._filling = True
        self.list.clear()
        for c in self.store.classes():
            it = QListWidgetItem(color_icon(c.color), f"{c.name}" + (f"   [{c.hotkey}]" if c.hotkey else "")
                                 + ("   (ignore)" if c.ignore else ""))
            it.setData(Qt.ItemDataRole.UserRole, c.id)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Unchecked if c.id in self.editor.hidden_classes else Qt.CheckState.Checked)
            self.list.addItem(it)
            if c.id == cur:
                self.list.setCurrentItem(it)
        self._filling = False
        if cur is None and self.list.count():
            self.list.setCurrentRow(0)

    def set_current(self, class_id: int | None) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == class_id:
                self.list.setCurrentRow(i)
                return

    def select_hotkey(self, key: str) -> bool:
        for c in self.store.classes():
            if c.hotkey == key:
                self.set_current(c.id)
                return True
        return False

    def _current(self, item: QListWidgetItem | None, _prev: Any = None) -> None:
        if self._filling:
            return
        cid = item.data(Qt.ItemDataRole.UserRole) if item else None
        self.editor.current_class_id = cid
        self.current_changed.emit(cid)

    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        cid = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self.editor.hidden_classes.discard(cid)
        else:
            self.editor.hidden_classes.add(cid)
        self.visibility_changed.emit()

    def _selected_class(self) -> LabelClass | None:
        it = self.list.currentItem()
        if it is None:
            return None
        cid = it.data(Qt.ItemDataRole.UserRole)
        return next((c for c in self.store.classes() if c.id == cid), None)

    def add(self, name: str | None = None) -> None:
        if not name:
            name, ok = QInputDialog.getText(self, "Add class", "Class name:")
            if not ok or not name.strip():
                return
        try:
            c = self.store.add_class(name.strip())
        except ValueError as e:
            warn(self, "Add class", str(e))
            return
        self.editor.current_class_id = c.id
        self.refresh()
        self.classes_changed.emit()
        self.current_changed.emit(c.id)

    def rename(self) -> None:
        c = self._selected_class()
        if c is None:
            return
        name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=c.name)
        if ok and name.strip() and name.strip() != c.name:
            try:
                self.store.update_class(c.with_(name=name.strip()))
            except ValueError as e:
                warn(self, "Rename class", str(e))
                return
            self.refresh()
            self.classes_changed.emit()

    def recolour(self) -> None:
        c = self._selected_class()
        if c is None:
            return
        col = QColorDialog.getColor(QColor(*c.color), self, f"Colour of {c.name}")
        if col.isValid():
            self.store.update_class(c.with_(color=(col.red(), col.green(), col.blue())))
            self.refresh()
            self.classes_changed.emit()

    def delete(self, answer: str | None = None, reassign_to: int | None = None) -> None:
        """Delete the current class. Its regions are deleted or moved to another class: the user is asked."""
        c = self._selected_class()
        if c is None:
            return
        others = [o for o in self.store.classes() if o.id != c.id]
        n = self.store.regions_per_class().get(c.id, 0)
        if answer is None:
            box = QMessageBox(self)
            box.setWindowTitle("Delete class")
            box.setTextFormat(Qt.TextFormat.PlainText)  # a class name is text, never markup
            box.setText(f"Delete class “{c.name}”? It has {n} region{'' if n == 1 else 's'} in this project.")
            b_del = box.addButton("Delete its regions", QMessageBox.ButtonRole.DestructiveRole)
            b_move = box.addButton("Move them to another class…", QMessageBox.ButtonRole.AcceptRole) if others else None
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            clicked = box.clickedButton()
            if clicked is b_del:
                answer = "delete"
            elif b_move is not None and clicked is b_move:
                names = [o.name for o in others]
                name, ok = QInputDialog.getItem(self, "Move regions", f"Move the regions of “{c.name}” to:",
                                                names, 0, False)
                if not ok:
                    return
                answer, reassign_to = "move", others[names.index(name)].id
            else:
                return
        self.flush_edits()
        self.store.delete_class(c.id, reassign_to if answer == "move" else None)
        if self.editor.current_class_id == c.id:
            self.editor.current_class_id = others[0].id if others else None
        self.refresh()
        self.classes_changed.emit()
        self.regions_changed.emit()

    def flush_edits(self) -> None:
        """Save pending edits (the callback given at construction) before the store changes underneath."""
        if self._flush_edits is not None:
            self._flush_edits()

    def move_class(self, step: int) -> None:
        """Move the current class up (-1) or down (+1) the list. Not `move`: that is QWidget.move(x, y)."""
        c = self._selected_class()
        if c is None:
            return
        ids = [o.id for o in self.store.classes()]
        self.store.move_class(c.id, ids.index(c.id) + step)
        self.refresh()
        self.classes_changed.emit()

    def load(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load class list", "", "Text files (*.txt);;All files (*)")
            if not path:
                return
        try:
            entries = read_class_file(path)
        except (OSError, UnicodeDecodeError) as e:
            warn(self, "Load class list", f"Cannot read {path}: {e}")
            return
        have = {c.name for c in self.store.classes()}
        for entry in entries:
            if entry.name not in have:
                self.store.add_class(entry.name, entry.color, ignore=entry.ignore)
        self.refresh()
        self.classes_changed.emit()

    def save(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save class list", "classes.txt", "Text files (*.txt)")
            if not path:
                return
        write_class_file(path, self.store.classes())
