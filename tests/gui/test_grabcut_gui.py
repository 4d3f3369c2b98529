"""Box → GrabCut and Clicks → object in the window on grey and 16-bit images, and what the status
bar says when GrabCut finds nothing."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from tests.gui.conftest import open_window
from tests.gui.test_window import click, drag
from tests.inference.test_grabcut_grey import blob_image, cells_image


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture
def grey_window(qtbot, tmp_path):
    d = tmp_path / "grey"
    d.mkdir()
    cells, _ = cells_image(0)
    flat = cells.copy()
    flat[:, :60] = 90  # a flat strip: nothing for GrabCut to separate there
    Image.fromarray(flat).save(d / "a_cells.png")  # 8-bit grey (L)
    blob16, _ = blob_image(np.uint16)
    Image.fromarray(blob16).save(d / "b_blob16.png")  # 16-bit grey (I;16)
    win = open_window(qtbot, d, "cell", (1000, 800))
    yield win
    if win.isVisible():
        win.close()


def open_named(win, qtbot, name):
    rec = next(r for r in win.project.store.images() if r.path == name)
    win.open_image(rec.id)
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id == rec.id, timeout=10000)


def test_box_grabcut_on_grey_em_like_image(grey_window, qtbot):
    win = grey_window
    open_named(win, qtbot, "a_cells.png")
    assert win.editor.image.ndim == 2
    _, truth = cells_image(0)
    ys, xs = np.nonzero(truth)
    win.set_tool("grabcut")
    drag(qtbot, win, [(xs.min() - 4, ys.min() - 4), (100, 100), (xs.max() + 5, ys.max() + 5)])
    doc = win.editor.doc
    qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=10000)
    r = next(iter(doc.regions.values()))
    assert iou(r.full_mask(200, 200), truth) > 0.8
    assert "found no object" not in win.statusBar().currentMessage()


def test_box_grabcut_on_16bit_uses_the_display_window(grey_window, qtbot):
    win = grey_window
    open_named(win, qtbot, "b_blob16.png")
    assert win.editor.image.dtype == np.uint16 and win.editor.window is not None
    _, truth = blob_image(np.uint16)
    ys, xs = np.nonzero(truth)
    win.set_tool("grabcut")
    drag(qtbot, win, [(xs.min() - 8, ys.min() - 8), (100, 80), (xs.max() + 9, ys.max() + 9)])
    doc = win.editor.doc
    qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=10000)
    assert iou(next(iter(doc.regions.values())).full_mask(200, 160), truth) > 0.9


def test_click_grabcut_on_grey_is_the_cell_not_a_square(grey_window, qtbot):
    win = grey_window
    open_named(win, qtbot, "a_cells.png")
    _, truth = cells_image(0)
    win.set_tool("refine")
    click(win, 100.5, 100.5)
    doc = win.editor.doc
    qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=10000)
    r = next(iter(doc.regions.values()))
    assert iou(r.full_mask(200, 200), truth) > 0.8
    assert r.mask.mean() < 0.9  # not the old filled 41x41 square


def test_nothing_found_is_said_and_stays_said(grey_window, qtbot):
    win = grey_window
    open_named(win, qtbot, "a_cells.png")
    win.set_tool("grabcut")
    drag(qtbot, win, [(10, 40), (30, 80), (50, 120)])  # inside the flat strip
    bar = win.statusBar()
    qtbot.waitUntil(lambda: "found no object" in bar.currentMessage(), timeout=10000)
    assert "single grey level" in bar.currentMessage()
    qtbot.wait(400)  # the worker's "GrabCut: done" must not replace it a moment later
    assert "found no object" in bar.currentMessage()
    assert not win.editor.doc.regions


def test_first_background_click_says_what_to_do(grey_window, qtbot):
    win = grey_window
    open_named(win, qtbot, "a_cells.png")
    win.set_tool("refine")
    click(win, 100.5, 100.5, button=Qt.MouseButton.RightButton)
    assert "left-click the object" in win.statusBar().currentMessage()
    assert not win.editor.doc.regions


def test_clicks_then_a_correcting_click_and_undo(qtbot, tmp_path):
    """Clicks → object with real clicks: a left click makes the object, a right click near its edge
    takes out only what is near it, and Ctrl+Z brings the object back as it was."""
    from PySide6.QtTest import QTest

    from tests.editing.test_click_segment import disc_image
    from tests.gui.test_window import key
    d = tmp_path / "colour"
    d.mkdir()
    img, truth = disc_image(0)
    Image.fromarray(img).save(d / "disc.png")
    win = open_window(qtbot, d, "thing", (1000, 800))
    try:
        qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
        win.set_tool("refine")
        click(win, 80.5, 60.5)
        doc = win.editor.doc
        qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=10000)
        r = next(iter(doc.regions.values()))
        first = r.full_mask(160, 120).copy()
        assert iou(first, truth) > 0.9
        click(win, 105.5, 60.5, button=Qt.MouseButton.RightButton)  # 5 px inside the disc's right edge
        qtbot.waitUntil(lambda: not np.array_equal(next(iter(doc.regions.values())).full_mask(160, 120), first),
                        timeout=10000)
        after = next(iter(doc.regions.values())).full_mask(160, 120)
        assert not after[60, 105] and after.sum() < first.sum()
        assert np.array_equal(after[:, :70], first[:, :70])  # far from the click nothing moved
        win.canvas.setFocus()
        key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        QTest.qWait(50)
        assert np.array_equal(next(iter(doc.regions.values())).full_mask(160, 120), first)
    finally:
        win.close()
