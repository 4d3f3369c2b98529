"""What every dock shares: a scroll wheel that scrolls the panel rather than the value under the
pointer, buttons that hand the keyboard back to the canvas, and error text shown as text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractScrollArea, QAbstractSpinBox, QComboBox, QLabel,
                               QMessageBox, QWidget)

if TYPE_CHECKING:
    from segstudio.core.store import Store


class WheelGuard(QObject):
    """Event filter for combo and spin boxes: the wheel changes one only while it has the
    keyboard focus (the user clicked or tabbed into it). Otherwise the box never sees the wheel:
    the scroll area around the panel gets it and scrolls (without one, the event is ignored and
    Qt offers it to the parents)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.Wheel or not isinstance(obj, (QComboBox, QAbstractSpinBox)) \
                or obj.hasFocus():
            return False
        area = _scroll_area(obj)
        if area is not None:
            QCoreApplication.sendEvent(area.viewport(), event)
        else:
            event.ignore()
        return True


def _scroll_area(w: QWidget) -> QAbstractScrollArea | None:
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea):
            return p
        p = p.parentWidget()
    return None


def guard_inputs(root: QWidget, give_focus_back: Callable[[], object] | None = None) -> WheelGuard:
    """Every combo and spin box under `root` takes the wheel only when focused (StrongFocus: a
    click or Tab gives it the focus, the wheel alone does not). With `give_focus_back`, every
    button under `root` calls it after its own action has run, so after pressing a panel's
    button the keys reach the canvas (tool keys, class digits) rather than a value box."""
    guard = WheelGuard(root)
    for w in root.findChildren(QWidget):
        if isinstance(w, (QComboBox, QAbstractSpinBox)):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(guard)
        elif give_focus_back is not None and isinstance(w, QAbstractButton) and not w.isCheckable():
            w.clicked.connect(lambda *_: give_focus_back())  # connected last: runs after the action
    return guard


BREAK_AFTER = "/\\_-.,:;=&?"  # a long word (a path, a file name) may wrap after these
LONG_WORD = 16  # characters: a shorter word is never broken
ZWSP = "\u200b"  # zero-width space: a place to wrap that shows nothing


def breakable(text: str) -> str:
    """`text` with a zero-width space after the separators of each long word, so a wrapped label
    breaks a long path or file name instead of growing as wide as it."""
    def one(word: str) -> str:
        if len(word) < LONG_WORD:
            return word
        parts = "".join(c + ZWSP if c in BREAK_AFTER else c for c in word).split(ZWSP)
        # a run with no separator (a hash) may still wrap every LONG_WORD characters
        return ZWSP.join(ZWSP.join(p[i:i + LONG_WORD] for i in range(0, len(p), LONG_WORD)) or p for p in parts)
    return "\n".join(" ".join(one(w) for w in line.split(" ")) for line in text.split("\n"))


class WrappingLabel(QLabel):
    """A word-wrapped label that never widens its panel: a long word wraps at its separators (the
    label shows `breakable(text)`); text() gives the text back as it was set."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._plain = text
        super().setText(breakable(text) if self.wordWrap() else text)

    def text(self) -> str:
        return getattr(self, "_plain", super().text())


def plain_label(text: str = "", word_wrap: bool = True) -> QLabel:
    """A label that shows its text as it is: an error such as '<urlopen error …>' is not read as
    an HTML tag and dropped. Long paths in it wrap (WrappingLabel)."""
    label = WrappingLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(word_wrap)
    label.setText(text)
    return label


def show_error(label: QLabel, text: str) -> None:
    """Error text on a label, in red, as plain text."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet("color: #c33;")
    label.setText(text)


def show_note(label: QLabel, text: str) -> None:
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet("")
    label.setText(text)


def warn(parent: QWidget | None, title: str, text: str) -> None:
    """A warning box whose text is shown as plain text (QMessageBox.warning guesses the format and
    reads a '<…>' in an error as markup)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.exec()


class KeptChoices(QObject):
    """A panel's choices kept in the project's store under `key`: written a moment after the
    last change (a held spin-box arrow makes one write, not thirty), and at once by flush() (the
    panel hides as the window closes)."""

    def __init__(self, store: Store, key: str, choices: Callable[[], dict[str, Any]],
                 parent: QObject | None = None, delay_ms: int = 400) -> None:
        super().__init__(parent)
        from PySide6.QtCore import QTimer
        self.store, self.key, self.choices = store, key, choices
        self.paused = False  # while a panel restores its choices
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.flush)
        self._pending = False

    def changed(self, *_: Any) -> None:
        if self.paused:
            return
        self._pending = True
        self.timer.start()

    def flush(self) -> None:
        self.timer.stop()
        if not self._pending:
            return
        self._pending = False
        try:
            self.store.set_setting(self.key, self.choices())
        except Exception as e:  # a locked or full disk must not break a panel; the edits matter more  # noqa: BLE001
            import logging
            logging.getLogger(__name__).warning("could not keep the %s choices: %s", self.key, e)

    def load(self) -> dict[str, Any]:
        try:
            d = self.store.get_setting(self.key) or {}
        except Exception:  # an unreadable setting means the defaults, never a broken panel  # noqa: BLE001
            return {}
        return d if isinstance(d, dict) else {}
