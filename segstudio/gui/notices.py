"""The strips above the canvas: the getting-started help on a first run, the notice of an
image that cannot be opened and the one of an image open in another window too. Each has an
icon, a few lines of text and a button that closes it."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from segstudio.core.claims import describe_owner
from segstudio.gui.toolbox import icon
from segstudio.gui.signals import connect_plain

GETTING_STARTED_KEY = "help/getting_started_dismissed"  # QSettings: the strip was closed once, for good
GETTING_STARTED = (
    "<b>Getting started</b> &nbsp;"
    "<b>1.</b> Open a folder of images: <b>Ctrl+O</b>{samples}. &nbsp;"
    "<b>2.</b> Pick a class: keys <b>1</b>–<b>9</b>, or click it in <i>Classes</i>. &nbsp;"
    "<b>3.</b> Click an object with the magic wand (<b>W</b>) or paint it with the brush (<b>B</b>); "
    "with a model loaded, <i>Model click / box</i> (<b>I</b>) segments what you click. &nbsp;"
    "<b>4.</b> <b>Ctrl+Enter</b> marks the image done and opens the next unfinished one. &nbsp;"
    "<b>F1</b> lists every shortcut.")


def open_elsewhere_text(path: str, holders: list[str]) -> str:
    """The notice of an image another window (or process) holds open too (see core/claims)."""
    who = ", ".join(describe_owner(h) for h in holders)
    return (f"<b>{html.escape(path)} is also open in another window</b> ({html.escape(who)}). "
            "Model runs over the folder, from there or from here, leave it alone while either window shows it. "
            "Edits made in both windows may overwrite each other: edit it in one window only.")


def unreadable_text(path: str, message: str, folder: str) -> str:
    """The notice of an image that cannot be opened: why, and that the rest of the folder works."""
    return (f"<b>Cannot open {html.escape(path)}</b>: {html.escape(message)}<br>"
            "The rest of the folder works: go on with the next image (<b>D</b>) or the next unfinished one "
            "(<b>N</b>). The file is marked in the Files list; replace it with a readable copy and open it "
            f"again. <code>segstudio check {html.escape(folder)}</code> lists every file that cannot be read.")


NOTICE_COLOURS = {  # background, border, text: fixed and light, so the text and the black icons read on any theme
    "info": ("#e7f0fb", "#9dbfe4", "#14283c"),
    "error": ("#fcebea", "#e3a5a1", "#4d1410"),
}


class NoticeBar(QFrame):
    """A strip above the canvas: an icon, a few lines of text, a button that closes it."""

    dismissed = Signal()

    def __init__(self, name: str, icon_name: str, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        bg, border, fg = NOTICE_COLOURS[kind]
        self.setStyleSheet(f"QFrame#{name} {{ background: {bg}; border: 1px solid {border}; border-radius: 4px; }}"
                           f" QFrame#{name} QLabel {{ background: transparent; border: none; color: {fg}; }}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        badge = QLabel()
        badge.setPixmap(icon(icon_name, black=True).pixmap(20, 20))
        badge.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.text = QLabel()
        self.text.setObjectName(name + "_text")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setObjectName(name + "_close")
        self.close_button.setIcon(icon("x", black=True))
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Close")
        connect_plain(self.close_button.clicked, self.dismiss)
        lay.addWidget(badge)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_text(self, text: str) -> None:
        self.text.setText(text)
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
