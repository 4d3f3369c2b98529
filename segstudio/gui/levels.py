"""Window/level for 16-bit and float images: the display range, set by hand or from percentiles.
Changes apply as they are made (the display pixels are recomputed; the data are untouched)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QPushButton, QWidget

from segstudio.core import imageio
from segstudio.gui.signals import connect_plain


class LevelsDialog(QDialog):
    def __init__(self, parent: QWidget | None, image: np.ndarray, window: tuple[float, float],
                 apply: Callable[[tuple[float, float]], None]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Window / level")
        self.image, self.apply = image, apply
        step = max(1, int(image[::8, ::8].size ** 0.5) // 1)
        lo_all = float(np.nanmin(image[::step, ::step]))
        hi_all = float(np.nanmax(image[::step, ::step]))
        decimals = 0 if image.dtype.kind in "iu" else 4
        self.low, self.high = QDoubleSpinBox(), QDoubleSpinBox()
        for box, v in ((self.low, window[0]), (self.high, window[1])):
            box.setDecimals(decimals)
            box.setRange(min(lo_all, window[0]) - 1, max(hi_all, window[1]) + 1)
            box.setValue(v)
            box.valueChanged.connect(self._changed)
        auto = QPushButton("Auto (0.5–99.5 percentiles)")
        connect_plain(auto.clicked, self.auto)
        form = QFormLayout(self)
        form.addRow("Black at", self.low)
        form.addRow("White at", self.high)
        form.addRow(auto)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        connect_plain(bb.button(QDialogButtonBox.StandardButton.Close).clicked, self.accept)
        form.addRow(bb)

    def auto(self) -> None:
        lo, hi = imageio.auto_window(self.image)
        self.low.blockSignals(True)
        self.low.setValue(lo)
        self.low.blockSignals(False)
        self.high.setValue(hi)
        self._changed()

    def _changed(self, *_: Any) -> None:
        lo, hi = self.low.value(), self.high.value()
        if hi > lo:
            self.apply((lo, hi))
