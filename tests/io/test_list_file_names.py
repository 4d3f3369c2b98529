"""Class names in the class lists every exporter writes (class_names.txt, classes.txt, data.yaml,
labels.txt, CamVid/Cityscapes/KITTI label_colors.txt, CVAT and LabelMe XML, ...).

A name with a line break or a control character (every character str.splitlines() breaks at:
\\n \\r \\v \\f \\x1c-\\x1e \\x85 \\u2028 \\u2029, and the other C0/C1 controls) would split or
shift the lines of a list, and an escape would read back as another name: the export refuses,
naming the class, before it writes anything. Every other name comes back exactly."""

import numpy as np
import pytest

from segstudio.core.region import Region
from segstudio.io import validate, yolo
from segstudio.io.bridge_formats import BRIDGE_EXPORT, bridge_available
from segstudio.io.common import FormatError
from segstudio.io.registry import run_export, run_import
from tests.io.hostile import make_project, regions_of

# every character str.splitlines() breaks a line at, and two other controls
BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\t", "\x07"]
# names that are awkward but fit on a line: they must come back exactly
TRICKY = ["back\\", "# hash", 'quo"te', "yes", "123", "ünï cödé", "trailing\\n literal", "it's", "a:b"]

NATIVE_WITH_LISTS = ["labelmap", "voc", "yolo", "labelme"]
BRIDGE_WITH_LISTS = [f for f in BRIDGE_EXPORT if f != "segment_anything"]  # SA-1B holds no classes


