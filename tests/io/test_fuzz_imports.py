"""Property-based fuzzing of every importer: random and mutated COCO, labelme, YOLO and
label-map inputs. For each: no exception escapes (a whole file that is not the format at all
may raise FormatError), the traced peak stays bounded, every region lies inside its image, and
the good annotations beside the bad one are kept."""

import itertools

import numpy as np
import pytest
from pycocotools import mask as mask_utils

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402

from segstudio.core import rle  # noqa: E402
from segstudio.io import coco, labelmap, labelme, yolo  # noqa: E402
from segstudio.io.common import FormatError  # noqa: E402
from tests.io.hostile import (GOOD_POLY, H, W, assert_inside, b64, dump, good_label_map,  # noqa: E402
                              has_good_region, labelme_doc, make_project, png_bomb, png_bytes,
                              status_of, traced_peak, yolo_good_line)

PEAK_LIMIT = 64 << 20
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
_count = itertools.count()

# ----------------------------------------------------------------------------- strategies
hostile_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-2**70, 2**70),
    st.sampled_from([1e6, -1e6, 1e300, -1e300, 5e-324, 2**31, -2**31, 2**63, 0, -1]),
)
plain_number = st.one_of(st.floats(-10, W + 10), st.integers(-5, W + 5))
number = st.one_of(plain_number, plain_number, hostile_number)
json_leaf = st.one_of(st.none(), st.booleans(), hostile_number, st.text(max_size=8))
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=6),
                           st.dictionaries(st.sampled_from(["size", "counts", "x", "points", "id", ""]) | st.text(max_size=4),
                                           kids, max_size=4)),
    max_leaves=20)


def _rle_string(h, w, seed):
    m = (np.random.default_rng(seed).random((h, w)) < 0.3).astype(np.uint8)
    return mask_utils.encode(np.asfortranarray(m))["counts"].decode()


@st.composite
def mutated_string(draw):
    """A valid compressed RLE string, then cut, extended, or with characters replaced."""
    h, w = draw(st.sampled_from([(H, W), (10, 10), (H, W + 1)]))
    s = list(_rle_string(h, w, draw(st.integers(0, 5))))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["cut", "add", "set"]))
        k = draw(st.integers(0, max(0, len(s) - 1)))
        c = chr(draw(st.integers(32, 130)))
        if op == "cut":
            s = s[:k]
        elif op == "add":
            s.insert(k, c)
        elif s:
            s[k] = c
    return "".join(s)


counts = st.one_of(
    st.lists(st.one_of(st.integers(-5, H * W), hostile_number), max_size=8),
    st.lists(st.integers(0, 400), min_size=1, max_size=30),
    mutated_string(),
    st.text(max_size=20),
    json_value,
)
segmentation = st.one_of(
    st.lists(st.lists(number, min_size=0, max_size=14), max_size=3),
    st.fixed_dictionaries({"size": st.one_of(st.just([H, W]), st.just([10, 10]), json_value),
                           "counts": counts}),
    json_value,
)
coco_annotation = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(100, 200), json_value), "image_id": st.one_of(st.just(1), st.just(1), json_value),
     "category_id": st.one_of(st.just(1), st.just(1), json_value), "segmentation": segmentation},
    optional={"bbox": st.one_of(st.lists(number, min_size=4, max_size=4), json_value),
              "iscrowd": st.one_of(st.sampled_from([0, 1]), json_value)})


def _project(root):
    return make_project(root, db=root / f"p{next(_count)}.db")


def _check(project, rep, peak, good=("a.png", "b.png")):
    event(f"rejected: {bool(rep.rejected)}, errors: {bool(rep.errors)}, regions: {rep.regions}")
    assert peak < PEAK_LIMIT, peak
    assert_inside(project)
    for name in good:
        assert has_good_region(project, name), (name, rep)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("fuzz")
    make_project(r).close()
    return r


# ----------------------------------------------------------------------------- COCO
@FUZZ
@given(anns=st.lists(coco_annotation, min_size=1, max_size=3), cat_name=st.one_of(st.just("cat"), json_value))
def test_fuzz_coco_annotations(root, anns, cat_name):
    p = _project(root)
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H},
                      {"id": 2, "file_name": "b.png", "width": W, "height": H}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [GOOD_POLY]},
                           {"id": 2, "image_id": 2, "category_id": 1, "segmentation": [GOOD_POLY]}] + anns,
           "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": cat_name}]}
    f = root / f"c{next(_count)}.json"
    f.write_text(dump(doc))
    with traced_peak() as mem:
        rep = coco.import_coco(p, f)
    _check(p, rep, mem["peak"])
    if any(img == "a.png" for img in rep.incomplete):
        assert status_of(p, "a.png") != "done"
    p.close()


@FUZZ
@given(data=st.one_of(json_value, st.fixed_dictionaries({"images": json_value, "annotations": json_value,
                                                         "categories": json_value})),
       raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_fuzz_coco_whole_file(root, data, raw):
    p = _project(root)
    f = root / f"c{next(_count)}.json"
    f.write_bytes(raw) if raw is not None else f.write_text(dump(data))
    with traced_peak() as mem:
        try:
            coco.import_coco(p, f)
        except FormatError:
            pass
    assert mem["peak"] < PEAK_LIMIT
    assert_inside(p)
    p.close()


# ----------------------------------------------------------------------------- YOLO
token = st.one_of(
    hostile_number.map(repr), st.floats(-0.2, 1.2).map(lambda v: f"{v:.4f}"),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "0x10", "1_0", "", "∞"]),
    st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=6),
)
yolo_line = st.one_of(
    st.lists(token, max_size=12).map(" ".join),
    st.tuples(st.sampled_from(["0", "1", "-1", "0.0", "nan"]), st.lists(token, min_size=4, max_size=10)).map(
        lambda t: t[0] + " " + " ".join(t[1])),
)


