"""File › Export dataset… over a folder holding cells.png and cells.jpg, both done: the label-map
export said "Exported: ... images" and wrote one map for the two. The dialog now shows the
refusal naming both images, and nothing is written."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.conftest import make_image
from tests.gui.conftest import open_window


def _trigger(win, text: str) -> None:
    for menu in win.menus:
        for a in menu.actions():
            if a.text().replace("&", "") == text:
                a.trigger()
                return
    raise AssertionError(f"no menu action {text!r}")


def test_export_dialog_shows_the_name_clash_and_writes_nothing(qtbot, tmp_path):
    from segstudio.core.records import DONE
    from segstudio.core.region import Region
    from segstudio.gui.dialogs import ExportDialog
    folder = tmp_path / "imgs"
    for i, n in enumerate(["cells.png", "cells.jpg"]):
        make_image(folder / n, 40, 30, seed=i)
    win = open_window(qtbot, folder)
    store = win.project.store
    cls = store.classes()[0]
    for i, n in enumerate(["cells.png", "cells.jpg"]):
        r = Region(0, cls.id, np.ones((4 + i, 4), bool), 2, 2)
        r.id = store.reserve_region_ids(1)[0]
        store.save_regions(store.image_by_path(n).id, [r], status=DONE)
    _trigger(win, "Export dataset…")
    dlg = next(w for w in QApplication.topLevelWidgets() if isinstance(w, ExportDialog) and w.isVisible())
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("labelmap"))
    out = tmp_path / "out"
    dlg.out.setText(str(out))
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    # over either way: failed, or (before the fix) a result that merged the two
    qtbot.waitUntil(lambda: dlg.result is not None or dlg.report.toPlainText().startswith("Failed"), timeout=20000)
    text = dlg.report.toPlainText()
    assert dlg.result is None and text.startswith("Failed"), text
    assert "cells.png" in text and "cells.jpg" in text and "would write the same file" in text, text
    assert "Exported" not in text
    assert not out.exists()
    assert dlg.run_button.isVisible() and dlg.run_button.isEnabled()  # rename, then run again
    dlg.reject()
    win.close()
