import json

import numpy as np
import pytest
from PIL import Image

from segstudio.core.labelmap import paint_label_map, z_sorted
from segstudio.io import coco, instancemap, labelmap, labelme, voc, yolo
from segstudio.io.common import Cancelled
from tests.io.helpers import annotated_project, fresh_copy, iou, masks_by_image


@pytest.fixture
def src(tmp_path):
    p = annotated_project(tmp_path / "src")
    yield p
    p.close()


def _sorted(ms):
    return sorted(ms, key=lambda t: (t[0], int(t[1].sum()), t[2]))


def test_coco_rle_roundtrip_exact(src, tmp_path):
    rep = coco.export_coco(src, tmp_path / "out" / "c.json")
    assert rep.images == 3 and rep.regions == 12  # ignore regions left out
    dst = fresh_copy(src, tmp_path / "dst")
    rep2 = coco.import_coco(dst, tmp_path / "out" / "c.json")
    assert rep2.regions == 12 and not rep2.errors and not rep2.unmatched
    a, b = masks_by_image(src, include_ignore=False), masks_by_image(dst)
    for k in a:
        for (n1, m1, c1), (n2, m2, c2) in zip(_sorted(a[k]), _sorted(b[k])):
            assert n1 == n2 and c1 == c2 and np.array_equal(m1, m2)
    assert all(s == "done" for s in (r.status for r in dst.store.images()))


def test_coco_fields(src, tmp_path):
    coco.export_coco(src, tmp_path / "c.json")
    d = json.loads((tmp_path / "c.json").read_text())
    assert [c["id"] for c in d["categories"]] == [1, 2]
    for a in d["annotations"]:
        from pycocotools import mask as mu
        rle = dict(a["segmentation"], counts=a["segmentation"]["counts"].encode())
        assert a["area"] == int(mu.area(rle))
        assert a["bbox"] == [float(v) for v in mu.toBbox(rle)]
    assert sorted({a["iscrowd"] for a in d["annotations"]}) == [0, 1]


def test_coco_polygons_faithful_or_rle(src, tmp_path):
    rep = coco.export_coco(src, tmp_path / "p.json", polygons=True)
    d = json.loads((tmp_path / "p.json").read_text())
    kinds = {type(a["segmentation"]).__name__ for a in d["annotations"]}
    assert kinds == {"list", "dict"}  # ring with a hole and crowd regions stay RLE
    for a in d["annotations"]:
        if isinstance(a["segmentation"], list):
            assert all(len(p) >= 6 for p in a["segmentation"])
    dst = fresh_copy(src, tmp_path / "dst")
    coco.import_coco(dst, tmp_path / "p.json")
    a, b = masks_by_image(src, include_ignore=False), masks_by_image(dst)
    for k in a:
        for (n1, m1, _), (n2, m2, _) in zip(_sorted(a[k]), _sorted(b[k])):
            assert n1 == n2 and iou(m1, m2) >= 0.99
    assert rep.notes


def test_reimport_does_not_duplicate(src, tmp_path):
    coco.export_coco(src, tmp_path / "c.json")
    dst = fresh_copy(src, tmp_path / "dst")
    coco.import_coco(dst, tmp_path / "c.json")
    n = dst.store.region_count()
    rep = coco.import_coco(dst, tmp_path / "c.json")
    assert dst.store.region_count() == n and rep.regions == 0 and rep.skipped_duplicates == n


def test_labelmap_roundtrip(src, tmp_path):
    labelmap.export_labelmap(src, tmp_path / "lm")
    names = (tmp_path / "lm" / "class_names.txt").read_text().split()
    assert names == ["_background_", "cat", "dog"]
    im = Image.open(tmp_path / "lm" / "im0.png")
    assert im.mode == "P"
    v = np.array(im)
    assert set(np.unique(v)) <= {0, 1, 2, 255} and 255 in v
    dst = fresh_copy(src, tmp_path / "dst")
    rep = labelmap.import_labelmap(dst, tmp_path / "lm")
    assert not rep.errors and not rep.unmatched and rep.images == 3
    for rec in src.store.images():
        w, h = src.image_size(rec)
        classes = src.store.classes()
        vo = {c.id: i for i, c in enumerate([c for c in classes if not c.ignore], 1)}
        vo.update({c.id: 255 for c in classes if c.ignore})
        a = paint_label_map(src.store.regions(rec.id), w, h, vo)
        rec2 = dst.store.image_by_path(rec.path)
        dcls = dst.store.classes()
        vo2 = {c.id: i for i, c in enumerate([c for c in dcls if not c.ignore], 1)}
        vo2.update({c.id: 255 for c in dcls if c.ignore})
        b = paint_label_map(dst.store.regions(rec2.id), w, h, vo2)
        assert np.array_equal(a, b)


def test_labelmap_16_bit_when_many_classes(tmp_path):
    from segstudio.core.project import Project
    from segstudio.core.region import Region
    from tests.conftest import make_image
    make_image(tmp_path / "i" / "a.png", 40, 30)
    p = Project.open(tmp_path / "i")
    for k in range(300):
        p.store.add_class(f"c{k}")
    rec = p.store.images()[0]
    p.store.save_regions(rec.id, [Region(p.store.new_region_id(), 300, np.ones((3, 3), bool), 1, 1)])
    labelmap.export_labelmap(p, tmp_path / "lm")
    v = np.array(Image.open(tmp_path / "lm" / "a.png"))
    assert v.dtype == np.uint16 and v.max() == 300


