"""The status bar's note of a failed save: it stays (a permanent label) until the retry succeeds.
Its text quotes the store (a team's store names who holds the image): plain text only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from segstudio.gui import status_times

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStatusBar

    from segstudio.gui.session import Session


class SaveLabel(QLabel):
    def __init__(self, session: Session, status_bar: QStatusBar, update_title) -> None:
        super().__init__("")
        self.session, self.status_bar, self.update_title = session, status_bar, update_title
        self.setObjectName("save_failure")
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setStyleSheet("color: #d03030; font-weight: bold")
        self.hide()
        status_bar.addPermanentWidget(self)
        session.save_failed.connect(self.failed)
        session.save_recovered.connect(self.recovered)

    def failed(self, message: str) -> None:
        others = len(self.session.save_errors) - 1
        self.setText(message + (f" (and {others} more image{'s' * (others > 1)})" if others > 0 else ""))
        self.setToolTip("Edits are kept in memory and saved as soon as the store accepts them")
        self.show()
        self.status_bar.showMessage(message, status_times.SAVE_FAILED_MS)
        self.update_title()

    def recovered(self, message: str) -> None:
        self.hide()
        self.setText("")
        self.status_bar.showMessage(message, status_times.INFO_MS)
        self.update_title()
