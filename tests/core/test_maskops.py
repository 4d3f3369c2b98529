import numpy as np

from segstudio.core import maskops
from segstudio.core.region import Region


def test_crop_window_uncrop_roundtrip():
    m = np.zeros((20, 30), bool)
    m[5:9, 10:17] = True
    m[7, 3] = True
    c, x, y = maskops.crop_to_content(m)
    assert (x, y) == (3, 5) and c.shape == (4, 14)
    assert np.array_equal(maskops.uncrop(c, x, y, 30, 20), m)
    w = maskops.window(c, x, y, (0, 0, 8, 8))
    assert w.shape == (8, 8) and w.sum() == 1 and w[7, 3]


def test_crop_of_empty_is_none():
    assert maskops.crop_to_content(np.zeros((4, 4), bool)) is None


def test_disc_is_round_and_symmetric():
    d = maskops.disc(3)
    assert d.shape == (7, 7)
    assert np.array_equal(d, d.T) and np.array_equal(d, d[::-1])
    assert d[3, 0] and not d[0, 0]


def test_segment_stamp_joins_far_points():
    stamp, box = maskops.segment_stamp((0, 0), (40, 0), 2)
    full = maskops.uncrop(stamp, box[0], box[1], 60, 10)
    assert full[0, :41].all()  # no gaps along the drag


def test_polygon_mask_square():
    m, box = maskops.polygon_mask([(2, 2), (6, 2), (6, 6), (2, 6)])
    full = maskops.window(m, box[0], box[1], (0, 0, 10, 10))
    assert full[2:7, 2:7].all() and full.sum() == 25


def test_polygon_needs_three_points():
    assert maskops.polygon_mask([(0, 0), (1, 1)]) is None


def test_fill_holes_and_count():
    m = np.zeros((10, 10), bool)
    m[1:9, 1:9] = True
    m[4:6, 4:6] = False
    assert maskops.count_holes(m) == 1
    f = maskops.fill_holes(m)
    assert f[4:6, 4:6].all() and maskops.count_holes(f) == 0
    # background touching the border is not a hole
    m2 = np.zeros((5, 5), bool)
    m2[:, 2] = True
    assert np.array_equal(maskops.fill_holes(m2), m2)


def test_components():
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True
    m[5:9, 6:8] = True
    parts = maskops.components(m)
    assert sorted(p[0].sum() for p in parts) == [4, 8]
    for pm, dx, dy in parts:
        assert np.array_equal(maskops.window(pm, dx, dy, (0, 0, 10, 10)) & m,
                              maskops.window(pm, dx, dy, (0, 0, 10, 10)))


def test_edge_polygons_rasterise_back_exactly_with_pycocotools():
    from pycocotools import mask as mu
    np.random.default_rng(1)
    m = np.zeros((60, 80), bool)
    m[10:40, 15:60] = True
    m[20:25, 5:15] = True
    m[38:50, 30:33] = True
    polys = [p.ravel().tolist() for p in maskops.edge_polygons(m)]
    back = mu.decode(mu.merge(mu.frPyObjects(polys, 60, 80))).astype(bool)
    assert np.array_equal(back, m)


def test_region_paint_grows_and_tightens():
    r = Region(1, 1, np.ones((2, 2), bool), 10, 10)
    stamp = maskops.disc(2)
    box = maskops.disc_box(20, 20, 2)
    r.paint(stamp, box, True, margin=8)
    assert r.contains(20, 20) and r.contains(10, 10)
    r.paint(np.ones((2, 2), bool), (10, 10, 12, 12), False)
    r.tighten()
    assert r.box == box
    assert not r.contains(10, 10)
