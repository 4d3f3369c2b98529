"""carry(): one propagation step. Textured objects on a textured background, moved by a known
amount, so the right answer is known exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstudio.editing.propagate import CONFIDENCE_STOP, DEFAULT_METHOD, METHODS, Carried, carry

CLASSICAL = [m for m in METHODS if m != "flow+refine"]


def texture(shape, seed, scale=2.0, mean=120.0, contrast=40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), scale)
    t = t / max(float(t.std()), 1e-6) + rng.normal(0, 0.3, shape).astype(np.float32)
    return np.clip(mean + contrast * t, 0, 255).astype(np.float32)


def scene(shape=(90, 110), centre=(40.0, 45.0), angle=0.0, seed=0, colour=True):
    """A textured ellipse (its own texture moves with it) over a textured background."""
    h, w = shape
    bg = texture(shape, seed + 100, 4.0, 110.0, 30.0)
    side = 40
    obj = np.zeros((side, side), np.uint8)
    cv2.ellipse(obj, (20, 20), (16, 10), 0, 0, 360, 1, -1)
    tex = texture((side, side), seed + 7, 1.5, 200.0, 35.0)
    m = cv2.getRotationMatrix2D((20.0, 20.0), angle, 1.0)
    m[:, 2] += (centre[0] - 20.0, centre[1] - 20.0)
    mask = cv2.warpAffine(obj, m, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
    img = bg.copy()
    img[mask] = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR)[mask]
    if colour:
        img = np.dstack([img, img * 0.7 + 30 * mask, img * 0.5 + 60 * ~mask])
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("method", sorted({DEFAULT_METHOD, "flow+grabcut", "flow+watershed"}))
def test_a_moved_and_turned_object_is_carried_with_its_track(method):
    a, ma = scene(centre=(40.0, 45.0), angle=0.0)
    b, mb = scene(centre=(46.0, 48.0), angle=6.0)
    out = carry(a, b, [(7, 3, ma)], method=method)
    assert len(out) == 1 and isinstance(out[0], Carried)
    c = out[0]
    assert (c.track, c.class_id) == (7, 3)
    assert c.mask.shape == ma.shape and c.mask.dtype == bool
    assert iou(c.mask, mb) > 0.9, iou(c.mask, mb)
    assert iou(ma, mb) < 0.75  # the move is large enough that copying would not do
    assert 0.0 <= c.confidence <= 1.0 and c.confidence >= CONFIDENCE_STOP


def test_gray_16_bit_frames_are_carried():
    a, ma = scene(colour=False)
    b, mb = scene(centre=(45.0, 49.0), angle=4.0, colour=False)
    a16, b16 = a.astype(np.uint16) * 200 + 1000, b.astype(np.uint16) * 200 + 1000
    out = carry(a16, b16, [(1, 1, ma)])
    assert len(out) == 1 and iou(out[0].mask, mb) > 0.9


def test_an_object_that_left_the_frame_is_dropped():
    w = 110
    bg = texture((90, w + 60), 3, 4.0, 110.0, 30.0)
    obj = texture((20, 20), 4, 1.5, 210.0, 30.0)
    a = bg[:, :w].copy()
    a[30:50, w - 22:w - 2] = obj
    b = bg[:, :w].copy()  # the object moved on, 30 px to the right: off the frame
    ma = np.zeros((90, w), bool)
    ma[30:50, w - 22:w - 2] = True
    stay = np.zeros((90, w), bool)
    stay[10:25, 10:30] = True  # a piece of background that stays where it is
    a8, b8 = np.rint(a).astype(np.uint8), np.rint(b).astype(np.uint8)
    out = carry(a8, b8, [(1, 1, ma), (2, 1, stay)], method="flow")
    assert [c.track for c in out] == [2]


def test_an_object_with_an_empty_mask_is_left_out():
    a, ma = scene()
    out = carry(a, a, [(1, 1, np.zeros_like(ma)), (2, 1, ma)])
    assert [c.track for c in out] == [2]


def test_a_wrong_carry_has_lower_confidence_than_a_right_one():
    a, ma = scene(seed=1)
    right, _ = scene(centre=(43.0, 46.0), angle=3.0, seed=1)
    wrong = np.clip(np.rint(texture(a.shape[:2], 99, 1.0, 128.0, 60.0)), 0, 255).astype(np.uint8)
    wrong = np.dstack([wrong, wrong[::-1], wrong[:, ::-1]])  # another picture altogether
    for method in (DEFAULT_METHOD, "flow"):
        good = carry(a, right, [(1, 1, ma)], method=method)
        bad = carry(a, wrong, [(1, 1, ma)], method=method)
        assert good and good[0].confidence >= CONFIDENCE_STOP
        assert not bad or bad[0].confidence < good[0].confidence - 0.2, (method, bad[0].confidence, good[0].confidence)


def test_no_objects_give_nothing():
    a, _ = scene()
    assert carry(a, a, []) == []


def test_frames_of_different_sizes_are_refused_clearly():
    a, ma = scene()
    b, _ = scene(shape=(80, 110))
    with pytest.raises(ValueError, match="different sizes"):
        carry(a, b, [(1, 1, ma)])


def test_a_mask_of_another_size_is_refused_clearly():
    a, ma = scene()
    with pytest.raises(ValueError, match="object 5"):
        carry(a, a, [(5, 1, ma[:-1])])


def test_an_unknown_method_or_a_missing_refiner_is_refused():
    a, ma = scene()
    with pytest.raises(ValueError, match="unknown propagation method"):
        carry(a, a, [(1, 1, ma)], method="magic")
    with pytest.raises(ValueError, match="refine"):
        carry(a, a, [(1, 1, ma)], method="flow+refine")


def test_a_refine_function_answers_for_each_object():
    a, ma = scene()
    b, mb = scene(centre=(44.0, 47.0))
    seen = []

    def refine(image, warped):
        seen.append(warped.sum())
        return mb if len(seen) == 1 else None  # the second object: no opinion, GrabCut answers

    out = carry(a, b, [(1, 1, ma), (2, 1, ma)], refine)
    assert len(seen) == 2
    assert [c.track for c in out] == [1, 2] and np.array_equal(out[0].mask, mb)
    assert iou(out[1].mask, mb) > 0.9
    empty = carry(a, b, [(1, 1, ma)], lambda image, warped: np.zeros_like(warped))
    assert empty == []  # the model says the object is not there: it vanished
    with pytest.raises(ValueError, match="refine function"):
        carry(a, b, [(1, 1, ma)], lambda image, warped: warped[:-1])


@pytest.mark.parametrize("method", CLASSICAL)
def test_every_method_keeps_tracks_and_shapes(method):
    a, ma = scene()
    b, _ = scene(centre=(43.0, 46.0))
    other = np.zeros_like(ma)
    other[65:85, 75:100] = True
    out = carry(a, b, [(4, 2, ma), (9, 1, other)], method=method)
    assert {c.track for c in out} <= {4, 9} and 4 in {c.track for c in out}
    for c in out:
        assert c.mask.shape == ma.shape and c.mask.dtype == bool and 0.0 <= c.confidence <= 1.0


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["u8", "u16", "f32", "rgb", "rgba"]), method=st.sampled_from(CLASSICAL))
def test_any_small_frames_give_masks_of_the_frame_size(h, w, seed, kind, method):
    rng = np.random.default_rng(seed)
    if kind == "u8":
        make = lambda: rng.integers(0, 256, (h, w), dtype=np.uint8)  # noqa: E731
    elif kind == "u16":
        make = lambda: rng.integers(0, 65536, (h, w), dtype=np.uint16)  # noqa: E731
    elif kind == "f32":
        def make():
            f = rng.normal(0, 1, (h, w)).astype(np.float32)
            f[rng.random((h, w)) < 0.1] = np.nan  # NaN pixels: no crash, no NaN confidence
            return f
    else:
        c = 3 if kind == "rgb" else 4
        make = lambda: rng.integers(0, 256, (h, w, c), dtype=np.uint8)  # noqa: E731
    masks = [(t, 1, rng.random((h, w)) < 0.3) for t in range(3)]
    out = carry(make(), make(), masks, method=method)
    for c in out:
        assert c.mask.shape == (h, w) and c.mask.dtype == bool
        assert 0.0 <= c.confidence <= 1.0
