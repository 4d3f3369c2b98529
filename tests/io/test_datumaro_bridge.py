"""The formats segstudio reads and writes through datumaro (the [formats] extra): round trips of
coco128 through CVAT XML and Cityscapes, datumaro's own test assets, hostile sources, and the one
line a user gets without the extra."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.labelmap import z_sorted
from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS
from segstudio.io import yolo
from segstudio.io.bridge_formats import BRIDGE_EXPORT, BRIDGE_IMPORT
from segstudio.io.common import FormatError
from segstudio.io.registry import run_export, run_import
from tests.conftest import make_image, shared


def test_without_datumaro_each_bridge_format_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datumaro", None)  # import datumaro now fails
    make_image(tmp_path / "imgs" / "a.png")
    p = Project.open(tmp_path / "imgs", tmp_path / "p.db")
    for fmt in BRIDGE_IMPORT:
        with pytest.raises(FormatError, match=r"needs datumaro: pip install -e \"\.\[formats\]\""):
            run_import(fmt, p, tmp_path / "imgs")
    for fmt in BRIDGE_EXPORT:
        with pytest.raises(FormatError, match=r"\[formats\]"):
            run_export(fmt, p, tmp_path / f"out-{fmt}")
        assert not (tmp_path / f"out-{fmt}").exists()


def test_cli_without_datumaro_one_line(tmp_path, monkeypatch, capsys):
    from segstudio.cli import main
    monkeypatch.setitem(sys.modules, "datumaro", None)
    make_image(tmp_path / "imgs" / "a.png")
    rc = main(["import", str(tmp_path / "imgs"), "--format", "cityscapes", str(tmp_path / "imgs"),
               "--project", str(tmp_path / "p.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "[formats]" in err[0]


dm = pytest.importorskip("datumaro")


def _coco128(tmp_path) -> Project:
    base = shared("coco128-seg")
    p = Project.open(base / "images", tmp_path / "src.db")
    yolo.import_yolo(p, base / "labels", base / "classes.txt")
    return p


def _regions_by_image(p: Project) -> dict[str, list]:
    names = {c.id: c.name for c in p.store.classes()}
    return {rec.path: z_sorted(p.store.regions(rec.id)) for rec in p.store.images()} | {"_names": names}


def _key(r, names):
    return (names[r.class_id], r.x, r.y, r.mask.shape, r.mask.tobytes(), r.iscrowd)


def test_coco128_round_trip_through_cvat_is_exact(tmp_path):
    src = _coco128(tmp_path)
    rep = run_export("cvat", src, tmp_path / "cvat", statuses=None)
    assert rep.images == 96 and not rep.errors
    dst = Project.open(shared("coco128-seg") / "images", tmp_path / "dst.db")
    back = run_import("cvat", dst, tmp_path / "cvat")
    assert not back.errors and not back.unmatched and back.rejected == 0
    a, b = _regions_by_image(src), _regions_by_image(dst)
    n = 0
    for path, regions in a.items():
        if path == "_names":
            continue
        assert sorted(_key(r, a["_names"]) for r in regions) == sorted(_key(r, b["_names"]) for r in b[path]), path
        assert [_key(r, a["_names"]) for r in regions] == [_key(r, b["_names"]) for r in b[path]]  # z order too
        n += len(regions)
    assert n == src.store.region_count() == dst.store.region_count() > 600


def _flat(regions, names, h, w, merged_classes=()):
    """What a label map can hold: per pixel, the class and which region is on top (one id for
    all regions of a class in `merged_classes`)."""
    cls = np.zeros((h, w), object)
    inst = np.full((h, w), -1, np.int64)
    for k, r in enumerate(z_sorted(regions)):
        win = (slice(r.y, r.y + r.mask.shape[0]), slice(r.x, r.x + r.mask.shape[1]))
        cls[win][r.mask] = names[r.class_id]
        inst[win][r.mask] = 100000 + r.class_id if names[r.class_id] in merged_classes else k
    return cls, inst


def _same_partition(a, b):
    """Two instance maps split the pixels the same way (numbers may differ)."""
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())}
    return len({x for x, _ in pairs}) == len(pairs) == len({y for _, y in pairs})


def test_coco128_round_trip_through_cityscapes_is_exact(tmp_path):
    src = _coco128(tmp_path)
    rep = run_export("cityscapes", src, tmp_path / "cs", statuses=None)
    assert rep.images == 96 and not rep.errors
    assert list((tmp_path / "cs" / "gtFine" / "default").glob("*_gtFine_instanceIds.png"))
    dst = Project.open(shared("coco128-seg") / "images", tmp_path / "dst.db")
    back = run_import("cityscapes", dst, tmp_path / "cs")
    assert not back.errors and not back.unmatched
    assert any("underscores" in n for n in rep.notes)  # "baseball bat": label files split at spaces
    a, b = _regions_by_image(src), _regions_by_image(dst)
    a["_names"] = {k: "_".join(v.split()) for k, v in a["_names"].items()}
    # 16-bit instance ids (class x 1000 + instance) hold 65 classes with instances: coco128 has 69
    # classes, 44 of them twice or more in an image; those take the first labels, so nothing merges
    assert not any("16-bit" in n for n in rep.notes)
    merged: set = set()
    checked = 0
    for rec in src.store.images():
        w, h = src.image_size(rec)
        ca, ia = _flat(a[rec.path], a["_names"], h, w, merged)
        cb, ib = _flat(b[rec.path], b["_names"], h, w, merged)
        assert (ca == cb).all(), rec.path  # every pixel's class
        assert _same_partition(ia, ib), rec.path  # every visible instance, pixel for pixel
        checked += 1
    assert checked == 96 and dst.store.region_count() > 500


def test_cityscapes_past_65_classes_with_instances_merge_and_say_so(tmp_path):
    base = tmp_path / "imgs"
    make_image(base / "a.png", 64, 48)
    p = Project.open(base, tmp_path / "p.db")
    from segstudio.core.region import Region
    regions = []
    for k in range(70):  # 70 classes, each twice in the image: 5 cannot keep instance ids
        c = p.store.ensure_class(f"c{k}")
        for j in range(2):
            m = np.zeros((1, 1), bool)
            m[0, 0] = True
            regions.append(Region(p.store.new_region_id(), c.id, m, k % 64, (k // 64) * 2 + j * 20))
    p.store.save_regions(p.store.images()[0].id, regions, status=DONE)
    rep = run_export("cityscapes", p, tmp_path / "cs")
    assert any("16-bit" in n and "10 regions" in n for n in rep.notes), rep.notes
    q = Project.open(base, tmp_path / "q.db")
    run_import("cityscapes", q, tmp_path / "cs")
    assert q.store.region_count() == 65 * 2 + 5  # 65 classes x 2 instances, 5 classes x 1 merged region


FIXTURES = [  # (format, folder under format-fixtures, at least this many regions, annotations refused)
    ("cvat", "cvat_dataset/for_images/export_task", 1, 0),
    ("cityscapes", "cityscapes_dataset/dataset", 4, 0),
    ("ade20k", "ade20k2020_dataset/dataset", 4, 0),
    ("camvid", "camvid_dataset", 4, 0),
    ("mapillary_vistas", "mapillary_vistas_dataset", 4, 0),
    # b.json's RLE is 10 wide and 5 high, its image 5 wide and 10 high: refused, by name
    ("segment_anything", "segment_anything_dataset", 1, 1),
    ("voc_masks", "voc_dataset/voc_dataset1", 1, 0),
    ("labelme_xml", "labelme_dataset", 3, 0),
    ("semantic_masks", "common_semantic_segmentation_dataset/dataset", 2, 0),
]


@pytest.mark.parametrize("fmt,folder,least,refused", FIXTURES)
def test_datumaro_test_assets_import(tmp_path, fmt, folder, least, refused):
    src = shutil.copytree(shared("format-fixtures", folder), tmp_path / "data")
    p = Project.open(src, tmp_path / "p.db")
    rep = run_import(fmt, p, src)
    assert len(rep.errors) == rep.rejected == refused, rep.errors
    assert all("the image" in msg for _, msg in rep.errors)
    assert rep.regions >= least and p.store.region_count() == rep.regions
    for rec in p.store.images():
        w, h = p.image_size(rec)
        for r in p.store.regions(rec.id):
            assert 0 <= r.x and 0 <= r.y and r.x + r.mask.shape[1] <= w and r.y + r.mask.shape[0] <= h
            assert r.mask.any()
    assert {rec.status for rec in p.store.images() if p.store.regions(rec.id)} <= {DONE, IN_PROGRESS}


def _cvat_xml(points: list[str], w=64, h=48) -> str:
    polys = "".join(f'<polygon label="thing" occluded="0" source="manual" points="{pt}" z_order="0"/>'
                    for pt in points)
    return ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task><labels>'
            '<label><name>thing</name><attributes/></label></labels></task></meta>'
            f'<image id="0" name="a.png" width="{w}" height="{h}">{polys}</image></annotations>')


def test_cvat_hostile_polygons_are_rejected_one_by_one(tmp_path):
    make_image(tmp_path / "imgs" / "a.png", 64, 48)
    p = Project.open(tmp_path / "imgs", tmp_path / "p.db")
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(_cvat_xml([
        "10,10;40,10;40,30", "nan,1;5,5;9,9", "1e300,0;0,1e300;5,5", "inf,inf;1,1;2,2", "-5,-5;500,-5;500,500"]))
    before = (tmp_path / "imgs" / "a.png").read_bytes()
    rep = run_import("cvat", p, src)  # no images/ beside the XML: read against the project's folder
    assert (tmp_path / "imgs" / "a.png").read_bytes() == before  # the staging links went, the images stay
    assert sorted(x.name for x in (tmp_path / "imgs").iterdir()) == ["a.png"]
    rec = p.store.images()[0]
    assert p.store.image(rec.id).status == IN_PROGRESS  # some of its annotations were refused
    assert rep.rejected == 3 and len(rep.errors) == 3
    regions = p.store.regions(rec.id)
    assert len(regions) == 2 and all(r.x + r.mask.shape[1] <= 64 and r.y + r.mask.shape[0] <= 48 for r in regions)


def test_cvat_mask_on_a_declared_giant_image_is_refused_before_decoding(tmp_path):
    make_image(tmp_path / "imgs" / "a.png", 64, 48)
    p = Project.open(tmp_path / "imgs", tmp_path / "p.db")
    (tmp_path / "cvat").mkdir()
    xml = _cvat_xml([], w=200000, h=200000).replace(
        "</image>", '<mask label="thing" source="manual" occluded="0" rle="3, 5, 2" left="1" top="1" '
                    'width="5" height="2" z_order="0"/><polygon label="thing" occluded="0" source="manual" '
                    'points="1,1;20,1;20,20" z_order="0"/></image>')
    (tmp_path / "cvat" / "annotations.xml").write_text(xml)
    rep = run_import("cvat", p, tmp_path / "cvat")  # a 200000 x 200000 canvas would be 40 GB
    assert rep.rejected == 1 and "200000x200000" in rep.errors[0][1]
    assert len(p.store.regions(p.store.images()[0].id)) == 1  # the polygon, clipped to the image


def test_broken_sources_are_one_clear_error(tmp_path):
    make_image(tmp_path / "imgs" / "a.png")
    p = Project.open(tmp_path / "imgs", tmp_path / "p.db")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "annotations.xml").write_text("<annotations><image id='0' name='a.png' width='64'")  # cut short
    with pytest.raises(FormatError, match="cannot read"):
        run_import("cvat", p, bad)
    with pytest.raises(FormatError, match="cannot read"):
        run_import("cityscapes", p, tmp_path / "imgs")  # not a Cityscapes folder
    assert p.store.region_count() == 0


coord = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 6, 10 ** 6))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(coord, coord), min_size=0, max_size=8), min_size=1, max_size=5))
def test_cvat_generated_polygons_never_crash_or_escape_the_image(tmp_path_factory, polys):
    d = tmp_path_factory.mktemp("gen")
    make_image(d / "imgs" / "a.png", 64, 48)
    p = Project.open(d / "imgs", d / "p.db")
    (d / "cvat").mkdir()
    pts = [";".join(f"{x!r},{y!r}".replace("nan", "nan") for x, y in poly) for poly in polys]
    (d / "cvat" / "annotations.xml").write_text(_cvat_xml(pts))
    try:
        run_import("cvat", p, d / "cvat")
    except FormatError:
        return  # datumaro refused the whole file (say, a polygon it cannot parse): one clear error
    for r in p.store.regions(p.store.images()[0].id):
        assert r.x >= 0 and r.y >= 0 and r.x + r.mask.shape[1] <= 64 and r.y + r.mask.shape[0] <= 48


def test_every_bridge_export_writes_and_reads_back(tmp_path):
    """Every export format datumaro writes for us: it lands atomically and, where datumaro reads
    it back, gives regions on every image that had some."""
    base = tmp_path / "imgs"
    for k in range(3):
        make_image(base / f"im{k}.png", 64, 48, seed=k)
    p = Project.open(base, tmp_path / "p.db")
    from segstudio.core.region import Region
    cls = p.store.ensure_class("car")
    for rec in p.store.images():
        m = np.zeros((20, 30), bool)
        m[2:18, 3:27] = True
        m[8:12, 10:15] = False  # a hole
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, m, 5, 6)], status=DONE)
    for fmt in BRIDGE_EXPORT:
        out = tmp_path / f"x-{fmt}"
        rep = run_export(fmt, p, out)
        assert rep.images == 3 and out.is_dir() and any(out.rglob("*")), fmt
        if fmt not in BRIDGE_IMPORT:
            continue
        q = Project.open(base, tmp_path / f"q-{fmt}.db")
        back = run_import(fmt, q, out)
        assert back.regions >= 3 and not back.errors and not back.unmatched, (fmt, back.errors, back.unmatched)
