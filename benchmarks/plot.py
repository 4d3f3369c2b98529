"""A small line chart written with OpenCV (the GPU machine has no Qt): training curves as PNG."""

from __future__ import annotations

import cv2
import numpy as np


def line_chart(path, series: dict[str, tuple[list, list]], title: str, xlabel: str, size=(900, 500),
               shared_y: bool = False, ylabel: str = "") -> None:
    """series: name -> (xs, ys), each drawn in its colour. Each series gets its own y scale
    (min..max), or with `shared_y` one scale from 0 to the largest value, labelled on the left."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 50, 60
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (w // 2 - 40, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    colors = [(200, 80, 20), (30, 140, 30), (20, 20, 200), (150, 0, 150)]
    all_x = [x for xs, _ in series.values() for x in xs]
    if not all_x:
        cv2.imwrite(str(path), img)
        return
    x0, x1 = min(all_x), max(all_x) or 1
    all_y = [y for _, ys in series.values() for y in ys]
    top_y = 1.0
    if shared_y and all_y:
        top_y = max(all_y) or 1.0
        for frac in (0, 0.25, 0.5, 0.75, 1):
            py = int(h - bottom - frac * (h - top - bottom))
            cv2.line(img, (left - 4, py), (left, py), (0, 0, 0), 1)
            cv2.putText(img, f"{frac * top_y:.3g}", (5, py + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        if ylabel:
            cv2.putText(img, ylabel, (left + 10, h - bottom - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1)
    for k, (name, (xs, ys)) in enumerate(series.items()):
        if not xs:
            continue
        c = colors[k % len(colors)]
        y0, y1 = (0.0, top_y) if shared_y else (min(ys), max(ys))
        if y1 <= y0:
            y1 = y0 + 1e-6
        pts = [(int(left + (x - x0) / max(x1 - x0, 1e-9) * (w - left - right)),
                int(h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))) for x, y in zip(xs, ys)]
        cv2.polylines(img, [np.array(pts, np.int32)], False, c, 2, cv2.LINE_AA)
        label = name if shared_y else f"{name} ({y0:.3g} .. {y1:.3g})"
        cv2.putText(img, label, (left + 10, top + 20 + 20 * k),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, c, 1, cv2.LINE_AA)
    for frac in (0, 0.5, 1):
        xv = x0 + frac * (x1 - x0)
        px = int(left + frac * (w - left - right))
        cv2.putText(img, f"{xv:.0f}", (px - 10, h - bottom + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)