def _project(root, names):
    p = make_project(root)
    rec = p.store.image_by_path("a.png")
    regs = []
    for i, n in enumerate(names):
        c = p.store.add_class(n)
        m = np.zeros((2, 2), bool)
        m[:] = True
        regs.append(Region(0, c.id, m, 3 * i % 60, 3 * (i // 20)))
    for r, rid in zip(regs, p.store.reserve_region_ids(len(regs)), strict=True):
        r.id = rid
    p.store.save_regions(rec.id, regs, status="done")
    return p


def _names_on(p, name="a.png"):
    by_id = {c.id: c.name for c in p.store.classes()}
    return sorted((r.x, r.y, by_id[r.class_id]) for r in regions_of(p, name))


def _formats():
    return NATIVE_WITH_LISTS + (BRIDGE_WITH_LISTS if bridge_available() else [])


def test_every_line_breaking_character_is_unlistable():
    breaks = [chr(i) for i in range(0x110000) if len(f"a{chr(i)}b".splitlines()) > 1]
    assert set(breaks) <= set(BREAKS)
    assert all(validate.unlistable(f"a{c}b") for c in BREAKS)
    assert not any(validate.unlistable(n) for n in TRICKY)


@pytest.mark.parametrize("fmt", _formats())
def test_export_refuses_a_line_breaking_class_name_naming_it(tmp_path, fmt):
    # CamVid with eleven classes, one holding U+2028, wrote a one-line class list before
    names = [f"class{k}" for k in range(10)] + ["road\u2028side"]
    p = _project(tmp_path, names)
    out = tmp_path / "out"
    with pytest.raises(FormatError) as e:
        run_export(fmt, p, out)
    assert repr("road\u2028side") in str(e.value) and "U+2028" in str(e.value) and "rename" in str(e.value)
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("fmt", NATIVE_WITH_LISTS)
@pytest.mark.parametrize("ch", BREAKS)
def test_every_break_character_is_refused_by_the_native_exporters(tmp_path, fmt, ch):
    p = _project(tmp_path, ["ok", f"bad{ch}name"])
    with pytest.raises(FormatError, match="U\\+%04X" % ord(ch)):
        run_export(fmt, p, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tricky_names_round_trip_exactly_through_label_maps(tmp_path):
    src = _project(tmp_path / "s", TRICKY)
    run_export("labelmap", src, tmp_path / "out")
    lines = (tmp_path / "out" / "class_names.txt").read_text(encoding="utf-8").split("\n")
    assert lines == ["_background_"] + TRICKY + [""]
    dst = make_project(tmp_path / "d")
    rep = run_import("labelmap", dst, tmp_path / "out")
    assert not rep.errors
    assert _names_on(dst) == _names_on(src)


def test_tricky_names_round_trip_exactly_through_yolo(tmp_path):
    src = _project(tmp_path / "s", TRICKY)
    run_export("yolo", src, tmp_path / "out")
    out = tmp_path / "out"
    assert yolo.read_names(out, out / "classes.txt") == TRICKY
    assert yolo.read_names(out, out / "data.yaml") == TRICKY
    for classes in ("classes.txt", "data.yaml"):
        dst = make_project(tmp_path / f"d-{classes}")
        rep = yolo.import_yolo(dst, out / "labels", out / classes)
        assert not rep.errors
        assert _names_on(dst) == _names_on(src)


def test_labelme_labels_file_lists_each_name_on_one_line(tmp_path):
    src = _project(tmp_path / "s", TRICKY)
    run_export("labelme", src, tmp_path / "out")
    lines = (tmp_path / "out" / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["__ignore__", "_background_"] + TRICKY


@pytest.mark.parametrize("fmt", ["cvat", "datumaro", "labelme_xml", "open_images", "coco_panoptic"])
def test_tricky_names_round_trip_exactly_through_the_bridge(tmp_path, fmt):
    pytest.importorskip("datumaro")
    src = _project(tmp_path / "s", TRICKY)
    run_export(fmt, src, tmp_path / "out")
    dst = make_project(tmp_path / "d")
    back = run_import(fmt, dst, tmp_path / "out")
    assert not back.errors, back.errors
    assert {n for _, _, n in _names_on(dst)} == set(TRICKY)


@pytest.mark.parametrize("fmt", ["camvid", "cityscapes", "kitti_segmentation"])
def test_label_colors_formats_refuse_a_name_read_back_as_a_comment(tmp_path, fmt):
    pytest.importorskip("datumaro")
    src = _project(tmp_path / "s", ["road", "# hash"])
    with pytest.raises(FormatError, match="'# hash'.*rename"):
        run_export(fmt, src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


BRIDGE_ROUND_TRIP = ["cvat", "datumaro", "camvid", "kitti_segmentation", "labelme_xml"]


@pytest.mark.parametrize("fmt", BRIDGE_ROUND_TRIP)
def test_eleven_classes_round_trip_through_the_bridge(tmp_path, fmt):
    pytest.importorskip("datumaro")
    # no spaces: label_colors.txt formats write them as underscores (and say so)
    names = [f"c{k}" for k in range(8)] + ["back\\slash", "ünï", "it's"]
    src = _project(tmp_path / "s", names)
    rep = run_export(fmt, src, tmp_path / "out")
    assert not rep.errors
    dst = make_project(tmp_path / "d")
    back = run_import(fmt, dst, tmp_path / "out")
    assert not back.errors, back.errors
    got = {n for _, _, n in _names_on(dst)}
    assert got == set(names)


# ----------------------------------------------------------------------------- image names in list files
# VOC's ImageSets/Segmentation/*.txt and CamVid's default.txt list images one a line: an image
# file named with a line break (legal on Linux) would split its line and read back as two images.
# The export refuses, naming the image, before it writes anything (leaving it out silently would
# make a dataset that lacks it).
IMAGE_LIST_FORMATS = ["voc"] + (["camvid"] if bridge_available() else [])


@pytest.mark.parametrize("fmt", IMAGE_LIST_FORMATS)
@pytest.mark.parametrize("ch", ["\u2028", "\n", "\x85"])
def test_export_refuses_an_image_name_that_would_split_its_list_line(tmp_path, fmt, ch):
    bad = f"a{ch}b.png"
    p = make_project(tmp_path, names=("ok.png", bad))
    c = p.store.add_class("thing")
    for rec in p.store.images():
        r = Region(0, c.id, np.ones((4, 4), bool), 2, 2)
        r.id = p.store.reserve_region_ids(1)[0]
        p.store.save_regions(rec.id, [r], status="done")
    out = tmp_path / "out"
    with pytest.raises(FormatError) as e:
        run_export(fmt, p, out)
    msg = str(e.value)
    assert repr(bad) in msg and "U+%04X" % ord(ch) in msg and "rename" in msg, msg
    assert not out.exists()  # nothing written


def test_an_image_name_with_a_line_separator_exports_where_no_list_holds_it(tmp_path):
    # YOLO names images only by their file names: the image is exported as it is
    p = make_project(tmp_path, names=("a\u2028b.png",))
    rep = run_export("yolo", p, tmp_path / "out")
    assert rep.images == 1 and (tmp_path / "out" / "images" / "a\u2028b.png").is_file()


def test_camvid_refuses_an_image_name_with_a_quote_its_reader_takes_apart(tmp_path):
    # CamVid's default.txt quotes names with spaces; a '"' in a name made the export unreadable
    pytest.importorskip("datumaro")
    p = make_project(tmp_path, names=("ok.png", 'a"b.png'))
    with pytest.raises(FormatError, match="'a\"b.png'.*rename"):
        run_export("camvid", p, tmp_path / "out")
    assert not (tmp_path / "out").exists()