def test_instancemap(src, tmp_path):
    instancemap.export_instancemap(src, tmp_path / "ins")
    idx = json.loads((tmp_path / "ins" / "instances.json").read_text())
    rec = src.store.images()[0]
    v = np.array(Image.open(tmp_path / "ins" / "im0.png"))
    regs = [r for r in z_sorted(src.store.regions(rec.id)) if r.class_id != 3]
    assert len(idx["im0.png"]) == len(regs) == 4
    top = regs[-1]  # highest z keeps all its pixels
    assert (v[top.y:top.y + top.mask.shape[0], top.x:top.x + top.mask.shape[1]][top.mask] == len(regs)).all()
    assert 255 in v  # ignore region


def test_labelme_roundtrip_exact(src, tmp_path):
    labelme.export_labelme(src, tmp_path / "lm")
    doc = json.loads((tmp_path / "lm" / "im0.json").read_text())
    assert doc["imagePath"] == "im0.png" and doc["imageData"] is None
    assert {s["shape_type"] for s in doc["shapes"]} == {"polygon", "mask"}
    assert (tmp_path / "lm" / "sub" / "ïmage ü.png").exists()
    dst = fresh_copy(src, tmp_path / "dst")
    rep2 = labelme.import_labelme(dst, tmp_path / "lm")
    assert not rep2.errors and not rep2.unmatched
    a, b = masks_by_image(src), masks_by_image(dst)
    for k in a:
        assert len(a[k]) == len(b[k])
        for (n1, m1, _), (n2, m2, _) in zip(_sorted(a[k]), _sorted(b[k])):
            assert n1 == n2 and np.array_equal(m1, m2)


def test_yolo_roundtrip(src, tmp_path):
    from segstudio.core import maskops
    yolo.export_yolo(src, tmp_path / "y")
    assert (tmp_path / "y" / "data.yaml").exists()
    assert (tmp_path / "y" / "classes.txt").read_text().split() == ["cat", "dog"]
    lines = (tmp_path / "y" / "labels" / "im0.txt").read_text().splitlines()
    assert len(lines) == 5  # the two-part region gives two lines
    dst = fresh_copy(src, tmp_path / "dst")
    rep2 = yolo.import_yolo(dst, tmp_path / "y" / "labels", tmp_path / "y" / "classes.txt")
    assert not rep2.errors and not rep2.unmatched and rep2.images == 3
    for rec in src.store.images():
        w, h = src.image_size(rec)
        rec2 = dst.store.image_by_path(rec.path)
        for cname in ("cat", "dog"):
            cid = src.store.class_by_name(cname).id
            a = np.zeros((h, w), bool)
            for r in src.store.regions(rec.id):
                if r.class_id == cid:
                    a |= maskops.fill_holes(r.full_mask(w, h))
            cid2 = dst.store.class_by_name(cname).id
            b = np.zeros((h, w), bool)
            for r in dst.store.regions(rec2.id):
                if r.class_id == cid2:
                    b |= r.full_mask(w, h)
            assert iou(a, b) >= 0.97, (rec.path, cname, iou(a, b))


def test_yolo_data_yaml_names(tmp_path):
    (tmp_path / "data.yaml").write_text("path: x\nnames:\n  0: person\n  1: 'traffic light'\n")
    assert yolo.read_names(tmp_path, tmp_path / "data.yaml") == ["person", "traffic light"]
    (tmp_path / "d2.yaml").write_text("names: [a, b, 'c d']\n")
    assert yolo.read_names(tmp_path, tmp_path / "d2.yaml") == ["a", "b", "c d"]


def test_voc_layout(src, tmp_path):
    voc.export_voc(src, tmp_path / "voc")
    root = tmp_path / "voc"
    jpgs = sorted(p.name for p in (root / "JPEGImages").iterdir())
    assert jpgs == ["im0.jpg", "im1.jpg", "sub__ïmage ü.jpg"]
    for d in ("SegmentationClass", "SegmentationObject"):
        assert len(list((root / d).iterdir())) == 3
    tv = (root / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split("\n")
    assert len([t for t in tv if t]) == 3
    assert Image.open(root / "SegmentationClass" / "im0.png").mode == "P"


def test_export_is_atomic_on_cancel_and_error(src, tmp_path):
    out = tmp_path / "lm"
    labelmap.export_labelmap(src, out)
    before = sorted(p.name for p in out.iterdir())
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2
    with pytest.raises(Cancelled):
        labelmap.export_labelmap(src, out, cancel=cancel)
    assert sorted(p.name for p in out.iterdir()) == before  # the old export is untouched
    assert [p for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    with pytest.raises(Cancelled):
        coco.export_coco(src, tmp_path / "new.json", cancel=lambda: True)
    assert not (tmp_path / "new.json").exists()


def test_status_filter(src, tmp_path):
    rec = src.store.images()[0]
    src.store.set_status(rec.id, "in_progress")
    rep = coco.export_coco(src, tmp_path / "c.json", statuses=("done",))
    assert rep.images == 2


def test_bad_inputs_give_clear_errors(src, tmp_path):
    from segstudio.io.common import FormatError
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        coco.import_coco(src, bad)
    bad.write_text('{"foo": 1}')
    with pytest.raises(FormatError, match="not a COCO file"):
        coco.import_coco(src, bad)
    lm = tmp_path / "lmj"
    lm.mkdir()
    (lm / "im0.json").write_text("[1, 2")
    (lm / "im1.json").write_text(json.dumps({"shapes": [{"label": "x", "points": [[0, 0]], "shape_type": "polygon"}],
                                             "imagePath": "im1.png"}))
    rep = labelme.import_labelme(src, lm)
    assert len(rep.errors) == 2  # a broken file and a bad shape; the folder goes on
    n = src.store.region_count()
    assert n > 0
