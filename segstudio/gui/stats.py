"""Dataset statistics: images per status, regions per class, and each class's share of the
labelled pixels as a pyqtgraph bar chart (the same figures `segstudio info` prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from segstudio.core.records import STATUSES
from segstudio.gui.plot_style import BACKGROUND, INK, ink_plot

if TYPE_CHECKING:
    from segstudio.core.store import Store


def statistics(store: Store) -> dict[str, Any]:
    classes = store.classes()
    per = store.regions_per_class()
    area = store.area_per_class()
    total = sum(area.values()) or 1
    return {"status": store.status_counts(),
            "classes": [(c, per.get(c.id, 0), area.get(c.id, 0) / total) for c in classes]}


class StatsDialog(QDialog):
    def __init__(self, parent: QWidget | None, store: Store) -> None:
        super().__init__(parent)
        self.setWindowTitle("Dataset statistics")
        self.stats = s = statistics(store)
        counts = " · ".join(f"{k.replace('_', ' ')} {s['status'][k]}" for k in STATUSES)
        lay = QVBoxLayout(self)
        n = sum(s["status"].values())
        lay.addWidget(QLabel(f"<b>{n} image{'' if n == 1 else 's'}</b>: {counts}"))
        self.table = QTableWidget(len(s["classes"]), 3)
        self.table.setHorizontalHeaderLabels(["Class", "Regions", "Share of labelled pixels"])
        for r, (c, n, share) in enumerate(s["classes"]):
            self.table.setItem(r, 0, QTableWidgetItem(c.name))
            for col, text in ((1, str(n)), (2, f"{100 * share:.1f} %")):
                it = QTableWidgetItem(text)
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, it)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):  # as wide as the header's words or the figures, never cut
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        hh.setMinimumSectionSize(60)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table)
        self.plot = pg.PlotWidget(background=BACKGROUND)
        ink_plot(self.plot.getPlotItem(), "share of labelled pixels per class (%)")
        xs = list(range(len(s["classes"])))
        brushes = [pg.mkBrush(*c.color) for c, _, _ in s["classes"]]
        self.bars = pg.BarGraphItem(x=xs, height=[100 * sh for _, _, sh in s["classes"]], width=0.7,
                                    brushes=brushes, pen=INK)
        self.plot.addItem(self.bars)
        self.plot.getAxis("bottom").setTicks([[(i, c.name) for i, (c, _, _) in enumerate(s["classes"])]])
        self.plot.setMinimumHeight(220)
        lay.addWidget(self.plot)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)
        self.resize(560, 560)
