"""Effort in actions (benchmarks/_actions.py): what the simulated annotator counts per image."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _actions  # noqa: E402
import _clicks  # noqa: E402

SHAPE = (90, 120)


def scene():
    """Two bright squares on a dark, slightly noisy ground: the truth objects."""
    rng = np.random.default_rng(1)
    img = (rng.random(SHAPE + (3,)) * 40).astype(np.uint8)
    a, b = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    a[10:40, 10:45] = True
    b[50:80, 60:100] = True
    img[a] = (220, 200, 60)
    img[b] = (60, 200, 220)
    return img, [a, b]


class Nothing(_clicks.Session):
    def answer(self, clicks, previous):
        return previous


def test_a_perfect_pre_label_costs_nothing_and_a_false_object_one_deletion():
    img, truth = scene()
    extra = np.zeros(SHAPE, bool)
    extra[60:70, 5:20] = True
    grabcut = _clicks.classical_tool("grabcut")
    act = _actions.image_actions(img, "x", truth, truth, grabcut, sample=2)
    assert (act.actions, act.deletes, act.good, act.clicks) == (0, 0, 2, 0)
    act = _actions.image_actions(img, "x", truth, truth + [extra], grabcut, sample=2)
    assert act.deletes == 1 and act.actions == 1


def test_missing_objects_are_clicked_from_nothing():
    img, truth = scene()
    act = _actions.image_actions(img, "x", truth, [], _clicks.classical_tool("grabcut"), sample=2)
    assert act.deletes == 0 and act.good == 0
    assert 2 <= act.clicks <= 8 and act.strokes == 0  # a bright square: a click or few each
    assert act.per_object_mean == act.actions / 2


def test_clicks_start_from_the_pre_labels_object():
    img, truth = scene()
    start = truth[0].copy()
    start[10:40, 35:45] = False  # IoU 0.71: redrawn from here, not from nothing
    seen = []

    class Spy(_clicks.Session):
        def answer(self, clicks, previous):
            seen.append(previous.copy())
            return truth[0]

    act = _actions.image_actions(img, "x", truth[:1], [start], lambda i, k: Spy(), sample=1)
    assert act.clicks == 1 and np.array_equal(seen[0], start)


def test_what_clicks_cannot_fix_costs_strokes():
    img, truth = scene()
    act = _actions.image_actions(img, "x", truth[:1], [], lambda i, k: Nothing(), sample=1)
    assert act.clicks == 20 and act.strokes == 1 and act.actions == 21


def test_sampled_objects_scale_to_all_and_are_the_same_every_time():
    img = np.zeros(SHAPE + (3,), np.uint8)
    truth = []
    for k in range(6):
        m = np.zeros(SHAPE, bool)
        m[5 + 14 * k:15 + 14 * k, 10:30] = True
        truth.append(m)
    act = _actions.image_actions(img, "name", truth, [], lambda i, k: Nothing(), sample=2)
    assert act.sampled == 2 and act.actions == 21 * 6
    assert _actions.sample_ids("name", 6, 2) == _actions.sample_ids("name", 6, 2)
    assert _actions.sample_ids("name", 1, 5) == [0] and _actions.sample_ids("name", 0, 5) == []


def test_objects_of_class_maps():
    cm = np.zeros((20, 20), np.uint8)
    cm[2:6, 2:6] = 1
    cm[6:10, 6:10] = 1  # touches the first only at a corner: two objects (4-connected)
    cm[12:18, 2:18] = 2
    objs = _actions.truth_objects(cm, [1, 2])
    assert sorted(int(o.sum()) for o in objs) == [16, 16, 96]
    dets = _actions.predicted_detections(cm)  # the window's candidates: 8-connected per class
    assert sorted(int(d.mask.sum()) for d in dets) == [32, 96]


def test_the_model_click_takes_the_candidate_under_the_first_click():
    img, truth = scene()
    cm = np.zeros(SHAPE, np.uint8)
    cm[truth[0]] = 1
    cm[truth[1]] = 1
    dets = _actions.predicted_detections(cm)
    tool = _clicks.model_tool(lambda image: dets, lambda i, k: Nothing())
    run = _clicks.run_object(tool, "model", img, "k", truth[1].astype(np.int8), "b")
    assert run.ious == [1.0]
    runs = _actions.from_nothing({"model": tool}, img, "k", truth, 2, None, {})
    assert [r.ious for r in runs["model"]] == [[1.0], [1.0]]


def test_errors_only_in_the_unsure_band_cost_nothing():
    img, truth = scene()
    ignore = np.zeros(SHAPE, bool)
    ignore[9:41, 9:46] = True
    ignore[11:39, 11:44] = False  # a band around the first square
    start = truth[0].copy()
    start[9, 9:46] = True  # wrong only inside the band
    act = _actions.image_actions(img, "x", truth[:1], [start], lambda i, k: Nothing(), sample=1, ignore=ignore)
    assert act.good == 1 and act.actions == 0
    assert _actions.strokes(start, np.where(ignore & ~truth[0], -1, truth[0]).astype(np.int8)) == 0
