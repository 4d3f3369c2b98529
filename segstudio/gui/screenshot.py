"""Render the main window to a PNG: open an image (the given one, or the first with regions),
select its largest region, wait for it to be painted, grab the window."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QCoreApplication

if TYPE_CHECKING:
    from segstudio.gui.main_window import MainWindow


def wait_until(app: QCoreApplication, cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.01)
    return False


def take(app: QCoreApplication, win: MainWindow, out: str, image_name: str | None = None) -> int:
    store = win.project.store
    target = None
    if image_name:
        target = next((r for r in store.images() if r.path == image_name or r.name == image_name), None)
    if target is None:
        target = next((r for r in store.images() if store.region_count(r.id)), None) or \
            next(iter(store.images()), None)
    if target is None:
        print("segstudio: error: no images to show")
        return 2
    win.open_image(target.id)
    wait_until(app, lambda: win.editor.doc is not None and win.editor.doc.image_id == target.id)
    doc = win.editor.doc
    if doc is not None and doc.regions:
        biggest = max(doc.regions.values(), key=lambda r: r.area)
        win.editor.select([biggest.id])
    win.canvas.fit()
    for _ in range(20):
        QCoreApplication.processEvents()
        time.sleep(0.02)
    pix = win.grab()
    ok = pix.save(out)
    win.close()
    print(f"wrote {out}" if ok else f"could not write {out}")
    return 0 if ok else 2
