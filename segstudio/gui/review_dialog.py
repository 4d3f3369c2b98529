"""Return with note…: the reviewer says what to fix. The note is required (the annotator sees it on
the image) and is plain text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from segstudio.core.store.sql_team import NOTE_MAX


class ReturnDialog(QDialog):
    def __init__(self, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Return with note")
        self.setObjectName("return_dialog")
        label = QLabel(f"What should be fixed on {path}? The annotator sees this note on the image.")
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setWordWrap(True)
        self.edit = QPlainTextEdit()
        self.edit.setObjectName("return_note")
        self.edit.setPlaceholderText("e.g. the left cell is missing; the border of the big one is too wide")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Return")
        self.ok_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.edit.textChanged.connect(self._changed)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addWidget(self.edit, 1)
        lay.addWidget(self.buttons)
        self.resize(460, 220)

    def note(self) -> str:
        return self.edit.toPlainText().strip()

    def _changed(self) -> None:
        n = len(self.note())
        self.ok_button.setEnabled(0 < n <= NOTE_MAX)
        self.ok_button.setToolTip("" if n <= NOTE_MAX else f"A note is at most {NOTE_MAX} characters ({n} now)")
