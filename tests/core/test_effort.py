import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segstudio.core.effort import count_blobs, instance_effort, semantic_effort


def test_semantic_counts_wrong_pixels_and_strokes():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:15, 5:15] = 1  # 100 px object
    pred = np.zeros_like(truth)
    pred[5:15, 5:10] = 1  # half of it found
    pred[30:32, 30:32] = 1  # a 4 px speck: wrong, but below a stroke
    e = semantic_effort(pred, truth)
    assert e.changed_pixels == 50 + 4
    assert e.changed_fraction == pytest.approx(54 / 1600)
    assert e.error_blobs == 1


def test_semantic_ignores_ignored_pixels():
    truth = np.zeros((10, 10), np.uint8)
    pred = np.ones_like(truth)
    ignore = np.zeros_like(truth, bool)
    ignore[:, :5] = True
    e = semantic_effort(pred, truth, ignore)
    assert (e.changed_pixels, e.counted_pixels) == (50, 50)
    assert e.changed_fraction == 1.0


def test_no_model_baseline_is_the_labelled_fraction():
    truth = np.zeros((20, 20), np.uint8)
    truth[:5] = 2
    e = semantic_effort(np.zeros_like(truth), truth)
    assert e.changed_fraction == pytest.approx(0.25)


def test_sizes_must_agree():
    with pytest.raises(ValueError):
        semantic_effort(np.zeros((3, 3)), np.zeros((3, 4)))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, (12, 15), elements=st.integers(0, 3)), arrays(np.uint8, (12, 15), elements=st.integers(0, 3)))
def test_semantic_effort_properties(a, b):
    e = semantic_effort(a, b)
    assert e.changed_pixels == int((a != b).sum())
    assert 0.0 <= e.changed_fraction <= 1.0
    assert semantic_effort(a, a).changed_pixels == 0
    assert e.error_blobs <= count_blobs(a != b, 1)


def test_instances_kept_added_deleted_redrawn():
    truth = np.zeros((50, 50), np.uint16)
    truth[0:10, 0:10] = 1  # found well
    truth[20:30, 0:10] = 2  # found badly (IoU 0.3)
    truth[40:50, 40:50] = 3  # missed
    pred = np.zeros_like(truth)
    pred[0:10, 0:9] = 7
    pred[20:23, 0:10] = 8
    pred[0:10, 30:40] = 9  # nothing there
    e = instance_effort(pred, {7: 1, 8: 1, 9: 1}, truth, {1: 1, 2: 1, 3: 1})
    assert (e.kept, e.add, e.delete, e.redraw) == (1, 1, 1, 1)
    assert e.actions == 3


def test_wrong_class_is_a_redraw():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:8, 2:8] = 1
    e = instance_effort(truth.copy(), {1: 2}, truth, {1: 1})
    assert (e.kept, e.redraw) == (0, 1)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, (10, 12), elements=st.integers(0, 4)), arrays(np.uint8, (10, 12), elements=st.integers(0, 4)))
def test_instance_effort_accounts_for_every_instance(p, t):
    pc = {i: 1 for i in range(1, 5)}
    e = instance_effort(p, pc, t, pc)
    n_t, n_p = len(set(t.ravel()) - {0}), len(set(p.ravel()) - {0})
    assert (e.ground_truth, e.predicted) == (n_t, n_p)
    assert e.kept + e.redraw + e.add == n_t
    assert e.kept + e.redraw + e.delete == n_p
    same = instance_effort(t, pc, t, pc)
    assert same.actions == 0 and same.kept == n_t
