"""Regions dock: the current image's regions with class, source, score, area, id and object;
selection follows the canvas both ways; a tick hides or shows a region. The Object column is a
region's identity across a sequence's frames (its track): typing another object's number there
makes the region that object (one undo step)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from segstudio.gui.docks.classes import color_icon

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.editing.editor import EditorState


OBJECT_COLUMN = 5
OBJECT_TIP = ("The object this region shows, the same number on every frame of a sequence (propagation "
              "keeps it). Double-click and type another object's number to make this region that object")


class RegionsDock(QWidget):
    selection_changed = Signal(list)
    visibility_changed = Signal()
    message = Signal(str)  # a typed object number that was not taken, and why

    def __init__(self, editor: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.table = QTableWidget(0, 6, self)
        self.table.setHorizontalHeaderLabels(["Class", "Source", "Score", "Area", "Id", "Object"])
        header = self.table.horizontalHeaderItem(OBJECT_COLUMN)
        if header is not None:
            header.setToolTip(OBJECT_TIP)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # only the Object column is editable (its items alone carry the editable flag)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked |
                                   QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, 6):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.itemChanged.connect(self._item_changed)
        self.table.setSortingEnabled(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table)
        self._filling = False
        self.classes: dict[int, LabelClass] = {}

    def set_classes(self, classes: Iterable[LabelClass]) -> None:
        self.classes = {c.id: c for c in classes}

    def refresh(self) -> None:
        doc = self.editor.doc
        self._filling = True
        self.table.setSortingEnabled(False)
        regions = doc.ordered()[::-1] if doc is not None else []
        self.table.setRowCount(len(regions))
        for row, r in enumerate(regions):
            c = self.classes.get(r.class_id)
            it = QTableWidgetItem(c.name if c else f"class {r.class_id}")
            if c:
                it.setIcon(color_icon(c.color))
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Unchecked if r.id in self.editor.hidden_regions else Qt.CheckState.Checked)
            it.setData(Qt.ItemDataRole.UserRole, r.id)
            it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 0, it)
            self._cell(row, 1, r.source)
            self._cell(row, 2, "" if r.score is None else f"{r.score:.2f}")
            self._cell(row, 3, r.area)
            self._cell(row, 4, r.id)
            obj = self._cell(row, OBJECT_COLUMN, r.object_id)
            obj.setFlags(obj.flags() | Qt.ItemFlag.ItemIsEditable)
            obj.setData(Qt.ItemDataRole.UserRole, r.id)
            obj.setToolTip(OBJECT_TIP)
        self.table.setSortingEnabled(True)
        self._filling = False
        self.sync_selection()

    def _cell(self, row: int, col: int, value: object) -> QTableWidgetItem:
        item = QTableWidgetItem()
        item.setData(Qt.ItemDataRole.DisplayRole, value)  # numbers sort as numbers
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        self.table.setItem(row, col, item)
        return item

    def set_object(self, region_id: int, text: str) -> bool:
        """Give the region the identity of object `text` (a number): one undo step. False, with
        a message, when the text is not an object number."""
        doc = self.editor.doc
        if doc is None or region_id not in doc.regions:
            return False
        r = doc.regions[region_id]
        try:
            obj = int(str(text).strip())
        except ValueError:
            obj = 0
        if obj < 1:
            self.message.emit(f"An object is a number of 1 or more, not {str(text).strip()!r}")
            return False
        if obj != r.object_id:
            # its own id is its identity already: stored as no track
            doc.set_attrs(region_id, label=f"Same object as #{obj}", track=None if obj == r.id else obj)
            others = [o.id for o in doc.regions.values() if o.id != region_id and o.object_id == obj]
            if others:
                self.message.emit(f"Region {region_id} is object {obj}, as region {others[0]} on this image "
                                  "is: two parts of one object")
        return True

    def sync_selection(self) -> None:
        self._filling = True
        self.table.clearSelection()
        sel = set(self.editor.selected)
        for row in range(self.table.rowCount()):
            it = self.table.item(row, 0)
            if it is not None and it.data(Qt.ItemDataRole.UserRole) in sel:
                self.table.selectRow(row) if len(sel) == 1 else \
                    self.table.selectionModel().select(self.table.model().index(row, 0),
                                                       self.table.selectionModel().SelectionFlag.Select |
                                                       self.table.selectionModel().SelectionFlag.Rows)
                self.table.scrollToItem(it)
        self._filling = False

    def _selected(self) -> None:
        if self._filling:
            return
        ids = []
        for idx in self.table.selectionModel().selectedRows(0):
            it = self.table.item(idx.row(), 0)
            if it is not None:
                ids.append(it.data(Qt.ItemDataRole.UserRole))
        self.selection_changed.emit(ids)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        if item.column() == OBJECT_COLUMN:
            # the document's change refreshes the table (or the old number comes back now)
            if not self.set_object(item.data(Qt.ItemDataRole.UserRole), item.text()):
                QTimer.singleShot(0, self.refresh)  # not inside the table's own signal
            return
        if item.column() != 0:
            return
        rid = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self.editor.hidden_regions.discard(rid)
        else:
            self.editor.hidden_regions.add(rid)
        self.visibility_changed.emit()
