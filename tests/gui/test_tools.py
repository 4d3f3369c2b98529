"""Tool logic without a window: pointer events in, document changes out."""

import itertools

import cv2
import numpy as np

from segstudio.core.document import Document
from segstudio.core.region import Region
from segstudio.editing.editor import EditorState
from segstudio.editing.assist_tools import BoxGrabCutTool, ClickObjectTool, WatershedTool
from segstudio.editing.tools import BrushTool, EraserTool, LassoTool, Pointer, PolygonTool, SelectTool, WandTool


def editor(image=None, regions=()):
    ed = EditorState()
    if image is None:
        image = np.zeros((100, 120, 3), np.uint8)
    ids = itertools.count(1000)
    ed.doc = Document(1, image.shape[1], image.shape[0], regions, lambda: next(ids))
    ed.image = image
    ed.current_class_id = 1
    return ed


def drag(tool, pts, **mods):
    tool.press(Pointer(*pts[0], **mods))
    for p in pts[1:]:
        tool.move(Pointer(*p, **mods), True)
    tool.release(Pointer(*pts[-1], **mods))


def test_brush_stroke_new_region_and_undo():
    ed = editor()
    t = BrushTool(ed)
    ed.brush_radius = 3
    drag(t, [(10.5, 10.5), (30.5, 10.5), (30.5, 40.5)])
    assert len(ed.doc.regions) == 1
    r = next(iter(ed.doc.regions.values()))
    assert r.class_id == 1 and r.contains(20, 10) and r.contains(30, 25)
    assert ed.selected == [r.id]
    assert len(ed.doc.undo_stack) == 1
    drag(t, [(50.5, 50.5), (52.5, 50.5)])  # selected region, same class: paints into it
    assert len(ed.doc.regions) == 1 and r.contains(51, 50)
    ed.doc.undo()
    assert not ed.doc.regions[r.id].contains(51, 50)
    ed.doc.undo()
    assert not ed.doc.regions


def test_brush_of_other_class_makes_new_region():
    ed = editor(regions=[Region(1, 1, np.ones((5, 5), bool), 0, 0)])
    ed.select([1])
    ed.current_class_id = 2
    drag(BrushTool(ed), [(50.5, 50.5), (55.5, 50.5)])
    assert len(ed.doc.regions) == 2 and ed.doc.regions[ed.primary].class_id == 2


def test_eraser_and_ctrl_brush():
    ed = editor(regions=[Region(1, 1, np.ones((20, 20), bool), 10, 10)])
    ed.brush_radius = 2
    drag(EraserTool(ed), [(15.5, 15.5), (25.5, 15.5)])
    assert not ed.doc.regions[1].contains(20, 15) and ed.doc.regions[1].contains(20, 25)
    ed.select([1])
    drag(BrushTool(ed), [(20.5, 25.5)], ctrl=True)
    assert not ed.doc.regions[1].contains(20, 25)


def test_select_and_shift_select():
    ed = editor(regions=[Region(1, 1, np.ones((5, 5), bool), 0, 0), Region(2, 2, np.ones((5, 5), bool), 20, 20)])
    t = SelectTool(ed)
    t.press(Pointer(2.5, 2.5))
    assert ed.selected == [1]
    t.press(Pointer(22.5, 22.5, shift=True))
    assert ed.selected == [1, 2]
    t.press(Pointer(60, 60))
    assert ed.selected == []


def test_polygon_enter_double_click_escape():
    ed = editor()
    t = PolygonTool(ed)
    for x, y in [(10.5, 10.5), (40.5, 10.5), (40.5, 30.5)]:
        t.press(Pointer(x, y))
    assert t.key("Return")
    r = ed.doc.regions[ed.primary]
    assert r.contains(35, 15) and not r.contains(12, 28)
    for x, y in [(60.5, 60.5), (70.5, 60.5)]:
        t.press(Pointer(x, y))
    assert t.key("Escape") and len(ed.doc.regions) == 1
    for x, y in [(60.5, 60.5), (70.5, 60.5), (70.5, 70.5)]:
        t.press(Pointer(x, y))
    t.press(Pointer(70.5, 70.5, double=True))
    assert len(ed.doc.regions) == 2


