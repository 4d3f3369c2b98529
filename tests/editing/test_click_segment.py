"""The Clicks → object tool's segmentation (classical.click_segment), the click watershed
(classical.watershed_clicks) and the colour models they cut with, on images whose answer is known.

The clicks follow the field's protocol (RITM's clicker, benchmarks/_clicks.py): the next click goes
to the wrong pixel farthest from the edge of its wrong area, an object click when that pixel is a
missed one."""

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core import maskops
from segstudio.editing import classical, click_segment as cs, colour_models


def full(crop, shape):
    out = np.zeros(shape[:2], bool)
    if crop is not None:
        m, x, y = crop
        out[y:y + m.shape[0], x:x + m.shape[1]] = m
    return out


def iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


def next_click(truth, pred):
    """The protocol's next click: (x, y, is an object click), the image edge counting as an edge."""
    fn, fp = truth & ~pred, ~truth & pred
    dn = cv2.distanceTransform(np.pad(fn, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    dp = cv2.distanceTransform(np.pad(fp, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    positive = dn.max() > dp.max()
    d = dn if positive else dp
    y, x = np.unravel_index(int(d.argmax()), d.shape)
    return float(x), float(y), bool(positive)


def click_until(fn, image, truth, target=0.9, max_clicks=8):
    """The IoU after each click, feeding back the previous answer, until `target`."""
    pos, neg, crop, ious = [], [], None, []
    pred = np.zeros(truth.shape, bool)
    for _ in range(max_clicks):
        x, y, positive = next_click(truth, pred)
        (pos if positive else neg).append((x, y))
        answer = fn(image, crop, list(pos), list(neg), radius=4)
        if answer is not None:
            crop = answer
        pred = full(crop, truth.shape)
        ious.append(iou(pred, truth))
        if ious[-1] >= target:
            break
    return ious, crop


def disc_image(seed=0, h=120, w=160):
    """A reddish disc on a noisy greenish background."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((h, w), np.uint8)
    cv2.circle(truth, (w // 2, h // 2), 30, 1, -1)
    img = np.where(truth[..., None] > 0, np.array([190, 70, 60]), np.array([70, 130, 80])).astype(np.float32)
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth.astype(bool)


def two_colour_object(seed=0):
    """An object of two colours (a red half, a blue half) on green: the blue half is what GrabCut's
    own models keep giving to the background once the region holds only the red half."""
    rng = np.random.default_rng(seed)
    h, w = 120, 200
    img = np.zeros((h, w, 3), np.float32)
    img[:] = (60, 150, 70)
    truth = np.zeros((h, w), bool)
    truth[30:90, 40:160] = True
    img[30:90, 40:100] = (200, 50, 50)
    img[30:90, 100:160] = (50, 60, 200)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth


# ---------------------------------------------------------------- click_segment


@pytest.mark.parametrize("seed", [0, 1])
def test_disc_on_noise_in_a_few_clicks(seed):
    img, truth = disc_image(seed)
    ious, _ = click_until(classical.click_segment, img, truth)
    assert ious[-1] >= 0.9 and len(ious) <= 3, ious


def test_first_click_finds_a_large_object_not_a_patch_around_the_click():
    """A click says nothing of the object's size: a disc of radius 90 in a 400x300 image (the old
    Clicks → GrabCut looked 50 px around the click and answered a patch of it)."""
    rng = np.random.default_rng(3)
    truth = np.zeros((300, 400), np.uint8)
    cv2.circle(truth, (200, 150), 90, 1, -1)
    img = np.where(truth[..., None] > 0, np.array([200, 180, 60]), np.array([40, 60, 140])).astype(np.float32)
    img = np.clip(img + rng.normal(0, 15, img.shape), 0, 255).astype(np.uint8)
    crop = classical.click_segment(img, None, [(200.0, 150.0)], [])
    assert iou(full(crop, img.shape), truth.astype(bool)) > 0.9


def test_an_object_click_wins_back_a_part_of_another_colour():
    img, truth = two_colour_object()
    red = maskops.crop_to_content(truth & (np.arange(truth.shape[1]) < 100)[None, :])
    assert iou(full(red, img.shape), truth) < 0.55
    crop = classical.click_segment(img, red, [(70.0, 60.0), (130.0, 60.0)], [])
    assert iou(full(crop, img.shape), truth) > 0.9


def test_a_background_click_takes_out_a_wrong_blob_and_keeps_the_rest():
    img, truth = disc_image(2)
    blob = np.zeros(truth.shape, bool)
    cv2.circle(blob.view(np.uint8), (125, 25), 14, 1, -1)  # a wrongly included blob, off the disc
    current = maskops.crop_to_content(truth | blob)
    crop = classical.click_segment(img, current, [(80.0, 60.0)], [(125.0, 25.0)])
    after = full(crop, img.shape)
    assert not after[blob].any()
    # the disc out of the background click's reach (3 x its 14 px from the region's edge) is exactly
    # as it was
    yy, xx = np.mgrid[:120, :160]
    far = truth & (np.hypot(xx - 125, yy - 25) > 3 * 14 + 2)
    assert far.sum() > 1500 and after[far].all()
    assert iou(after, truth) > 0.95


def test_clicks_the_region_agrees_with_change_nothing():
    img, truth = disc_image(0)
    current = maskops.crop_to_content(truth)
    crop = classical.click_segment(img, current, [(80.0, 60.0)], [(5.0, 5.0)])
    assert crop is not None and np.array_equal(full(crop, img.shape), truth)


def test_same_clicks_same_answer():
    img, truth = disc_image(4)
    a = classical.click_segment(img, None, [(80.0, 60.0)], [])
    b = classical.click_segment(img, None, [(80.0, 60.0)], [])
    assert a[1:] == b[1:] and np.array_equal(a[0], b[0])
    ca = classical.click_segment(img, a, [(80.0, 60.0), (105.0, 60.0)], [(20.0, 20.0)])
    cb = classical.click_segment(img, b, [(80.0, 60.0), (105.0, 60.0)], [(20.0, 20.0)])
    assert ca[1:] == cb[1:] and np.array_equal(ca[0], cb[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_one_channel_8_and_16_bit(dtype):
    rng = np.random.default_rng(5)
    truth = np.zeros((120, 160), np.uint8)
    cv2.ellipse(truth, (80, 60), (34, 24), 20, 0, 360, 1, -1)
    img = np.where(truth > 0, 150.0, 80.0)
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 14, truth.shape)
    img = np.clip(1000 + img * 40, 0, 65535).astype(np.uint16) if dtype == np.uint16 \
        else np.clip(img, 0, 255).astype(np.uint8)
    ious, _ = click_until(classical.click_segment, img, truth.astype(bool), max_clicks=4)
    assert ious[0] > 0.8 and ious[-1] >= 0.9, ious


def test_one_channel_cells_alike_the_click_is_its_cell():
    """EM-like cells of one grey and texture, told apart only by membranes: the colour model cannot
    separate the clicked cell from the others, the membrane does (the watershed answers)."""
    from tests.inference.test_grabcut_grey import cells_image
    img, truth = cells_image(0)
    crop = classical.click_segment(img, None, [(100.0, 100.0)], [])
    assert iou(full(crop, img.shape), truth) > 0.8


def test_nothing_to_separate_is_none():
    flat = np.full((60, 80), 90, np.uint8)
    assert classical.click_segment(flat, None, [(40.0, 30.0)], []) is None
    assert classical.click_segment(np.full((60, 80, 3), 90, np.uint8), None, [(40.0, 30.0)], []) is None
    img, truth = disc_image(0)
    assert classical.click_segment(img, None, [], [(5.0, 5.0)]) is None  # no object click, no region
    assert classical.click_segment(img, None, [(-3.0, 500.0)], []) is None  # the only click is off the image


def test_a_large_image_is_worked_scaled_down(monkeypatch):
    """An area above WORK_PIXELS is worked scaled down: the answer still covers the object at full
    resolution, and where the scaled answer keeps the region the region keeps its own pixels."""
    monkeypatch.setattr(cs, "WORK_PIXELS", 20_000)
    img, truth = disc_image(6, h=300, w=400)
    truth = np.zeros((300, 400), bool)
    cv2.circle(truth.view(np.uint8), (200, 150), 30, 1, -1)
    crop = classical.click_segment(img, None, [(200.0, 150.0)], [])
    first = full(crop, img.shape)
    assert iou(first, truth) > 0.85
    ragged = first.copy()
    ragged[150:152, 100:102] = True  # two stray pixels far from the next click
    after = full(classical.click_segment(img, maskops.crop_to_content(ragged), [(200.0, 150.0)],
                                         [(290.0, 40.0)]), img.shape)
    assert np.array_equal(after[:, :150], ragged[:, :150])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.floats(-50, 120), st.sampled_from([float("nan"), float("inf"), 64.0])),
                          st.one_of(st.floats(-50, 100), st.sampled_from([float("-inf"), 48.0, 47.99])),
                          st.booleans()),
                min_size=1, max_size=5),
       st.booleans(), st.sampled_from([1, 3, 4, 12]))
def test_any_clicks_never_crash(clicks, with_region, radius):
    img, truth = disc_image(0, h=48, w=64)
    pos = [(x, y) for x, y, p in clicks if p]
    neg = [(x, y) for x, y, p in clicks if not p]
    current = maskops.crop_to_content(truth) if with_region else None
    for fn in (classical.click_segment, classical.watershed_clicks):
        crop = fn(img, current, pos, neg, radius=radius)
        if crop is not None:
            m, x, y = crop
            assert m.dtype == bool and m.any()
            assert 0 <= x and 0 <= y and x + m.shape[1] <= 64 and y + m.shape[0] <= 48


# ---------------------------------------------------------------- watershed_clicks


def test_watershed_clicks_follows_the_membranes():
    from tests.inference.test_grabcut_grey import cells_image
    img, truth = cells_image(1)
    crop = classical.watershed_clicks(img, None, [(100.0, 100.0)], [])
    assert iou(full(crop, img.shape), truth) > 0.8
    assert classical.watershed_clicks(np.full((50, 50), 7, np.uint8), None, [(25.0, 25.0)], []) is None


# ---------------------------------------------------------------- colour models


def test_colour_models_fit_their_samples_and_cut_with_them():
    rng = np.random.default_rng(0)
    red = np.clip(rng.normal((200, 40, 40), 10, (500, 3)), 0, 255).astype(np.uint8)
    blue = np.clip(rng.normal((40, 40, 200), 10, (500, 3)), 0, 255).astype(np.uint8)
    obj, bg = colour_models.fit([(red, 1.0)]), colour_models.fit([(blue, 1.0)])
    assert obj is not None and bg is not None and obj.shape == (65,)
    assert abs(obj[:5].sum() - 1) < 1e-9
    assert (colour_models.log_likelihood(obj, red) > colour_models.log_likelihood(bg, red)).all()
    # a weighted source: the small one counts as much as its weight says
    mixed = colour_models.fit([(red, 0.5), (blue[:5], 0.5)])
    assert np.median(colour_models.log_likelihood(mixed, blue)) > np.median(colour_models.log_likelihood(obj, blue))
    assert colour_models.fit([(red[:0], 1.0)]) is None
    img = np.zeros((40, 60, 3), np.uint8)
    img[:] = (40, 40, 200)
    img[10:30, 15:45] = (200, 40, 40)
    labels = np.full((40, 60), cv2.GC_PR_BGD, np.uint8)
    assert colour_models.cut(img, labels, obj, bg)
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    assert fg[10:30, 15:45].all() and fg.sum() == 20 * 30


def test_an_object_click_keeps_the_regions_other_parts():
    """A region of two parts (two squares): an object click that grows one keeps the other."""
    rng = np.random.default_rng(4)
    img = (rng.random((120, 240, 3)) * 40).astype(np.uint8)
    a = np.zeros((120, 240), bool)
    a[30:70, 20:70] = True
    b = np.zeros((120, 240), bool)
    b[30:70, 180:220] = True
    img[a] = (200, 60, 60)
    img[b] = (200, 60, 60)
    img[70:90, 20:70] = (200, 60, 60)  # a strip of square A the region misses
    current = maskops.crop_to_content(a | b)
    crop = classical.click_segment(img, current, [(40.0, 50.0), (45.0, 80.0)], [])
    after = full(crop, img.shape[:2])
    assert after[b].all()  # the far part stays
    assert after[75:85, 25:65].mean() > 0.9  # the strip was added


def test_clicks_on_a_flat_area_answer_at_once():
    """A disc on flat black: an object click and a background click on the black, which no colour
    model tells apart, answer at once (cv2.grabCut took 10 s on this 350 x 350 image, minutes on
    larger ones) and leave the disc as it was."""
    import time
    n = 350
    img = np.zeros((n, n, 3), np.uint8)
    truth = np.zeros((n, n), bool)
    cv2.circle(truth.view(np.uint8), (n // 2, n // 2), n // 6, 1, -1)
    img[truth] = (255, 0, 0)
    first = classical.click_segment(img, None, [(n / 2, n / 2)], [])
    assert iou(full(first, img.shape), truth) > 0.95
    t0 = time.perf_counter()
    crop = classical.click_segment(img, first, [(n / 2, n / 2), (n * 0.85, n * 0.15)], [(n * 0.15, n * 0.85)])
    assert time.perf_counter() - t0 < 3.0
    assert full(crop, img.shape)[truth].all()
