"""Hostile inputs to every importer, one by one: each is rejected with a message naming it,
the good annotation beside it imports, no exception escapes, and memory stays bounded by the
image, not by the numbers in the file."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segstudio.core import imageio, rle
from segstudio.io import coco, labelmap, labelme, validate, yolo
from segstudio.io.common import FormatError
from tests.io.hostile import (GOOD_POLY, H, W, assert_inside, b64, coco_doc, dump, good_label_map,
                              has_good_region, labelme_doc, make_project, png_bomb, png_bytes,
                              regions_of, status_of, traced_peak, yolo_good_line)

NAN, INF = float("nan"), float("inf")
PEAK_LIMIT = 32 << 20  # traced peak allowed for one hostile import on 64x48 images
N = H * W


@pytest.fixture
def proj(tmp_path):
    p = make_project(tmp_path)
    yield p
    p.close()


@pytest.fixture
def yolo_dir(tmp_path):
    """A YOLO label folder with its class list (one class, cat); the test writes the labels."""
    d = tmp_path / "y"
    d.mkdir()
    (d / "classes.txt").write_text("cat\n")
    return d


def _valid_rle_string(h=H, w=W):
    m = np.zeros((h, w), np.uint8)
    m[5:9, 40:50] = 1
    return mask_utils.encode(np.asfortranarray(m))["counts"].decode()


# ----------------------------------------------------------------------------- COCO
HOSTILE_SEGMENTATIONS = {
    "rle short counts": {"size": [H, W], "counts": [5, 10]},
    "rle negative count": {"size": [H, W], "counts": [100, -5, N - 95]},
    "rle counts over h*w": {"size": [H, W], "counts": [0, N + 10]},
    "rle huge count": {"size": [H, W], "counts": [0, 2**40]},
    "rle float counts": {"size": [H, W], "counts": [0.5, N - 0.5]},
    "rle counts with NaN": {"size": [H, W], "counts": [NAN, N]},
    "rle counts as strings": {"size": [H, W], "counts": ["1", str(N - 1)]},
    "rle counts a number": {"size": [H, W], "counts": 5},
    "rle wrong size": {"size": [10, 10], "counts": [100]},
    "rle size NaN": {"size": [NAN, W], "counts": [N]},
    "rle size infinite": {"size": [INF, W], "counts": [N]},
    "rle size 1e300": {"size": [1e300, W], "counts": [N]},
    "rle size strings": {"size": ["48", "64"], "counts": [N]},
    "rle no size": {"counts": [N]},
    "compressed truncated": {"size": [H, W], "counts": _valid_rle_string() + "P"},
    "compressed cut short": {"size": [H, W], "counts": _valid_rle_string()[:-3]},
    "compressed garbage": {"size": [H, W], "counts": "\x01\x02 ~~~\x7f"},
    "compressed non-ascii": {"size": [H, W], "counts": "0é0"},
    "compressed other size": {"size": [H, W], "counts": _valid_rle_string(10, 10)},
    "compressed long number": {"size": [H, W], "counts": "o" * 40 + "0"},
    "compressed 7-char number": {"size": [H, W], "counts": "P" * 6 + "0"},
    "compressed empty": {"size": [H, W], "counts": ""},
    "polygon NaN": [[10, 10, NAN, 10, 30, 30]],
    "polygon Infinity": [[10, 10, INF, 10, 30, 30]],
    "polygon -Infinity": [[10, 10, 30, -INF, 30, 30]],
    "polygon 1e6": [[10, 10, 1e6, 10, 30, 30]],
    "polygon 1e300": [[10, 10, 1e300, 10, 30, 30]],
    "polygon strings": [["10", "10", "30", "10", "30", "30"]],
    "polygon booleans": [[True, False, True, True, False, True]],
    "polygon ragged": [[10, [10], 30, 10, 30, 30]],
    "polygon odd": [[10, 10, 30, 10, 30, 30, 5]],
    "polygon a number": [5],
    "polygon of dicts": [{"x": 1}],
    "polygon zigzag": [[v for k in range(20000) for v in ((0, 0) if k % 2 else (W * 90.0, H * 90.0))]],
    "segmentation a number": 5,
    "segmentation a string": "abc",
    "segmentation nested deep": json.loads("[" * 500 + "]" * 500),
}


@pytest.mark.parametrize("case", list(HOSTILE_SEGMENTATIONS))
def test_coco_hostile_segmentation(proj, tmp_path, case):
    seg = HOSTILE_SEGMENTATIONS[case]
    f = tmp_path / "c.json"
    f.write_text(dump(coco_doc(anns_a=[{"segmentation": seg}], anns_b=[{"segmentation": seg}])))
    with traced_peak() as mem:
        rep = coco.import_coco(proj, f)
    assert mem["peak"] < PEAK_LIMIT, (case, mem["peak"])
    assert rep.rejected == 2 and any("annotation 100" in m for _, m in rep.errors), (case, rep.errors)
    assert has_good_region(proj, "a.png") and len(regions_of(proj, "a.png")) == 1
    # a.png lost an annotation: not done; b.png lost its only one: untouched; c.png has none
    assert status_of(proj, "a.png") == "in_progress"
    assert status_of(proj, "b.png") == "new" and regions_of(proj, "b.png") == []
    assert status_of(proj, "c.png") == "done"
    assert rep.incomplete == ["a.png", "b.png"]
    assert any("b.png: all 1 of its annotations rejected" in n for n in rep.notes)
    assert_inside(proj)


HOSTILE_BBOXES = {
    "bbox NaN": [NAN, 1, 5, 5], "bbox Infinity": [1, INF, 5, 5], "bbox 1e300": [1, 1, 1e300, 5],
    "bbox strings": ["1", "1", "5", "5"], "bbox short": [1, 2, 3], "bbox a dict": {"x": 1},
}


@pytest.mark.parametrize("case", list(HOSTILE_BBOXES))
def test_coco_hostile_bbox(proj, tmp_path, case):
    f = tmp_path / "c.json"
    f.write_text(dump(coco_doc(anns_a=[{"bbox": HOSTILE_BBOXES[case]}])))
    rep = coco.import_coco(proj, f)
    assert rep.rejected == 1 and has_good_region(proj, "a.png")
    assert len(regions_of(proj, "a.png")) == 1


def test_coco_polygon_overshooting_image_is_clipped_not_refused(proj, tmp_path):
    # vertices 50 image sizes out: within the limit, clipped to the image, memory bounded
    far = [-50 * W, -50 * H, 50 * W, -50 * H, 50 * W, 50 * H, -50 * W, 50 * H]
    f = tmp_path / "c.json"
    f.write_text(dump(coco_doc(anns_a=[{"segmentation": [far]}])))
    with traced_peak() as mem:
        rep = coco.import_coco(proj, f)
    assert not rep.errors and rep.regions == 2 and mem["peak"] < PEAK_LIMIT
    full = [r for r in regions_of(proj, "a.png") if r.mask.shape == (H, W)]
    assert len(full) == 1 and full[0].mask.all()
    assert status_of(proj, "a.png") == "done"


def test_coco_wrong_types_everywhere(proj, tmp_path):
    doc = coco_doc()
    doc["images"] += [5, {"file_name": ["x"]}, {"id": [1], "file_name": "b.png"},
                      {"id": 3, "file_name": "c.png", "width": "abc", "height": 48}]
    doc["images"][0]["width"] = float(W)  # a whole float is a width
    doc["annotations"] += [7, "x", {"image_id": [1]}, {"image_id": {"a": 1}},
                           {"id": 9, "image_id": 1, "category_id": [1], "segmentation": [GOOD_POLY]},
                           {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": [1], "segmentation": 5}]
    doc["categories"] += [3, {"id": [2], "name": "x"}, {"id": 4, "name": {"a": 1}}, {"id": "s", "name": "str id"},
                          {"id": 5, "name": "x" * 5000}]
    f = tmp_path / "c.json"
    f.write_text(dump(doc))
    rep = coco.import_coco(proj, f)
    assert has_good_region(proj, "a.png")
    msgs = " | ".join(m for _, m in rep.errors)
    for part in ("images[3]", "images[4]", "image id", "width must be a number",
                 "annotations[2]", "annotations[3]", "unknown category", "annotation 10",
                 "categories[1]", "label must be text", "characters"):
        assert part in msgs, part
    assert {c.name for c in proj.store.classes()} == {"cat", "str id"}


@pytest.mark.parametrize("text,match", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"images": [], "x": ' + "9" * 5000 + "}", "not valid JSON"),
    ('{"images": [1, 2', "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
])
def test_coco_whole_file_errors_are_format_errors(proj, tmp_path, text, match):
    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(FormatError, match=match):
        coco.import_coco(proj, f)


def test_json_size_is_bounded(proj, tmp_path, monkeypatch):
    f = tmp_path / "c.json"
    f.write_text(dump(coco_doc()))
    monkeypatch.setattr(validate, "MAX_JSON_BYTES", 100)
    with pytest.raises(FormatError, match="limit"):
        coco.import_coco(proj, f)


def test_coco_nan_literals_in_file_rejected_per_annotation(proj, tmp_path):
    # NaN, Infinity and 1e999 are what the file holds, not what Python wrote
    text = dump(coco_doc(anns_a=[{"segmentation": [[1, 1, 2, 2, 3, 3]]}]))
    text = text.replace("[[1, 1, 2, 2, 3, 3]]", "[[NaN, 1, Infinity, 2, -Infinity, 1e999]]")
    f = tmp_path / "c.json"
    f.write_text(text)
    rep = coco.import_coco(proj, f)
    assert rep.rejected == 1 and "NaN or infinite" in rep.errors[0][1]
    assert has_good_region(proj, "a.png")


def test_rle_string_decoder_matches_pycocotools():
    rng = np.random.default_rng(0)
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.random((h, w)) < rng.random()
        enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert np.array_equal(rle.from_coco({"size": [h, w], "counts": enc["counts"].decode()}, h, w), m)
        counts = rle.string_to_counts(enc["counts"]).tolist()
        assert np.array_equal(rle.from_coco({"size": [h, w], "counts": counts}, h, w), m)


def test_polygon_clipping_keeps_the_shape_inside():
    """A COCO polygon reaching far outside is clipped before pycocotools rasterises it: the
    pixels inside are pycocotools' own, but for its 1/5-pixel rounding along the cut edges."""
    from segstudio.core import maskops
    rng = np.random.default_rng(1)
    for _ in range(100):  # simple (star-shaped) polygons reaching up to 300 px out
        ang = np.sort(rng.uniform(0, 2 * np.pi, 8))
        pts = (W / 2, H / 2) + rng.uniform(5, 300, (8, 1)) * np.c_[np.cos(ang), np.sin(ang)]
        box = (-2.0, -2.0, W + 1.0, H + 1.0)
        clipped = maskops.clip_polygon(pts, box)
        assert ((clipped >= np.array(box[:2]) - 1e-9) & (clipped <= np.array(box[2:]) + 1e-9)).all()
        flat = pts.reshape(-1).tolist()
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([flat], H, W))).astype(bool)
        got = rle.from_coco([flat], H, W)
        assert (ref ^ got).sum() <= max(4, ref.sum() // 50)


# ----------------------------------------------------------------------------- YOLO
HOSTILE_YOLO = {
    "coordinate NaN": "0 nan 0.1 0.5 0.1 0.5 0.5",
    "coordinate inf": "0 0.1 inf 0.5 0.1 0.5 0.5",
    "coordinate -inf": "0 0.1 0.1 -inf 0.1 0.5 0.5",
    "coordinate 1e6": "0 0.1 0.1 1e6 0.1 0.5 0.5",
    "coordinate 1e300": "0 0.1 0.1 1e300 0.1 0.5 0.5",
    "coordinate 1e999": "0 0.1 0.1 1e999 0.1 0.5 0.5",
    "box 1e6": "0 0.5 0.5 1e6 1e6",
    "class NaN": "nan 0.1 0.1 0.5 0.1 0.5 0.5",
    "class inf": "inf 0.1 0.1 0.5 0.1 0.5 0.5",
    "class 1e300": "1e300 0.1 0.1 0.5 0.1 0.5 0.5",
    "class -1": "-1 0.1 0.1 0.5 0.1 0.5 0.5",
    "not numbers": "0 0.1 abc 0.5 0.1 0.5 0.5",
    "odd coordinates": "0 0.1 0.1 0.5",
}


@pytest.mark.parametrize("case", list(HOSTILE_YOLO))
def test_yolo_hostile_line(proj, yolo_dir, case):
    d = yolo_dir
    (d / "a.txt").write_text(yolo_good_line() + "\n" + HOSTILE_YOLO[case] + "\n")
    (d / "b.txt").write_text(HOSTILE_YOLO[case] + "\n")
    with traced_peak() as mem:
        rep = yolo.import_yolo(proj, d)
    assert mem["peak"] < PEAK_LIMIT, (case, mem["peak"])
    assert rep.rejected == 2 and rep.errors[0][1].startswith("line 2"), rep.errors
    assert has_good_region(proj, "a.png") and len(regions_of(proj, "a.png")) == 1
    assert status_of(proj, "a.png") == "in_progress" and status_of(proj, "b.png") == "new"
    assert_inside(proj)


def test_yolo_polygon_far_outside_is_clipped(proj, yolo_dir):
    d = yolo_dir
    (d / "a.txt").write_text("0 -50 -50 50 -50 50 50 -50 50\n0 3 3 4 3 4 4\n")
    with traced_peak() as mem:
        rep = yolo.import_yolo(proj, d)
    assert mem["peak"] < PEAK_LIMIT and not rep.errors and rep.regions == 1
    assert regions_of(proj, "a.png")[0].mask.shape == (H, W)
    assert any("no pixels inside the image" in n for n in rep.notes)


def test_yolo_label_file_size_is_bounded(proj, yolo_dir, monkeypatch):
    d = yolo_dir
    (d / "a.txt").write_text(yolo_good_line() + "\n" + "0 0.1 0.1 0.2 0.2 0.3 0.1\n" * 100)
    (d / "b.txt").write_text(yolo_good_line() + "\n")
    monkeypatch.setattr(validate, "MAX_TEXT_BYTES", 1000)
    rep = yolo.import_yolo(proj, d)
    assert any(f == "a.txt" and "limit" in m for f, m in rep.errors)
    assert has_good_region(proj, "b.png")


# ----------------------------------------------------------------------------- labelme
HOSTILE_SHAPES = {
    "circle NaN": {"shape_type": "circle", "points": [[NAN, 10], [20, 20]]},
    "circle inf": {"shape_type": "circle", "points": [[10, 10], [INF, 20]]},
    "circle radius 1e6": {"shape_type": "circle", "points": [[10, 10], [1e6, 10]]},
    "circle 1e300": {"shape_type": "circle", "points": [[1e300, 10], [20, 20]]},
    "rectangle NaN": {"shape_type": "rectangle", "points": [[NAN, NAN], [20, 20]]},
    "rectangle inf": {"shape_type": "rectangle", "points": [[0, 0], [INF, INF]]},
    "rectangle 1e6": {"shape_type": "rectangle", "points": [[-1e6, -1e6], [1e6, 1e6]]},
    "point NaN": {"shape_type": "point", "points": [[NAN, 3]]},
    "point inf": {"shape_type": "point", "points": [[3, -INF]]},
    "polygon 1e300": {"shape_type": "polygon", "points": [[0, 0], [1e300, 0], [5, 5]]},
    "line NaN": {"shape_type": "line", "points": [[0, 0], [NAN, 5]]},
    "points as strings": {"shape_type": "polygon", "points": [["1", "2"], ["3", "4"], ["5", "6"]]},
    "points a string": {"shape_type": "polygon", "points": "abc"},
    "points a dict": {"shape_type": "polygon", "points": {"x": 1}},
    "points a number": {"shape_type": "polygon", "points": 5},
    "points triples": {"shape_type": "polygon", "points": [[1, 2, 3], [3, 4, 5], [5, 6, 7]]},
    "shape_type a list": {"shape_type": ["polygon"], "points": [[1, 2], [3, 4], [5, 6]]},
    "unknown shape_type": {"shape_type": "blob", "points": [[1, 2], [3, 4], [5, 6]]},
    "label a list": {"label": ["cat"], "points": [[1, 2], [3, 4], [5, 6]]},
    "label too long": {"label": "x" * 10_000, "points": [[1, 2], [3, 4], [5, 6]]},
    "group_id a list": {"group_id": [1], "points": [[1, 2], [3, 4], [5, 6]]},
    "group_id NaN": {"group_id": NAN, "points": [[1, 2], [3, 4], [5, 6]]},
    "mask not text": {"shape_type": "mask", "points": [[1, 2], [5, 6]], "mask": 5},
    "mask garbage base64": {"shape_type": "mask", "points": [[1, 2], [5, 6]], "mask": "!!!not base64"},
    "mask not an image": {"shape_type": "mask", "points": [[1, 2], [5, 6]], "mask": b64(b"hello")},
    "mask truncated png": {"shape_type": "mask", "points": [[1, 2], [5, 6]],
                           "mask": b64(png_bytes(np.random.default_rng(0).integers(0, 2, (20, 20), np.uint8))[:60])},
    "mask larger than image": {"shape_type": "mask", "points": [[0, 0], [5, 6]],
                               "mask": b64(png_bytes(np.ones((H + 1, W), np.uint8)))},
    "mask bomb": {"shape_type": "mask", "points": [[1, 2], [5, 6]], "mask": b64(png_bomb())},
    "mask point NaN": {"shape_type": "mask", "points": [[NAN, 2], [5, 6]],
                       "mask": b64(png_bytes(np.ones((4, 4), np.uint8)))},
    "not an object": 5,
}


@pytest.mark.parametrize("case", list(HOSTILE_SHAPES))
def test_labelme_hostile_shape(proj, tmp_path, case):
    shape = HOSTILE_SHAPES[case]
    if isinstance(shape, dict):
        shape = dict({"label": "cat"}, **shape)
    d = tmp_path / "lm"
    d.mkdir()
    (d / "a.json").write_text(dump(labelme_doc([shape])))
    doc_b = labelme_doc([shape], image="b.png")  # b.png: the bad shape alone
    doc_b["shapes"] = doc_b["shapes"][1:]
    (d / "b.json").write_text(dump(doc_b))
    with traced_peak() as mem:
        rep = labelme.import_labelme(proj, d)
    assert mem["peak"] < PEAK_LIMIT, (case, mem["peak"])
    assert rep.rejected == 2 and all("shape" in m for _, m in rep.errors), rep.errors
    assert has_good_region(proj, "a.png") and len(regions_of(proj, "a.png")) == 1
    assert status_of(proj, "a.png") == "in_progress" and status_of(proj, "b.png") == "new"
    assert_inside(proj)


@pytest.mark.parametrize("case,doc", [
    ("shapes a dict", {"shapes": {"a": 1}}),
    ("imageWidth a string", {"imageWidth": "abc"}),
    ("imageWidth NaN", {"imageWidth": NAN}),
    ("imageHeight inf", {"imageHeight": INF}),
    ("imagePath a list", {"imagePath": ["a.png"] * 3, "imageData": 5}),
    ("not an object", None),
])
def test_labelme_hostile_file_beside_good_one(proj, tmp_path, case, doc):
    d = tmp_path / "lm"
    d.mkdir()
    bad = labelme_doc([]) if doc is not None else [1, 2]
    if doc is not None:
        bad.update(doc)
        bad["imagePath"] = doc.get("imagePath", "b.png")
    (d / "b.json").write_text(dump(bad))
    (d / "a.json").write_text(dump(labelme_doc([])))
    rep = labelme.import_labelme(proj, d)
    assert has_good_region(proj, "a.png")
    if case == "imagePath a list":  # ignored: b.json is matched by its own name
        assert has_good_region(proj, "b.png") and not rep.errors
    else:
        assert rep.errors and regions_of(proj, "b.png") == []


def test_labelme_deep_nesting_is_a_file_error(proj, tmp_path):
    d = tmp_path / "lm"
    d.mkdir()
    (d / "b.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "a.json").write_text(dump(labelme_doc([])))
    rep = labelme.import_labelme(proj, d)
    assert rep.errors == [("b.json", "b.json is nested too deeply to be an annotation file")]
    assert has_good_region(proj, "a.png")


def test_labelme_embedded_image_bomb(proj, tmp_path):
    d = tmp_path / "lm"
    d.mkdir()
    (d / "zz.json").write_text(dump(labelme_doc([], image="zz.png", imageData=b64(png_bomb()))))
    (d / "a.json").write_text(dump(labelme_doc([])))
    with traced_peak() as mem:
        rep = labelme.import_labelme(proj, d)
    assert mem["peak"] < PEAK_LIMIT
    assert any("decompression-bomb" in m for _, m in rep.errors)
    assert not (proj.folder / "zz.png").exists() and has_good_region(proj, "a.png")


def test_labelme_big_circle_drawn_row_by_row(monkeypatch):
    # a radius Pillow would take minutes over: drawn by rows on a canvas cut to the image
    s = {"label": "c", "shape_type": "circle", "points": [[1000, 1000], [1000 + 150_000, 1000]]}
    m, x, y = labelme.shape_mask(s, 2000, 2000)
    assert (x, y) == (0, 0) and m.shape == (2000, 2000) and m.all()
    # the row-by-row disc is Pillow's but for a few boundary pixels
    s = {"label": "c", "shape_type": "circle", "points": [[480.3, 520.7], [700.1, 733.2]]}
    pil = labelme.shape_mask(s, 1000, 1000)
    monkeypatch.setattr(labelme, "BIG_CIRCLE", 0)
    rows = labelme.shape_mask(s, 1000, 1000)
    a = np.zeros((1000, 1000), bool)
    b = np.zeros((1000, 1000), bool)
    for full, (m, x, y) in ((a, pil), (b, rows)):
        full[y:y + m.shape[0], x:x + m.shape[1]] = m
    assert (a ^ b).sum() <= 0.005 * a.sum()


# ----------------------------------------------------------------------------- label maps
def _write_maps(d, bad_png: bytes | None, bad_name="b.png"):
    d.mkdir(exist_ok=True)
    Image.fromarray(good_label_map()).save(d / "a.png")
    if bad_png is not None:
        (d / bad_name).write_bytes(bad_png)


def test_labelmap_bomb_refused_from_header(proj, tmp_path):
    d = tmp_path / "lm"
    _write_maps(d, png_bomb())
    with traced_peak() as mem:
        rep = labelmap.import_labelmap(proj, d)
    assert mem["peak"] < PEAK_LIMIT
    assert [f for f, _ in rep.errors] == ["b.png"] and "decompression-bomb" in rep.errors[0][1]
    assert has_good_region(proj, "a.png")


def test_labelmap_guard_and_its_override(proj, tmp_path, monkeypatch):
    d = tmp_path / "lm"
    _write_maps(d, None)
    monkeypatch.setattr(imageio, "PILLOW_LIMIT", 1000)  # the 64x48 map is now "too large"
    rep = labelmap.import_labelmap(proj, d)
    assert "decompression-bomb" in rep.errors[0][1] and regions_of(proj, "a.png") == []
    proj.allow_large = True  # the explicit, logged override
    rep = labelmap.import_labelmap(proj, d)
    assert not rep.errors and has_good_region(proj, "a.png")


@pytest.mark.parametrize("case", ["other size", "rgb", "rgba", "truncated", "not png", "many values"])
def test_labelmap_hostile_file_beside_good_one(proj, tmp_path, case):
    rng = np.random.default_rng(0)
    bad = {
        "other size": lambda: png_bytes(np.ones((H + 1, W), np.uint8)),
        "rgb": lambda: png_bytes(np.zeros((H, W, 3), np.uint8)),
        "truncated": lambda: png_bytes(rng.integers(0, 5, (H, W), dtype=np.uint8))[:200],
        "not png": lambda: b"\x89PNG\r\n\x1a\nrubbish",
        "many values": lambda: png_bytes(rng.permutation(N).reshape(H, W).astype(np.uint16) + 1),
        "rgba": lambda: png_bytes(np.zeros((H, W), np.uint8), "RGBA"),
    }[case]()
    d = tmp_path / "lm"
    _write_maps(d, bad)
    rep = labelmap.import_labelmap(proj, d)
    assert [f for f, _ in rep.errors] == ["b.png"], rep.errors
    assert has_good_region(proj, "a.png") and regions_of(proj, "b.png") == []
    assert len(proj.store.classes()) == 1


# ----------------------------------------------------------------------------- class names
# Exports refuse a class name holding a line break or control character, naming it, and every
# other name round-trips exactly: tests/io/test_list_file_names.py.


def test_class_names_from_datasets_are_cleaned(proj, tmp_path):
    f = tmp_path / "c.json"
    f.write_text(dump(coco_doc(names=("evil\nname\x00",))))
    rep = coco.import_coco(proj, f)
    assert [c.name for c in proj.store.classes()] == ["evil\\nname\\x00"] and rep.notes
    d = tmp_path / "y"
    d.mkdir()
    (d / "data.yaml").write_text('names:\n  0: "a\\nb"\n  2: \'it\'\'s\'\n  1: plain # comment\n')
    assert yolo.read_names(d, d / "data.yaml") == ["a\\nb", "plain", "it's"]
    (d / "d2.yaml").write_text("names:\n  999999999: x\n")
    with pytest.raises(FormatError, match="beyond"):
        yolo.read_names(d, d / "d2.yaml")
    (d / "c.txt").write_text("a\x0cb\nc\x85d\n")  # splitlines() would make four classes of these
    assert yolo.read_names(d, d / "c.txt") == ["a\\x0cb", "c\\x85d"]


# ----------------------------------------------------------------------------- peak memory
PROBE = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.io.hostile import *
from tests.io.test_hostile_imports import HOSTILE_SEGMENTATIONS, HOSTILE_SHAPES, HOSTILE_YOLO
from segstudio.io import coco, labelme, labelmap, yolo
root = Path(sys.argv[2])
p = make_project(root)
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
base = rss()
t = time.time()
f = root / "c.json"
f.write_text(dump(coco_doc(anns_a=[{"segmentation": s} for s in HOSTILE_SEGMENTATIONS.values()])))
coco.import_coco(p, f)
d = root / "y"; d.mkdir()
(d / "classes.txt").write_text("cat\n")
(d / "a.txt").write_text("\n".join(HOSTILE_YOLO.values()) + "\n")
yolo.import_yolo(p, d)
d = root / "lm"; d.mkdir()
shapes = [dict({"label": "cat"}, **s) if isinstance(s, dict) else s for s in HOSTILE_SHAPES.values()]
(d / "a.json").write_text(dump(labelme_doc(shapes)))
(d / "b.json").write_text(dump(labelme_doc([], image="b.png", imageData=b64(png_bomb()))))
(d / "c.json").write_text("[" * 100000 + "]" * 100000)
labelme.import_labelme(p, d)
d = root / "maps"; d.mkdir()
(d / "a.png").write_bytes(png_bomb())
labelmap.import_labelmap(p, d)
print(json.dumps({"base_mb": base, "peak_mb": rss(), "seconds": round(time.time() - t, 2)}))
"""


def test_peak_memory_of_all_hostile_inputs_in_a_fresh_process(tmp_path):
    """Every hostile input above, in one process capped at 4 GiB of address space (a
    regression fails here instead of taking the machine): the peak resident size stays near
    the interpreter's own."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cap = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        exec(sys.stdin.read())
    """)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    r = subprocess.run([sys.executable, "-c", cap, repo, str(tmp_path)], input=PROBE, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["peak_mb"] - figures["base_mb"] < 200, figures
