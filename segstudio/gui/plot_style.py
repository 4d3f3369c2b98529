"""The look of segstudio's charts (dark ink on white), set on each plot.

Never through `pg.setConfigOptions`: those are process-wide and would restyle every pyqtgraph
plot, including any of a program that embeds segstudio's widgets."""

from __future__ import annotations

import pyqtgraph as pg

BACKGROUND = "w"
INK = "k"


def ink_plot(item: pg.PlotItem, title: str | None = None) -> None:
    """Axes, tick labels and the title of one plot in the ink colour. The title label keeps the
    colour when the title is set again later."""
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(INK)
        axis.setTextPen(INK)
    item.setTitle(title, color=INK)
