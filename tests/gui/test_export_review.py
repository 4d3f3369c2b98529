"""File › Export dataset… with review on takes accepted images by default, as `segstudio export`
does: an "accepted (N)" box ticked, "done" not, and the summary says how many done images wait for
a reviewer. With review off the dialog is as it was. Driven with real clicks on the real boxes."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segstudio.core.records import DONE, STATUSES
from segstudio.core.region import Region


def _open_export(win):
    """The dialog as a person opens it: File › Export dataset…"""
    from segstudio.gui.dialogs import ExportDialog
    file_menu = next(m for m in win.menus if m.title().replace("&", "") == "File")
    action = next(a for a in file_menu.actions() if a.text().replace("&", "") == "Export dataset…")
    assert action is win.export_action and action.isEnabled()
    action.trigger()
    dlgs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ExportDialog) and w.isVisible()]
    assert len(dlgs) == 1, dlgs
    return dlgs[0]


def _all_done(win) -> list[int]:
    store = win.project.store
    cls = store.classes()[0]
    ids = [r.id for r in store.images()]
    for i in ids:
        store.save_regions(i, [Region(store.new_region_id(), cls.id, np.ones((5, 5), bool), 3, 3)], status=DONE)
    win.session.reload_current()
    return ids


def _export_coco(qtbot, dlg, out) -> list[str]:
    """Click Run and read back the file names the COCO file holds."""
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("coco"))
    dlg.out.setText(str(out))
    before = dlg.result
    QTest.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None and dlg.result is not before, timeout=20000)
    return sorted(im["file_name"] for im in json.loads(out.read_text())["images"])


def _ticked(dlg) -> list[str]:
    return [s for s, cb in dlg.status_boxes.items() if cb.isChecked()]


def test_with_review_on_the_export_dialog_takes_accepted_images_by_default(window, qtbot, tmp_path):
    win = window
    store = win.project.store
    ids = _all_done(win)
    store.set_review_enabled(True)
    store.review_image(ids[1], True)
    accepted = store.image(ids[1]).path
    dlg = _open_export(win)
    boxes = dlg.status_boxes
    assert list(boxes) == [*STATUSES[:STATUSES.index(DONE)], "accepted", *STATUSES[STATUSES.index(DONE):]]
    assert boxes["accepted"].text() == "accepted (1)" and boxes["done"].text() == "done (3)"
    assert _ticked(dlg) == ["accepted"]
    assert dlg.summary.text() == ("Will export 1 image: 1 accepted. 2 done images are left out: not accepted "
                                  "by a reviewer yet (tick done to export them).")
    assert dlg.statuses() == ("accepted",)
    assert _export_coco(qtbot, dlg, tmp_path / "accepted.json") == [accepted]
    assert dlg.result.images == 1
    # done ticked too: every done image, each once, and nothing said to be left out
    QTest.mouseClick(boxes["done"], Qt.MouseButton.LeftButton)
    assert _ticked(dlg) == ["accepted", "done"]
    assert dlg.summary.text() == "Will export 3 images: 3 done"
    assert _export_coco(qtbot, dlg, tmp_path / "all.json") == sorted(store.image(i).path for i in ids)
    assert dlg.result.images == 3
    # accepted alone unticked: done images as before review
    QTest.mouseClick(boxes["accepted"], Qt.MouseButton.LeftButton)
    assert _ticked(dlg) == ["done"] and dlg.summary.text() == "Will export 3 images: 3 done"
    QTest.mouseClick(boxes["done"], Qt.MouseButton.LeftButton)
    assert dlg.summary.text().startswith("No images to export") and not dlg.run_button.isEnabled()
    dlg.reject()


def test_with_review_on_and_nothing_accepted_the_dialog_says_why_it_cannot_run(window, qtbot, tmp_path):
    win = window
    _all_done(win)
    win.project.store.set_review_enabled(True)
    dlg = _open_export(win)
    assert dlg.status_boxes["accepted"].text() == "accepted (0)" and _ticked(dlg) == ["accepted"]
    assert dlg.summary.text() == ("No images to export: no image has the statuses ticked. 3 done images are left "
                                  "out: not accepted by a reviewer yet (tick done to export them).")
    assert not dlg.run_button.isEnabled()
    QTest.mouseClick(dlg.status_boxes["done"], Qt.MouseButton.LeftButton)
    assert dlg.run_button.isEnabled() and dlg.summary.text() == "Will export 3 images: 3 done"
    dlg.reject()


def test_statuses_kept_from_before_review_give_way_to_accepted(window, qtbot, tmp_path):
    """A run without review kept "done"; once review is on the dialog opens on accepted, and a run
    with review on is what it opens with next time."""
    win = window
    store = win.project.store
    ids = _all_done(win)
    dlg = _open_export(win)
    assert _export_coco(qtbot, dlg, tmp_path / "before.json") == sorted(store.image(i).path for i in ids)
    dlg.reject()
    store.set_review_enabled(True)
    store.review_image(ids[0], True)
    dlg = _open_export(win)
    assert _ticked(dlg) == ["accepted"]
    QTest.mouseClick(dlg.status_boxes["skipped"], Qt.MouseButton.LeftButton)
    assert _export_coco(qtbot, dlg, tmp_path / "after.json") == [store.image(ids[0]).path]
    dlg.reject()
    dlg = _open_export(win)
    assert _ticked(dlg) == ["accepted", "skipped"]
    dlg.reject()


def test_with_review_off_the_export_dialog_is_as_before(window, qtbot, tmp_path):
    win = window
    store = win.project.store
    ids = _all_done(win)
    store.review_image(ids[1], True)  # an accept without review on changes nothing here
    assert not store.review_enabled()
    dlg = _open_export(win)
    assert list(dlg.status_boxes) == list(STATUSES)
    assert "accepted" not in dlg.status_boxes
    assert _ticked(dlg) == ["done"] and dlg.statuses() == ("done",)
    assert dlg.summary.text() == "Will export 3 images: 3 done"
    assert _export_coco(qtbot, dlg, tmp_path / "c.json") == sorted(store.image(i).path for i in ids)
    dlg.reject()
