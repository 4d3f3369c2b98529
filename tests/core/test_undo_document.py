import itertools

import numpy as np
import pytest

from segstudio.core import maskops
from segstudio.core.document import Document
from segstudio.core.region import Region
from segstudio.core.undo import UndoStack


def make_doc(regions=()):
    ids = itertools.count(100)
    return Document(1, 100, 80, regions, lambda: next(ids))


def square(rid, x, y, s, cls=1, z=0):
    return Region(rid, cls, np.ones((s, s), bool), x, y, z=z)


def test_stroke_is_one_undo_step_and_stores_only_its_box():
    doc = make_doc([square(1, 10, 10, 10)])
    doc.begin_stroke(1)
    for x in range(20, 40, 2):
        st, box = maskops.segment_stamp((x, 15), (x + 2, 15), 2)
        doc.stroke_paint(st, box, True)
    doc.end_stroke()
    assert len(doc.undo_stack) == 1
    step = doc.undo_stack.last_step
    assert step.label == "Brush stroke" and len(step.commands) == 1
    cmd = step.commands[0]
    assert cmd.old.shape == cmd.new.shape
    assert cmd.old.size <= 30 * 10  # the box of the stroke, not the image
    after = doc.regions[1].full_mask(100, 80)
    doc.undo()
    assert np.array_equal(doc.regions[1].full_mask(100, 80), square(1, 10, 10, 10).full_mask(100, 80))
    doc.redo()
    assert np.array_equal(doc.regions[1].full_mask(100, 80), after)


def test_erasing_everything_deletes_region_and_undo_restores():
    doc = make_doc([square(1, 10, 10, 4)])
    doc.begin_stroke(1)
    doc.stroke_paint(np.ones((10, 10), bool), (8, 8, 18, 18), False)
    doc.end_stroke("Erase")
    assert 1 not in doc.regions
    doc.undo()
    assert doc.regions[1].area == 16


def test_new_region_brush_from_empty():
    doc = make_doc()
    rid = doc.begin_new_stroke(2)
    st, box = maskops.segment_stamp((50, 50), (55, 50), 3)
    doc.stroke_paint(st, box, True)
    doc.end_stroke()
    assert doc.regions[rid].area > 0 and doc.regions[rid].class_id == 2
    assert len(doc.undo_stack) == 1
    doc.undo()
    assert rid not in doc.regions
    doc.redo()
    assert doc.regions[rid].area > 0
    # a click-and-release that paints nothing outside the image leaves no region and no step
    rid2 = doc.begin_new_stroke(2)
    doc.end_stroke()
    assert rid2 not in doc.regions and len(doc.undo_stack) == 1


def test_merge_split_fill_class_and_z():
    doc = make_doc([square(1, 0, 0, 5), square(2, 20, 20, 5, cls=2)])
    doc.merge([1, 2])
    assert list(doc.regions) == [1] and doc.regions[1].area == 50
    ids = doc.split(1)
    assert len(ids) == 2 and sum(doc.regions[i].area for i in ids) == 50
    doc.undo()
    assert list(doc.regions) == [1]
    doc.undo()
    assert set(doc.regions) == {1, 2}
    doc.set_attrs(2, class_id=3)
    assert doc.regions[2].class_id == 3
    doc.undo()
    assert doc.regions[2].class_id == 2
    doc.raise_region(1)
    assert doc.region_at(2, 2).id == 1
    ring = np.ones((9, 9), bool)
    ring[3:6, 3:6] = False
    doc.add_region(Region(5, 1, ring, 50, 50))
    doc.fill_holes(5)
    assert doc.regions[5].area == 81


def test_region_at_prefers_top_z():
    doc = make_doc([square(1, 0, 0, 10, z=0), square(2, 5, 5, 10, z=3)])
    assert doc.region_at(7, 7).id == 2
    assert doc.region_at(1, 1).id == 1
    assert doc.region_at(50, 50) is None


def test_undo_history_is_bounded_by_memory():
    stack = UndoStack(max_bytes=10_000)

    class Big:
        label = "big"
        nbytes = 3000

        def redo(self, t): pass

        def undo(self, t): pass
    for _ in range(10):
        stack.push(Big())
    assert stack.nbytes <= 10_000 and len(stack) == 3


def test_dirty_tracking_for_autosave():
    doc = make_doc([square(1, 0, 0, 5)])
    doc.set_attrs(1, class_id=4)
    doc.add_region(square(2, 30, 30, 3))
    doc.remove_region(2)
    ups, dels = doc.take_dirty()
    assert [r.id for r in ups] == [1] and dels == [2]
    assert not doc.has_unsaved


def test_change_events_carry_boxes():
    doc = make_doc([square(1, 10, 10, 5)])
    seen = []
    doc.connect(seen.append)
    doc.remove_region(1)
    assert seen[-1].kind == "removed" and seen[-1].box == (10, 10, 15, 15)


def test_connect_once_and_disconnect():
    doc = make_doc([square(1, 10, 10, 5), square(2, 40, 40, 5)])
    seen = []
    doc.connect(seen.append)
    doc.connect(seen.append)  # connected twice: still called once
    doc.remove_region(1)
    assert len(seen) == 1
    doc.disconnect(seen.append)
    doc.disconnect(seen.append)  # not connected any more: nothing happens
    doc.remove_region(2)
    assert len(seen) == 1


def test_stroke_target_is_public():
    doc = make_doc([square(1, 0, 0, 5)])
    assert doc.stroke_region_id is None and not doc.stroke_is_new
    doc.begin_stroke(1)
    assert doc.stroke_region_id == 1 and not doc.stroke_is_new
    doc.end_stroke()
    rid = doc.begin_new_stroke(2)
    assert doc.stroke_region_id == rid and doc.stroke_is_new
    doc.cancel_stroke()
    assert doc.stroke_region_id is None and not doc.stroke_is_new


def test_failed_group_is_rolled_back():
    doc = make_doc([square(1, 0, 0, 5)])
    with pytest.raises(RuntimeError):
        with doc.group("x"):
            doc.set_attrs(1, class_id=9)
            raise RuntimeError("boom")
    assert doc.regions[1].class_id == 1 and not doc.undo_stack.can_undo
