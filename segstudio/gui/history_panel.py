"""The History panel: who changed the shown image, when and how (the store's history rows), newest
at the bottom. Every cell is a plain-text table item: names and notes are other people's input."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, \
    QWidget

from segstudio.core.errors import UserError
from segstudio.core.store.api import Store
from segstudio.gui.team_text import cell, history_row

log = logging.getLogger(__name__)

HISTORY_ROWS = 500  # the newest entries of one image shown


class HistoryPanel(QWidget):
    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.image_id: int | None = None
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("history_table")
        self.table.setHorizontalHeaderLabels(["Time", "Who", "What", "Detail"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        head = self.table.horizontalHeader()
        for c in range(3):
            head.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel("No image shown")
        self.empty.setTextFormat(Qt.TextFormat.PlainText)  # an error's text quotes the server
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.empty)
        lay.addWidget(self.table, 1)

    def show_image(self, image_id: int | None) -> None:
        self.image_id = image_id
        self.refresh()

    def refresh(self) -> None:
        """Read the shown image's history again (after it changed, here or in another window)."""
        if self.image_id is None:
            self.table.setRowCount(0)
            self.empty.setText("No image shown")
            return
        try:
            entries = self.store.history(self.image_id, limit=HISTORY_ROWS)
        except UserError as err:
            log.warning("could not read the image's history: %s", err)
            self.empty.setText(f"Could not read the history: {err}")
            return
        self.empty.setText(f"{len(entries)} change{'' if len(entries) == 1 else 's'} recorded" if entries
                           else "No changes recorded yet")
        self.table.setRowCount(len(entries))
        for r, e in enumerate(entries):
            for c, text in enumerate(history_row(e)):
                item = QTableWidgetItem(cell(text))
                item.setToolTip(text if len(text) < 20_000 else text[:20_000] + "…")
                self.table.setItem(r, c, item)
        if entries:
            self.table.scrollToBottom()

    def rows(self) -> list[list[str]]:
        """The cells as shown (for tests and the screenshot)."""
        return [[(it.text() if (it := self.table.item(r, c)) is not None else "") for c in range(4)]
                for r in range(self.table.rowCount())]
