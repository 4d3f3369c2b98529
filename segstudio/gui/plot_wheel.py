"""The wheel over a chart in a scrolling panel: it scrolls the panel, as everywhere else in the
panel, unless the user has clicked the chart (it has the keyboard focus) and the chart has data to
zoom. An empty loss plot never swallows the wheel the user meant for the panel."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QWidget


def has_data(view: pg.GraphicsView) -> bool:
    """Whether any curve of the chart has points."""
    for item in view.scene().items():
        if isinstance(item, pg.PlotDataItem):
            xs, _ = item.getData()
            if xs is not None and len(xs):
                return True
    return False


def _scroll_area(w: QWidget) -> QAbstractScrollArea | None:
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea) and not isinstance(p, pg.GraphicsView):
            return p
        p = p.parentWidget()
    return None


class PlotWheelGuard(QObject):
    """Event filter on a chart's viewport (where Qt delivers its wheel events)."""

    def __init__(self, view: pg.GraphicsView) -> None:
        super().__init__(view)
        self.view = view

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.Wheel or (self.view.hasFocus() and has_data(self.view)):
            return False
        area = _scroll_area(self.view)
        if area is not None:
            QCoreApplication.sendEvent(area.viewport(), event)
        return True  # never zooms: the panel scrolls, or (outside a scroll area) nothing happens


def guard_plot_wheel(view: pg.GraphicsView) -> PlotWheelGuard:
    """A click gives the chart the focus (then the wheel zooms it, when it has data); the wheel
    alone scrolls the panel around it."""
    view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
    guard = PlotWheelGuard(view)
    view.viewport().installEventFilter(guard)
    return guard
