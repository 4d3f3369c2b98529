"""Classes dock: add, rename, recolour, delete (asking what becomes of the regions; one undo
step), reorder, visibility, the "ignore" switch, hotkeys 1-9, load / save a class list.

Buttons connect through connect_plain: Qt's `clicked(bool)` would hand `checked=False` to the
first optional parameter (a path, an answer) and skip the dialog that should ask for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QColorDialog, QDialog, QFileDialog, QHBoxLayout, QInputDialog, QListWidget,
                               QListWidgetItem, QMessageBox, QPushButton, QVBoxLayout, QWidget)

from segstudio.core.class_delete import ClassDeletion, ProjectHistory
from segstudio.core.classes import IGNORE_NAMES, read_class_file, write_class_file
from segstudio.core.errors import UserError
from segstudio.gui.class_questions import DeleteClassDialog
from segstudio.gui.docks.common import guard_inputs, warn
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.core.store import Store
    from segstudio.editing.editor import EditorState


def color_icon(rgb: tuple[int, int, int]) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class ClassesDock(QWidget):
    current_changed = Signal(object)  # class id or None
    classes_changed = Signal()  # names, colours, order, membership
    visibility_changed = Signal()
    regions_changed = Signal()  # a delete (or its undo) moved, removed or restored regions and statuses
    focus_canvas = Signal()  # a button did its job: the keys go back to the canvas
    message = Signal(str)  # what a Load, Save or Delete did, for the status bar

    def __init__(self, store: Store, editor: EditorState, parent: QWidget | None = None, *,
                 flush_edits: Callable[[], object] | None = None) -> None:
        """`flush_edits` saves the pending edits; it runs before a delete changes the store."""
        super().__init__(parent)
        self.store, self.editor = store, editor
        self._flush_edits = flush_edits
        self.history = ProjectHistory()  # class deletes: Edit > Undo reaches them through undo()
        self.list = QListWidget(self)
        self.list.currentItemChanged.connect(self._current)
        self.list.itemChanged.connect(self._item_changed)
        connect_plain(self.list.itemDoubleClicked, self.rename)
        self.list.setToolTip("Tick to show, untick to hide a class. Double-click to rename.")
        buttons = []
        for text, slot, tip in [("Add", self.add, "Add a class"), ("Rename", self.rename, ""),
                                ("Colour", self.recolour, ""), ("Delete", self.delete, ""),
                                ("Load…", self.load, "Load a class list (one name per line)"),
                                ("Save…", self.save, "Save the class list")]:
            b = QPushButton(text)
            connect_plain(b.clicked, slot)
            if tip:
                b.setToolTip(tip)
            buttons.append(b)
        self.add_button, self.rename_button, self.colour_button, self.delete_button, self.load_button, \
            self.save_button = buttons
        self.ignore_button = QPushButton("Ignore")
        self.ignore_button.setCheckable(True)
        self.ignore_button.setToolTip("An ignore class marks pixels no model learns from: training skips them, "
                                      "label-map exports write them as 255, COCO and YOLO exports leave them out. "
                                      "Click to switch it on or off for the selected class.")
        connect_plain(self.ignore_button.clicked, self.toggle_ignore)
        buttons.append(self.ignore_button)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for b in buttons[:4]:
            row1.addWidget(b)
        for b in buttons[4:]:
            row2.addWidget(b)
        self.up = QPushButton("▲")
        self.down = QPushButton("▼")
        connect_plain(self.up.clicked, lambda: self.move_class(-1))
        connect_plain(self.down.clicked, lambda: self.move_class(1))
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
        self._show_ignore()

    def _show_ignore(self) -> None:
        """The Ignore button shows the selected class's flag."""
        c = self._selected_class()
        self.ignore_button.setEnabled(c is not None)
        self.ignore_button.setChecked(bool(c is not None and c.ignore))

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
        self._show_ignore()
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
            new = c.with_(name=name.strip())
            if c.ignore and new.name.lower() not in IGNORE_NAMES:
                # "__ignore__" renamed to "cell" is most likely meant as a class now: ask, never assume
                keep = QMessageBox.question(
                    self, "Rename class", f"“{c.name}” is an ignore class: training skips its pixels and exports "
                    f"leave them out. Keep “{new.name}” an ignore class?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
                new = new.with_(ignore=keep == QMessageBox.StandardButton.Yes)
            try:
                self.store.update_class(new)
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

    def toggle_ignore(self) -> None:
        """Switch "ignore" for the selected class to what the (checkable) Ignore button shows."""
        c = self._selected_class()
        if c is None:
            return
        want = self.ignore_button.isChecked()
        if want != c.ignore:
            self.store.update_class(c.with_(ignore=want))
            self.refresh()
            self.classes_changed.emit()

    def delete(self) -> None:
        """Delete the selected class, asking what becomes of its regions (delete them, move them
        to another class, or cancel)."""
        c = self._selected_class()
        if c is None:
            return
        others = [o for o in self.store.classes() if o.id != c.id]
        dlg = DeleteClassDialog(self, c, self.store.class_usage(c.id), others)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        self.remove_class(c.id, dlg.reassign_to())

    def remove_class(self, class_id: int, reassign_to: int | None = None) -> bool:
        """Delete a class as the dialog's answer says, as one undo step (Edit > Undo). Done images
        that lose regions go back to in progress. False when the pending edits could not be saved
        first (the store would then get them after the delete)."""
        if self.flush_edits() is False:
            warn(self, "Delete class", "The latest edits are not saved yet (see the status bar); "
                 "the class is kept. Try again once they are saved.")
            return False
        try:
            removed = self.store.remove_class(class_id, reassign_to)
        except UserError as e:
            warn(self, "Delete class", str(e))
            return False
        self.history.push(ClassDeletion(removed))
        if self.editor.current_class_id == class_id:
            rest = self.store.classes()
            self.editor.current_class_id = reassign_to or (rest[0].id if rest else None)
        self.editor.hidden_classes.discard(class_id)
        self._changed()
        self.message.emit(_deleted_text(removed.cls.name, len(removed.deleted), len(removed.moved),
                                        self._class_name(reassign_to)))
        return True

    @property
    def can_undo(self) -> bool:
        return self.history.can_undo

    def undo(self) -> str | None:
        """Undo the newest class delete: the class, its regions and the statuses come back.
        Returns the step's label (None: nothing to undo, or the pending edits are not saved)."""
        if not self.history.can_undo or self.flush_edits() is False:
            return None
        step = self.history.undo(self.store)
        if step is None:
            return None
        if step.restored is not None and self.editor.current_class_id is None:
            self.editor.current_class_id = step.restored.id
        self._changed()
        return step.label

    def _changed(self) -> None:
        self.refresh()
        self.classes_changed.emit()
        self.regions_changed.emit()

    def flush_edits(self) -> object:
        """Save pending edits (the callback given at construction) before the store changes
        underneath; returns what it returns (the session's flush: False when a save failed)."""
        return self._flush_edits() if self._flush_edits is not None else True

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
        """Add the classes of a class list the project lacks (asked for with a file dialog)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load class list", "", "Text files (*.txt);;All files (*)")
            if not path:
                return
        dropped: list[str] = []
        try:
            entries = read_class_file(path, dropped)
        except (OSError, UnicodeDecodeError) as e:
            warn(self, "Load class list", f"Cannot read {path}: {e}")
            return
        have = {c.name for c in self.store.classes()}
        added = 0
        skipped = [f"{name} — 0 is background" for name in dropped]
        for entry in entries:
            if entry.name in have:
                skipped.append(f"{entry.name} — already there")
                continue
            try:
                self.store.add_class(entry.name, entry.color, ignore=entry.ignore)
            except ValueError as e:
                warn(self, "Load class list", f"{path}: class {entry.name!r}: {e}")
                skipped.append(f"{entry.name} — {e}")
                continue
            have.add(entry.name)
            added += 1
        self.refresh()
        self.classes_changed.emit()
        if not entries and not dropped:
            warn(self, "Load class list", f"{path} names no class (one name per line)")
            return
        self.message.emit(f"Loaded {_classes(added)} from {Path(path).name}" +
                          (f" (skipped: {'; '.join(skipped)})" if skipped else ""))

    def save(self, path: str | None = None) -> None:
        """Write the class list, one name and colour a line, to a file (asked for with a file dialog)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save class list", "classes.txt", "Text files (*.txt)")
            if not path:
                return
        classes = self.store.classes()
        try:
            write_class_file(path, classes)
        except ValueError as e:
            warn(self, "Save class list", f"Nothing written to {path}: {e}")
        except OSError as e:
            warn(self, "Save class list", f"Cannot write {path}: {e}")
        else:
            self.message.emit(f"Saved {_classes(len(classes))} to {path}")

    def _class_name(self, class_id: int | None) -> str | None:
        return next((c.name for c in self.store.classes() if c.id == class_id), None) if class_id else None


def _classes(n: int) -> str:
    return "1 class" if n == 1 else f"{n} classes"


def _deleted_text(name: str, deleted: int, moved: int, moved_to: str | None) -> str:
    """'Deleted class X and its 3 regions (Ctrl+Z brings them back)', or where they went."""
    regions = "1 region" if (deleted or moved) == 1 else f"{deleted or moved} regions"
    if moved and moved_to:
        return f"Deleted class {name}; its {regions} moved to {moved_to} (Ctrl+Z moves them back)"
    if deleted:
        return f"Deleted class {name} and its {regions} (Ctrl+Z brings them back)"
    return f"Deleted class {name} (Ctrl+Z brings it back)"