def test_polygon_shift_adds_ctrl_cuts():
    ed = editor(regions=[Region(1, 1, np.ones((20, 20), bool), 10, 10)])
    ed.select([1])
    t = PolygonTool(ed)
    for x, y in [(25.5, 12.5), (45.5, 12.5), (45.5, 20.5), (25.5, 20.5)]:
        t.press(Pointer(x, y, shift=True))
    t.key("Enter")
    assert ed.doc.regions[1].contains(40, 15) and len(ed.doc.regions) == 1
    for x, y in [(10.5, 10.5), (15.5, 10.5), (15.5, 15.5), (10.5, 15.5)]:
        t.press(Pointer(x, y, ctrl=True))
    t.key("Enter")
    assert not ed.doc.regions[1].contains(12, 12)


def test_lasso():
    ed = editor()
    pts = [(50 + 20 * np.cos(a) + 0.5, 50 + 20 * np.sin(a) + 0.5) for a in np.linspace(0, 2 * np.pi, 40)]
    drag(LassoTool(ed), pts)
    r = ed.doc.regions[ed.primary]
    assert r.contains(50, 50) and abs(r.area - np.pi * 400) < 150


def _disc_image(value=200, bg=30, dtype=np.uint8, scale=1):
    img = np.full((100, 120), bg, np.float64)
    cv2.circle(img, (60, 50), 20, value, -1)
    rng = np.random.default_rng(0)
    img += rng.normal(0, 3, img.shape)
    return (img * scale).clip(0, np.iinfo(dtype).max).astype(dtype)


def test_magic_wand_8_and_16_bit():
    ed = editor(image=_disc_image())
    WandTool(ed).press(Pointer(60.5, 50.5))
    r = ed.doc.regions[ed.primary]
    assert abs(r.area - np.pi * 400) < 120
    ed16 = editor(image=_disc_image(dtype=np.uint16, scale=200))
    ed16.window = (0, 65535)
    WandTool(ed16).press(Pointer(60.5, 50.5))
    assert abs(ed16.doc.regions[ed16.primary].area - np.pi * 400) < 120


def _object_image():
    img = np.zeros((100, 120, 3), np.uint8)
    img[:] = (40, 120, 40)
    cv2.circle(img, (60, 50), 22, (220, 60, 60), -1)
    rng = np.random.default_rng(1)
    return (img + rng.integers(0, 12, img.shape)).astype(np.uint8)


def test_box_grabcut():
    ed = editor(image=_object_image())
    drag(BoxGrabCutTool(ed), [(30.5, 20.5), (90.5, 80.5)])
    r = ed.doc.regions[ed.primary]
    truth = np.zeros((100, 120), np.uint8)
    cv2.circle(truth, (60, 50), 22, 1, -1)
    inter = (r.full_mask(120, 100) & truth.astype(bool)).sum()
    union = (r.full_mask(120, 100) | truth.astype(bool)).sum()
    assert inter / union > 0.9


def test_click_grabcut_positive_then_negative():
    ed = editor(image=_object_image())
    t = ClickObjectTool(ed)
    t.press(Pointer(60.5, 50.5))
    rid = ed.primary
    assert rid is not None and ed.doc.regions[rid].contains(60, 50)
    truth = np.zeros((100, 120), np.uint8)
    cv2.circle(truth, (60, 50), 22, 1, -1)
    full = ed.doc.regions[rid].full_mask(120, 100)
    assert (full & truth.astype(bool)).sum() / (full | truth.astype(bool)).sum() > 0.9  # one click: the disc
    t.press(Pointer(10.5, 10.5, button="right"))
    assert not ed.doc.regions[rid].contains(10, 10)
    assert len(ed.doc.undo_stack) == 1  # that background was already out: nothing changed, no step


def test_watershed_split():
    img = np.full((60, 100), 20, np.uint8)
    cv2.circle(img, (35, 30), 15, 200, -1)
    cv2.circle(img, (62, 30), 15, 200, -1)
    mask = img > 100
    ed = editor(image=img, regions=[Region(1, 1, mask.copy(), 0, 0)])
    ed.select([1])
    t = WatershedTool(ed)
    t.press(Pointer(35.5, 30.5))
    t.press(Pointer(62.5, 30.5))
    t.key("Return")
    assert len(ed.doc.regions) == 2
    assert sum(r.area for r in ed.doc.regions.values()) == mask.sum()
    ed.doc.undo()
    assert len(ed.doc.regions) == 1


def test_no_class_gives_message():
    ed = editor()
    ed.current_class_id = None
    msgs = []
    ed.message = msgs.append
    drag(BrushTool(ed), [(10, 10)])
    assert not ed.doc.regions and msgs
