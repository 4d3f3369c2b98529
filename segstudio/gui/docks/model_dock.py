"""Model dock: placeholder until the models land — says so plainly, offers no controls."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ModelDock(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        label = QLabel("No models yet.\n\nAutomatic segmentation (UNet, Mask R-CNN) arrives with the "
                       "models release. Until then, use the classical assists: magic wand (W), "
                       "box → GrabCut (G) and clicks → GrabCut (R).")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
