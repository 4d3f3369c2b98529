"""The frame bar under the image, shown while the open image is a frame of a sequence: a slider
over the frames with the frame number and name, where the last propagation stopped (a red tick
on the slider and its reason), and the Propagate ◀ / ▶ buttons with the number of frames.

A widget only: gui/sequence_view.py tells it which frame is open and opens what it asks for;
gui/propagate_action.py runs the propagation its buttons ask for.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QSlider, QSpinBox, QStyle, QStyleOptionSlider,
                               QToolButton, QVBoxLayout, QWidget)

from segstudio.gui.signals import connect_plain

DEFAULT_PROPAGATE_FRAMES = 10
MAX_PROPAGATE_FRAMES = 100_000
SLIDE_MS = 15  # a drag opens the frame under the handle at most this often (the newest position wins)


class FrameKeysPass(QObject):
    """Lets the frame keys (`.` `,`) reach the window's actions while the frame-count box has the
    focus: its text field would take them as typing (and refuse them), so stepping seemed dead
    until the person clicked the image."""

    KEYS = (Qt.Key.Key_Period, Qt.Key.Key_Comma)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        if ev.type() == QEvent.Type.ShortcutOverride and ev.key() in self.KEYS and \
                not ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            ev.ignore()  # not the field's: the shortcut takes it
            return True
        return False


class MarkedSlider(QSlider):
    """A horizontal slider with one mark: the frame where the last propagation stopped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.mark: int | None = None

    def set_mark(self, value: int | None) -> None:
        self.mark = value
        self.update()

    def mark_x(self) -> int | None:
        """The mark's x in the slider's own coordinates (None: no mark, or outside the range)."""
        if self.mark is None or not self.minimum() <= self.mark <= self.maximum():
            return None
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        style = self.style()
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self)
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self)
        span = max(1, groove.width() - handle.width())
        pos = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), self.mark, span)
        return groove.x() + handle.width() // 2 + pos

    def paintEvent(self, ev: QPaintEvent) -> None:
        super().paintEvent(ev)
        x = self.mark_x()
        if x is None:
            return
        p = QPainter(self)
        p.setPen(QPen(QColor(220, 40, 40), 3))
        p.drawLine(x, 1, x, self.height() - 2)
        p.end()


class FrameBar(QWidget):
    frame_requested = Signal(int)  # a 0-based position in the sequence
    step_requested = Signal(int)  # -1 / +1: the ◀ / ▶ buttons beside the slider
    propagate_requested = Signal(bool)  # backward
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("frame_bar")
        self.slider = MarkedSlider(self)
        self.slider.setObjectName("frame_slider")
        self.slider.setMinimum(0)
        self.slider.setPageStep(10)
        self.slider.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.slider.setToolTip("Drag or click to open a frame (, and . step one frame)")
        self.prev_button = self._button("◀", "Previous frame (,)", lambda: self.step_requested.emit(-1))
        self.next_button = self._button("▶", "Next frame (.)", lambda: self.step_requested.emit(1))
        self.frame_label = QLabel()
        self.frame_label.setObjectName("frame_label")
        self.frame_label.setToolTip("Frame numbers count from 0, as `segstudio propagate --from` does")
        self.name_label = QLabel()
        self.name_label.setObjectName("frame_name")
        self.name_label.setStyleSheet("color: #555")
        self.count = QSpinBox()
        self.count.setObjectName("propagate_frames")
        self.count.setRange(1, MAX_PROPAGATE_FRAMES)
        self.count.setValue(DEFAULT_PROPAGATE_FRAMES)
        self.count.setSuffix(" frames")
        self.count.setToolTip("How many frames Propagate ◀ / ▶ carries this frame's objects to")
        self._keys_pass = FrameKeysPass(self)
        # on the box too: a text field's refused ShortcutOverride goes on to its spin box, which
        # hands it back to the field's own event() (past any filter) and accepts it there
        self.count.lineEdit().installEventFilter(self._keys_pass)
        self.count.installEventFilter(self._keys_pass)
        self.back_button = self._button("◀ Propagate", "Carry this frame's objects to the frames before it "
                                        "(Ctrl+,)", lambda: self.propagate_requested.emit(True))
        self.fwd_button = self._button("Propagate ▶", "Carry this frame's objects to the frames after it "
                                       "(Ctrl+.); frames a person has worked on are never written",
                                       lambda: self.propagate_requested.emit(False))
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = self._button("Cancel", "Stop the propagation after the frame it is on",
                                          self.cancel_requested.emit)
        self.cancel_button.hide()
        self.stop_label = QLabel()
        self.stop_label.setObjectName("propagation_stop")
        self.stop_label.setStyleSheet("color: #c03030")
        self.stop_label.setWordWrap(True)
        self.stop_label.hide()
        # the slider has the whole first line (on a 10,000-frame video every pixel counts); the
        # propagation's buttons, progress and where it stopped share the second
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.prev_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.next_button)
        row.addWidget(self.frame_label)
        row.addSpacing(6)
        row.addWidget(self.name_label)
        row2 = QHBoxLayout()
        row2.setContentsMargins(0, 0, 0, 0)
        for w in (self.back_button, self.count, self.fwd_button, self.progress, self.cancel_button):
            row2.addWidget(w)
        row2.addSpacing(12)
        row2.addWidget(self.stop_label, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.setSpacing(1)
        lay.addLayout(row)
        lay.addLayout(row2)
        self._wanted: int | None = None
        self._slide = QTimer(self)
        self._slide.setSingleShot(True)
        self._slide.setInterval(SLIDE_MS)
        self._slide.timeout.connect(self._ask)
        self._setting = False
        self.slider.valueChanged.connect(self._moved)

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        connect_plain(b.clicked, slot)
        return b

    def show_frame(self, index: int, count: int, name: str) -> None:
        """The open frame: position `index` of `count` frames, named `name`."""
        self._setting = True
        self.slider.setMaximum(max(0, count - 1))
        self.slider.setValue(index)
        self._setting = False
        self._wanted = None
        self.frame_label.setText(f"frame {index} of 0–{count - 1}")  # 0-based, as `segstudio propagate --from`
        self.name_label.setText(name)
        self.prev_button.setEnabled(index > 0)
        self.next_button.setEnabled(index < count - 1)

    def set_stop(self, index: int | None, text: str) -> None:
        """Where the last propagation stopped (None: it did not stop early)."""
        self.slider.set_mark(index)
        self.stop_label.setText(text)
        self.stop_label.setVisible(bool(text))

    def set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.back_button.setEnabled(not running)
        self.fwd_button.setEnabled(not running)
        if running:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} / {total}")

    def _moved(self, value: int) -> None:
        if self._setting:
            return
        self.frame_label.setText(f"frame {value} of 0–{self.slider.maximum()}")  # as show_frame says it
        self._wanted = value
        if not self._slide.isActive():
            self._slide.start()

    def _ask(self) -> None:
        if self._wanted is not None:
            self.frame_requested.emit(self._wanted)

    def mark_rect(self) -> QRect | None:
        """Where the stop mark is drawn, in the bar's coordinates (for tests and screenshots)."""
        x = self.slider.mark_x()
        if x is None:
            return None
        top_left = self.slider.mapTo(self, self.slider.rect().topLeft())
        return QRect(top_left.x() + x - 1, top_left.y(), 3, self.slider.height())