@FUZZ
@given(lines=st.lists(yolo_line, min_size=1, max_size=4), raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_yolo(root, lines, raw):
    p = _project(root)
    d = root / f"y{next(_count)}"
    d.mkdir()
    (d / "classes.txt").write_text("cat\ndog\n")
    # surrogatepass: a generated lone surrogate is written as the invalid UTF-8 it would be, one more
    # hostile byte sequence for the importer (a plain write_text refused it and failed the test)
    (d / "a.txt").write_text(yolo_good_line() + "\n" + "\n".join(lines) + "\n", "utf-8", "surrogatepass")
    (d / "b.txt").write_text("\n".join(lines) + "\n" + yolo_good_line() + "\n", "utf-8", "surrogatepass")
    if raw is not None:
        (d / "c.txt").write_bytes(raw)
    with traced_peak() as mem:
        rep = yolo.import_yolo(p, d)
    _check(p, rep, mem["peak"])
    p.close()


# ----------------------------------------------------------------------------- labelme
_BOMB = b64(png_bomb())
_MASKS = [_BOMB, b64(png_bytes(np.ones((4, 5), np.uint8))), b64(png_bytes(np.ones((H + 3, 2), np.uint8))),
          b64(png_bytes(np.ones((6, 6), np.uint8))[:40]), "!!", ""]
point = st.lists(number, min_size=2, max_size=2)
shape = st.fixed_dictionaries(
    {"label": st.one_of(st.just("cat"), st.just("dog"), st.text(max_size=6), json_value),
     "points": st.one_of(st.lists(point, max_size=5), json_value),
     "shape_type": st.one_of(st.sampled_from(["polygon", "rectangle", "circle", "line", "linestrip", "point",
                                              "mask", "rotation"]), json_value)},
    optional={"group_id": st.one_of(st.none(), st.integers(0, 3), json_value),
              "mask": st.one_of(st.sampled_from(_MASKS), json_value)})


@FUZZ
@given(shapes=st.lists(st.one_of(shape, json_value), min_size=1, max_size=3),
       extra=st.dictionaries(st.sampled_from(["imageWidth", "imageHeight", "imagePath", "imageData", "shapes"]),
                             json_value, max_size=2))
def test_fuzz_labelme(root, shapes, extra):
    p = _project(root)
    d = root / f"lm{next(_count)}"
    d.mkdir()
    (d / "a.json").write_text(dump(labelme_doc(shapes)))  # the good shape first, then the fuzz
    (d / "b.json").write_text(dump(labelme_doc([], image="b.png")))
    bad = labelme_doc(shapes, image="c.png")
    bad.update(extra)
    (d / "c.json").write_text(dump(bad))
    with traced_peak() as mem:
        rep = labelme.import_labelme(p, d)
    _check(p, rep, mem["peak"])
    if "a.png" in rep.incomplete:
        assert status_of(p, "a.png") != "done"
    p.close()


# ----------------------------------------------------------------------------- label maps
@FUZZ
@given(shape=st.sampled_from([(H, W), (H, W), (H, W), (H + 1, W), (3, 4)]),
       mode=st.sampled_from(["L", "P", "P", "I;16", "RGB", "1", "LA"]),
       values=st.integers(0, 2000), seed=st.integers(0, 10),
       cut=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 400)),
       flips=st.one_of(st.just([]), st.just([]), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                                          max_size=3)),
       bomb=st.integers(0, 5).map(lambda v: v == 0))
def test_fuzz_labelmap(root, shape, mode, values, seed, cut, flips, bomb):
    from PIL import Image
    import io
    p = _project(root)
    d = root / f"map{next(_count)}"
    d.mkdir()
    Image.fromarray(good_label_map()).save(d / "a.png")
    rng = np.random.default_rng(seed)
    if bomb:
        data = bytearray(png_bomb(2000, 3000 * (seed + 1)) if seed < 3 else png_bomb())
    else:
        a = rng.integers(0, values + 1, shape)
        im = Image.fromarray(a.astype(np.uint16 if mode == "I;16" else np.uint8))
        if mode == "P":
            im.putpalette([0] * 768)
        elif mode != "I;16":
            im = im.convert(mode)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = bytearray(buf.getvalue())
    for k, v in flips:
        if k < len(data):
            data[k] = v
    if cut is not None:
        data = data[:cut]
    (d / "b.png").write_bytes(bytes(data))
    with traced_peak() as mem:
        rep = labelmap.import_labelmap(p, d)
    _check(p, rep, mem["peak"], good=("a.png",))
    p.close()


# ----------------------------------------------------------------------------- the RLE codec
@settings(max_examples=300, deadline=None, database=None)
@given(s=st.one_of(mutated_string(), st.text(alphabet=st.characters(min_codepoint=30, max_codepoint=130), max_size=40)),
       hw=st.sampled_from([(H, W), (10, 10), (1, 1), (H, W + 1)]))
def test_fuzz_rle_string_decoder(s, hw):
    h, w = hw
    try:
        m = rle.from_coco({"size": [h, w], "counts": s}, h, w)
    except ValueError:
        return
    assert m.shape == (h, w) and m.dtype == bool
    # whatever decodes is exactly what pycocotools makes of the same string
    ref = mask_utils.decode({"size": [h, w], "counts": s.encode()}).astype(bool)
    assert np.array_equal(m, ref)
