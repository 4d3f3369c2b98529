"""The one drag-a-box logic (editing/box_drag.py) and the three tools that take a box through it:
Box → GrabCut, the Model click / box tool, Segment Anything's box prompt. No Qt."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segstudio.core.document import Document
from segstudio.editing import classical
from segstudio.editing.assist_tools import BoxGrabCutTool, PromptTool
from segstudio.editing.box_drag import BoxDrag, pixel_box
from segstudio.editing.editor import INSTANCES, PROMPTABLE, EditorState
from segstudio.editing.tools import Pointer


def test_a_drag_gives_the_pixels_from_the_one_under_the_press_to_the_one_under_the_release():
    d = BoxDrag(4)
    assert not d.active and d.rect() is None
    d.press(10.5, 20.5)
    assert d.active and d.rect() == (10.5, 20.5, 10.5, 20.5)
    assert d.move(30.2, 41.7)
    assert d.rect() == (10.5, 20.5, 30.2, 41.7)  # drawn pointer to pointer while it goes
    assert d.release(30.2, 41.7) == (10, 20, 31, 42)  # x1, y1 exclusive: pixel 30 and row 41 are in
    assert not d.active and d.rect() is None


def test_right_to_left_and_bottom_to_top_give_the_same_box():
    d = BoxDrag(4)
    d.press(30.2, 41.7)
    d.move(20.0, 30.0)
    assert d.rect() == (20.0, 30.0, 30.2, 41.7)
    assert d.release(10.5, 20.5) == (10, 20, 31, 42)
    d.press(30.2, 20.5)  # right to left only
    assert d.release(10.5, 41.7) == (10, 20, 31, 42)
    d.press(10.5, 41.7)  # bottom to top only
    assert d.release(30.2, 20.5) == (10, 20, 31, 42)


def test_a_click_or_a_drag_shorter_than_the_minimum_either_way_is_no_box():
    d = BoxDrag(4)
    d.press(50, 50)
    assert d.release(50, 50) is None  # a click
    d.press(50, 50)
    d.move(52, 80)
    assert d.release(53.9, 80) is None  # tall but too narrow
    d.press(50, 50)
    assert d.release(10, 48) is None  # wide (leftwards) but too flat
    d.press(50, 50)
    assert d.release(46, 54) == (46, 50, 51, 55)  # the minimum each way is a box


def test_no_drag_under_way_moves_nothing_and_releases_nothing():
    d = BoxDrag(3)
    assert not d.move(5, 5) and d.rect() is None
    assert d.release(40, 40) is None
    d.press(0, 0)
    d.move(20, 20)
    d.cancel()
    assert not d.active and d.rect() is None and d.release(20, 20) is None


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_minimum_that_is_not_a_positive_length_is_refused(bad):
    with pytest.raises(ValueError, match="positive length"):
        BoxDrag(bad)


@given(st.tuples(st.floats(-50, 500), st.floats(-50, 500)), st.tuples(st.floats(-50, 500), st.floats(-50, 500)))
def test_the_box_holds_both_end_pixels_whichever_way_it_was_dragged(a, b):
    box = pixel_box(a, b)
    assert box == pixel_box(b, a) == pixel_box((a[0], b[1]), (b[0], a[1]))
    x0, y0, x1, y1 = box
    for x, y in (a, b):
        assert x0 <= np.floor(x) < x1 and y0 <= np.floor(y) < y1
    assert x1 - x0 == np.floor(max(a[0], b[0])) - np.floor(min(a[0], b[0])) + 1  # nothing more


# ---------------------------------------------------------------- the tools that take a box


class Answering(EditorState):
    """An editor with a model: records the box each tool hands on."""

    def __init__(self, answer):
        super().__init__()
        ids = itertools.count(1000)
        self.doc = Document(1, 120, 100, (), lambda: next(ids))
        self.image = np.zeros((100, 120, 3), np.uint8)
        self.current_class_id = 1
        self.answer, self.prompts, self.previews = answer, [], 0

    def model_loaded(self):
        return True

    def click_answer(self):
        return self.answer

    def model_candidates(self):
        return []

    def prompt_model(self, points, box, done):
        self.prompts.append((list(points), box))
        done(None)

    def preview_changed(self):
        self.previews += 1


def drag(tool, a, b):
    tool.press(Pointer(*a))
    tool.move(Pointer(*b), True)
    shown = tool.preview().get("rect")
    tool.release(Pointer(*b))
    return shown


def test_grabcut_takes_the_dragged_box_whichever_way(monkeypatch):
    boxes = []
    monkeypatch.setattr(classical, "grabcut_box", lambda img, box, window=None: boxes.append(box))
    ed = Answering(None)
    tool = BoxGrabCutTool(ed)
    assert drag(tool, (90.5, 80.5), (30.5, 20.5)) == (30.5, 20.5, 90.5, 80.5)
    assert boxes == [(30, 20, 91, 81)] and tool.preview() == {}
    drag(tool, (30.5, 20.5), (31.5, 60.5))  # one pixel wide: no box, GrabCut is not asked
    assert len(boxes) == 1


def test_the_model_box_tool_takes_a_box_or_a_click(monkeypatch):
    ed = Answering(INSTANCES)
    tool = PromptTool(ed)
    seen = []
    monkeypatch.setattr(tool, "answer", lambda box, p: seen.append((box, (p.x, p.y))))
    assert drag(tool, (80, 70), (50, 40)) == (50, 40, 80, 70)
    tool.press(Pointer(7, 7))
    tool.release(Pointer(8, 9))  # shorter than the minimum: a click where it was let go
    assert seen == [((50, 40, 81, 71), (50, 40)), (None, (8, 9))]
    assert tool.preview() == {}


def test_segment_anything_takes_the_same_box():
    ed = Answering(PROMPTABLE)
    tool = PromptTool(ed)
    assert drag(tool, (80, 70), (50, 40)) == (50, 40, 80, 70)
    assert ed.prompts == [([], (50, 40, 81, 71))]
    assert tool.preview() == {"rect": (50, 40, 81, 71)}  # the box prompt stays drawn
    tool.key("Escape")
    tool.press(Pointer(60.5, 50.5))
    tool.release(Pointer(61.5, 50.5))  # a click: a positive point, no box
    assert ed.prompts[-1] == ([(61.5, 50.5, True)], None)
