"""Regions dock: the current image's regions with class, source, score and area; selection
follows the canvas both ways; a tick hides or shows a region."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from segstudio.gui.docks.classes import color_icon

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.editing.editor import EditorState


class RegionsDock(QWidget):
    selection_changed = Signal(list)
    visibility_changed = Signal()

    def __init__(self, editor: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Class", "Source", "Score", "Area", "Id"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, 5):
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
            self.table.setItem(row, 0, it)
            self.table.setItem(row, 1, QTableWidgetItem(r.source))
            sc = QTableWidgetItem("" if r.score is None else f"{r.score:.2f}")
            self.table.setItem(row, 2, sc)
            area = QTableWidgetItem()
            area.setData(Qt.ItemDataRole.DisplayRole, r.area)
            self.table.setItem(row, 3, area)
            idi = QTableWidgetItem()
            idi.setData(Qt.ItemDataRole.DisplayRole, r.id)
            self.table.setItem(row, 4, idi)
        self.table.setSortingEnabled(True)
        self._filling = False
        self.sync_selection()

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
        if self._filling or item.column() != 0:
            return
        rid = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self.editor.hidden_regions.discard(rid)
        else:
            self.editor.hidden_regions.add(rid)
        self.visibility_changed.emit()
