"""The canvas as a person drives it: real wheel, pinch, key and mouse events on the viewport.

Zoom keeps the pixel under the cursor (wheel, pinch) or the view centre (+/-) in place; the
eraser takes what it passes over; tools forget their seeds when the image, the history or the
tool changes; an action that cannot do what was asked says why in the status bar.
"""

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QNativeGestureEvent, QPointingDevice, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segstudio.core.document import Document
from segstudio.core.region import Region
from segstudio.editing.editor import EditorState
from segstudio.editing.tools import EraserTool, Pointer

NO = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


# ------------------------------------------------------------------ helpers
def vpoint(win, x, y) -> QPoint:
    return win.canvas.mapFromScene(QPointF(x, y))


def scene_at(win, pos: QPoint) -> QPointF:
    return win.canvas.mapToScene(pos)


def wheel(win, pos: QPoint, dy=120):
    vp = win.canvas.viewport()
    ev = QWheelEvent(QPointF(pos), QPointF(vp.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, dy),
                     Qt.MouseButton.NoButton, NO, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def pinch(win, pos: QPoint, value: float, target=None):
    target = target or win.canvas.viewport()
    dev = QPointingDevice.primaryPointingDevice()
    g = QPointF(target.mapToGlobal(pos))
    for kind, v in ((Qt.NativeGestureType.BeginNativeGesture, 0.0), (Qt.NativeGestureType.ZoomNativeGesture, value),
                    (Qt.NativeGestureType.EndNativeGesture, 0.0)):
        ev = QNativeGestureEvent(kind, dev, 2, QPointF(pos), QPointF(pos), g, v, QPointF(0, 0))
        QApplication.sendEvent(target, ev)


def drag(win, pts, mods=NO, button=LEFT):
    vp = win.canvas.viewport()
    QTest.mousePress(vp, button, mods, vpoint(win, *pts[0]))
    for p in pts[1:]:
        QTest.mouseMove(vp, vpoint(win, *p))
    QTest.mouseRelease(vp, button, mods, vpoint(win, *pts[-1]))


def click(win, x, y, button=LEFT, mods=NO):
    QTest.mouseClick(win.canvas.viewport(), button, mods, vpoint(win, x, y))


def message(win) -> str:
    return win.statusBar().currentMessage()


def image_covers_centre(win) -> bool:
    c = win.canvas.to_scene(win.canvas.view_center())
    w, h = win.canvas.image_item.size
    return 0 <= c.x() < w and 0 <= c.y() < h


def near(a: QPointF, b: QPointF, tol=1.0) -> bool:
    return abs(a.x() - b.x()) <= tol and abs(a.y() - b.y()) <= tol


# ------------------------------------------------------------------ 1. zoom keeps its anchor
@pytest.mark.parametrize("pixel", [(30.5, 25.5), (130.5, 95.5), (80.5, 60.5)])
def test_wheel_zoom_keeps_the_pixel_under_the_cursor(window, pixel):
    win = window
    win.canvas.fit()
    pos = vpoint(win, *pixel)
    QTest.mouseMove(win.canvas.viewport(), pos)  # what a person does before the wheel
    before, z0 = scene_at(win, pos), win.canvas.zoom
    wheel(win, pos)
    wheel(win, pos)
    assert win.canvas.zoom > z0 * 1.3
    assert near(scene_at(win, pos), before), (scene_at(win, pos), before)
    assert image_covers_centre(win)
    assert win.readout.zoom_label.text() == f"{win.canvas.zoom * 100:.0f}%"
    wheel(win, pos, -120)  # and back out about the same pixel
    assert near(scene_at(win, pos), before)


def test_wheel_zoom_without_a_mouse_move_first(window):
    win = window
    win.canvas.fit()
    pos = vpoint(win, 40.5, 90.5)
    before, z0 = scene_at(win, pos), win.canvas.zoom
    for _ in range(6):
        wheel(win, pos)
    assert win.canvas.zoom > 2.5 * z0
    assert near(scene_at(win, pos), before)


def test_pinch_zooms_about_the_fingers(window):
    win = window
    win.canvas.fit()
    pos = vpoint(win, 120.5, 30.5)
    before, z0 = scene_at(win, pos), win.canvas.zoom
    pinch(win, pos, 0.3)
    pinch(win, pos, 0.3)
    assert win.canvas.zoom == pytest.approx(z0 * 1.3 * 1.3, rel=1e-3)
    assert near(scene_at(win, pos), before)
    assert image_covers_centre(win)
    # a gesture that reaches the view itself (not its viewport) is placed the same way
    on_view = win.canvas.viewport().mapTo(win.canvas, pos)
    pinch(win, on_view, 0.2, target=win.canvas)
    assert near(scene_at(win, pos), before)


def test_plus_and_minus_zoom_about_the_view_centre(window):
    win = window
    win.canvas.fit()
    win.canvas.setFocus()
    centre = win.canvas.to_scene(win.canvas.view_center())
    z0 = win.canvas.zoom
    QTest.keyClick(win.canvas, Qt.Key.Key_Plus)
    QTest.keyClick(win.canvas.viewport(), Qt.Key.Key_Equal)  # the unshifted + key
    assert win.canvas.zoom == pytest.approx(z0 * 1.25 * 1.25, rel=1e-3)
    assert near(win.canvas.to_scene(win.canvas.view_center()), centre)
    QTest.keyClick(win.canvas, Qt.Key.Key_Minus)
    assert win.canvas.zoom == pytest.approx(z0 * 1.25, rel=1e-3)
    assert near(win.canvas.to_scene(win.canvas.view_center()), centre)
    assert image_covers_centre(win)


def test_zoom_to_the_limit_then_wheel_and_painting_still_lands_under_the_cursor(window):
    win = window
    win.canvas.fit()
    pos = vpoint(win, 100.5, 40.5)
    for _ in range(40):  # far past the 64x limit: clamps, the pixel stays put
        wheel(win, pos)
    assert win.canvas.zoom == pytest.approx(64.0)
    assert near(scene_at(win, pos), QPointF(100.5, 40.5), 0.5)
    win.set_tool("brush")
    win.brush_spin.setValue(1)
    QTest.mouseClick(win.canvas.viewport(), LEFT, NO, pos)
    r = next(iter(win.editor.doc.regions.values()))
    assert r.contains(100, 40)


# ------------------------------------------------------------------ 2. the eraser
def _two_regions(win):
    """Two regions of different classes, side by side, plus a hidden one."""
    doc = win.editor.doc
    c2 = win.project.store.add_class("other")
    win.classes_changed()
    a = doc.new_region(win.editor.current_class_id, np.ones((30, 30), bool), 20, 20)
    b = doc.new_region(c2.id, np.ones((30, 30), bool), 60, 20)
    return doc, a, b


def test_eraser_erases_every_region_it_passes_over_starting_on_background(window):
    win = window
    doc, a, b = _two_regions(win)
    win.set_tool("eraser")
    win.brush_spin.setValue(3)
    steps = len(doc.undo_stack)
    area_a, area_b = a.area, b.area
    drag(win, [(5.5, 35.5), (30.5, 35.5), (55.5, 35.5), (80.5, 35.5), (110.5, 35.5)])  # starts on background
    assert not a.contains(25, 35) and not b.contains(75, 35)
    assert a.contains(25, 25) and b.contains(75, 25)
    assert a.area < area_a and b.area < area_b
    assert len(doc.undo_stack) == steps + 1  # one stroke, one step
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.regions[a.id].area == area_a and doc.regions[b.id].area == area_b
    QTest.keyClick(win.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert doc.regions[a.id].area < area_a and doc.regions[b.id].area < area_b


def test_shift_eraser_takes_only_the_selected_region(window):
    win = window
    doc, a, b = _two_regions(win)
    win.editor.select([a.id])
    win.set_tool("eraser")
    win.brush_spin.setValue(3)
    area_b = b.area
    drag(win, [(25.5, 35.5), (80.5, 35.5)], mods=Qt.KeyboardModifier.ShiftModifier)
    assert not a.contains(35, 35)
    assert b.area == area_b


def test_shift_eraser_with_no_selection_says_so(window):
    win = window
    doc, a, b = _two_regions(win)
    win.editor.select([])
    win.set_tool("eraser")
    steps, area_a = len(doc.undo_stack), a.area
    drag(win, [(25.5, 35.5), (80.5, 35.5)], mods=Qt.KeyboardModifier.ShiftModifier)
    assert a.area == area_a and len(doc.undo_stack) == steps
    assert "none is selected" in message(win)


def test_eraser_over_background_says_nothing_was_erased(window):
    win = window
    doc, a, b = _two_regions(win)
    win.set_tool("eraser")
    steps = len(doc.undo_stack)
    drag(win, [(5.5, 100.5), (150.5, 100.5)])
    assert len(doc.undo_stack) == steps
    assert "Nothing erased" in message(win)


def test_eraser_keeps_hidden_classes_and_deletes_emptied_regions(window):
    win = window
    doc, a, b = _two_regions(win)
    win.editor.hidden_classes = {b.class_id}
    win.set_tool("eraser")
    win.brush_spin.setValue(40)
    area_b = b.area
    drag(win, [(35.5, 35.5), (75.5, 35.5)])
    assert a.id not in doc.regions  # erased away entirely: the region is gone
    assert doc.regions[b.id].area == area_b  # hidden: untouched
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.regions[a.id].area == 900


def test_eraser_stroke_is_proportional_to_the_brush_not_the_image():
    ids = itertools.count(1)
    big = Region(next(ids), 1, np.ones((4000, 4000), bool), 0, 0)
    other = Region(next(ids), 2, np.ones((100, 100), bool), 2000, 2000)
    ed = EditorState()
    ed.doc = Document(1, 4000, 4000, [big, other], lambda: next(ids))
    ed.image = np.zeros((4000, 4000), np.uint8)
    ed.brush_radius = 5
    t = EraserTool(ed)
    pts = [(1990.5, 2050.5), (2050.5, 2050.5), (2110.5, 2050.5)]
    t.press(Pointer(*pts[0]))
    for p in pts[1:]:
        t.move(Pointer(*p), True)
    t.release(Pointer(*pts[-1]))
    step = ed.doc.undo_stack.last_step
    assert step.nbytes < 20_000  # two regions x (old + new) of a ~130 x 12 px window
    assert not ed.doc.regions[1].contains(2050, 2050) and not ed.doc.regions[2].contains(2050, 2050)
    ed.doc.undo()
    assert ed.doc.regions[1].area == 4000 * 4000 and ed.doc.regions[2].area == 100 * 100


def test_eraser_cancelled_mid_stroke_puts_everything_back():
    ids = itertools.count(1)
    regs = [Region(next(ids), 1, np.ones((10, 10), bool), 10 * i, 0) for i in range(4)]
    ed = EditorState()
    ed.doc = Document(1, 60, 20, regs, lambda: next(ids))
    ed.brush_radius = 3
    t = EraserTool(ed)
    t.press(Pointer(0.5, 5.5))
    t.move(Pointer(39.5, 5.5), True)
    assert ed.doc.regions[2].area < 100 and ed.doc.stroking
    ed.undo()  # undo during a drag drops the drag
    assert all(r.area == 100 for r in ed.doc.regions.values()) and not ed.doc.stroking
    t.release(Pointer(39.5, 5.5))
    assert len(ed.doc.undo_stack) == 0


# ------------------------------------------------------------------ 3. seeds and previews
def test_grabcut_seeds_go_with_undo_and_with_the_image(window, qtbot):
    win = window
    win.set_tool("refine")
    tool = win.tools["refine"]
    click(win, 80, 60)
    assert win.canvas.preview.shapes.get("points")
    doc = win.editor.doc
    qtbot.waitUntil(lambda: len(doc.regions) == 1, timeout=15000)
    QTest.keyClick(win.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.regions
    assert not tool.positive and not tool.negative
    assert win.canvas.preview.shapes == {}
    # seeds on one image never show on the next
    click(win, 20, 20, button=Qt.MouseButton.RightButton)
    assert win.canvas.preview.shapes.get("points")
    first = doc.image_id
    win.step_image(1)
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    assert not tool.positive and not tool.negative
    assert win.canvas.preview.shapes == {}


def test_tool_change_and_redo_clear_previews(window, qtbot):
    win = window
    win.set_tool("polygon")
    click(win, 10, 10)
    click(win, 50, 10)
    assert win.canvas.preview.shapes.get("poly")
    win.set_tool("watershed")
    assert not win.tools["polygon"].points and win.canvas.preview.shapes == {}
    # watershed seeds, then redo: gone too
    win.set_tool("brush")
    drag(win, [(70.5, 60.5), (90.5, 60.5)])
    win.undo()
    win.set_tool("watershed")
    win.editor.select([])
    drag(win, [(20.5, 20.5), (40.5, 20.5)])  # no region here: says so, plants nothing
    assert "Select the region to split first" in message(win)
    win.redo()
    rid = next(iter(win.editor.doc.regions))
    win.editor.select([rid])
    click(win, 72, 60)
    assert win.canvas.preview.shapes.get("points")
    win.undo()
    assert not win.tools["watershed"].seeds and win.canvas.preview.shapes == {}


# ------------------------------------------------------------------ 4. say why, never nothing
def test_model_box_with_a_unet_says_why(window, monkeypatch):
    win = window
    monkeypatch.setattr(win.model_dock, "info", {"arch": "unet", "name": "unet-test", "classes": ["bg", "cell"],
                                                 "device": "cpu"})
    asked = []
    monkeypatch.setattr(win.model_dock, "request_candidates", lambda *a: asked.append(a))
    win.set_tool("prompt")
    drag(win, [(40.5, 30.5), (90.5, 60.5), (120.5, 90.5)])
    assert "A UNet labels classes, not boxes" in message(win)
    assert not win.editor.doc.regions and not asked
    assert win.canvas.preview.shapes == {}


def test_a_failed_model_request_clears_asking_and_asks_again(window, monkeypatch):
    win = window
    monkeypatch.setattr(win.model_dock, "info", {"arch": "maskrcnn", "name": "mrcnn-test", "classes": ["cell"],
                                                 "device": "cpu"})
    asked = []

    def fail(image_id, array):  # the worker's failure path, as a model that raises takes it
        asked.append(image_id)
        assert message(win) == "Asking the model…"
        win.model_dock.worker.image_failed.emit(image_id, "out of memory")

    monkeypatch.setattr(win.model_dock.worker, "predict_image", fail)
    win.set_tool("prompt")
    click(win, 80, 60)
    assert len(asked) == 1
    assert "Asking the model" not in message(win) and "out of memory" in message(win)
    click(win, 80, 60)  # not left waiting for an answer that never comes: it asks again
    assert len(asked) == 2 and not win.editor.doc.regions


def test_ctrl_shape_with_nothing_selected_says_why(window):
    win = window
    win.set_tool("polygon")
    for x, y in [(10, 10), (50, 10), (50, 40)]:
        click(win, x, y, mods=Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(win.canvas, Qt.Key.Key_Return)
    assert not win.editor.doc.regions
    assert "none is selected" in message(win)


def test_right_click_a_tool_does_not_use_says_what_it_does(window):
    win = window
    win.set_tool("brush")
    click(win, 30, 30, button=Qt.MouseButton.RightButton)
    assert "Right button" in message(win) and "Ctrl+drag erases" in message(win)


# ------------------------------------------------------------------ 5. hints
def test_every_tool_shows_its_hint_when_chosen(window):
    win = window
    for name, tool in win.tools.items():
        assert tool.hint and "\n" not in tool.hint, name
        win.set_tool(name)
        assert message(win) == tool.hint
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_E)  # the shortcut goes through the same path
    assert win.canvas.tool is win.tools["eraser"] and message(win) == win.tools["eraser"].hint
    assert "Shift" in win.tools["eraser"].tip and "Shift" in win.tools["eraser"].hint
