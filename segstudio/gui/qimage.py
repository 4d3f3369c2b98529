"""numpy arrays shown as QImages without copying (the array must outlive the QImage)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage


def wrap(a: np.ndarray) -> QImage:
    """Zero-copy QImage over a C-contiguous uint8 array: (H, W) gray, (H, W, 3) RGB, (H, W, 4) RGBA."""
    if a.dtype != np.uint8 or not a.flags.c_contiguous:
        raise ValueError("wrap() needs a C-contiguous uint8 array")
    h, w = a.shape[:2]
    if a.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif a.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    elif a.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    else:
        raise ValueError(f"cannot show an array of shape {a.shape}")
    return QImage(a.data, w, h, a.strides[0], fmt)


def wrap_indexed(a: np.ndarray, colors: list[int]) -> QImage:
    """Zero-copy Indexed8 QImage (a colour table maps values to ARGB), as pyqtgraph does for labels."""
    h, w = a.shape
    q = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Indexed8)
    q.setColorTable(colors)
    return q


def argb(rgb: tuple[int, int, int], alpha: int = 255) -> int:
    return QColor(rgb[0], rgb[1], rgb[2], alpha).rgba()
