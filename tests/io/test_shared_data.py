"""Importers and exporters against real third-party files (../shared/data; skipped where absent)."""

import contextlib
import io
import json
import shutil

import numpy as np
from PIL import Image

from segstudio.core.project import Project
from segstudio.io import coco, labelmap, labelme, yolo
from tests.conftest import shared


def _copy_images(src, dst, pattern="*.jpg"):
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.glob(pattern):
        shutil.copy(p, dst / p.name)
    return dst


def test_labelme_instances_to_coco_match_labelme_voc_pngs(tmp_path):
    base = shared("labelme-examples", "instance_segmentation")
    folder = _copy_images(base / "data_annotated", tmp_path / "imgs")
    p = Project.open(folder)
    rep = labelme.import_labelme(p, base / "data_annotated")
    assert not rep.errors and rep.images == 3
    coco.export_coco(p, tmp_path / "c.json")
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO(str(tmp_path / "c.json"))
    checked = 0
    for img in c.imgs.values():
        stem = img["file_name"].rsplit(".", 1)[0]
        obj = np.array(Image.open(base / "data_dataset_voc" / "SegmentationObject" / f"{stem}.png"))
        anns = sorted(c.loadAnns(c.getAnnIds(imgIds=[img["id"]])), key=lambda a: a["id"])
        # labelme paints shapes in file order, later over earlier: do the same with ours
        ours = np.zeros(obj.shape, np.int32)
        for i, a in enumerate(anns, start=1):
            ours[c.annToMask(a) > 0] = i
        for v in np.unique(obj):
            if v in (0, 255):
                continue
            m = obj == v
            best = max(((ours == i) & m).sum() / ((ours == i) | m).sum() for i in range(1, len(anns) + 1))
            assert best >= 0.98, (stem, v, best)
            checked += 1
    assert checked >= 10


def test_coco128_yolo_import_keeps_every_instance(tmp_path):
    base = shared("coco128-seg")
    p = Project.open(base / "images", tmp_path / "p.db")
    rep = yolo.import_yolo(p, base / "labels", base / "classes.txt")
    n_lines = sum(len([ln for ln in f.read_text().splitlines() if ln.strip()])
                  for f in (base / "labels").glob("*.txt"))
    assert not rep.errors and not rep.unmatched
    assert p.store.region_count() == n_lines == rep.regions
    assert len(p.store.classes()) == 80
    # a COCO export of it, evaluated against itself, is perfect
    coco.export_coco(p, tmp_path / "c.json")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "c.json"))
        dets = [dict(a, score=1.0) for a in json.loads((tmp_path / "c.json").read_text())["annotations"]]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert abs(ev.stats[0] - 1.0) < 1e-9


def test_format_fixture_coco_keeps_crowd_rle(tmp_path):
    base = shared("format-fixtures", "coco_dataset", "coco")
    folder = tmp_path / "imgs"
    shutil.copytree(base / "images", folder)
    p = Project.open(folder)
    rep = coco.import_coco(p, base / "annotations" / "instances_val.json")
    rep2 = coco.import_coco(p, base / "annotations" / "instances_train.json")
    assert rep.images == 1 and rep.regions == 2
    crowd = [r for r in p.store.regions(p.store.image_by_path("val/b.jpg").id) if r.iscrowd]
    assert len(crowd) == 1 and crowd[0].area == 20 and crowd[0].mask.shape == (10, 2)
    assert rep2.notes  # bbox-only annotation imported as its box, and said so
    coco.export_coco(p, tmp_path / "out.json")
    d = json.loads((tmp_path / "out.json").read_text())
    crowd_out = [a for a in d["annotations"] if a["iscrowd"] == 1]
    assert len(crowd_out) == 1 and isinstance(crowd_out[0]["segmentation"], dict)


def test_labelme_embedded_image_data(tmp_path):
    base = shared("labelme-examples", "tutorial")
    src = tmp_path / "json"
    src.mkdir()
    shutil.copy(base / "apc2016_obj3.json", src)
    folder = tmp_path / "imgs"
    folder.mkdir()
    p = Project.open(folder)  # the image exists only inside the JSON
    rep = labelme.import_labelme(p, src)
    assert not rep.errors and rep.images == 1 and rep.regions == 4
    assert (folder / "apc2016_obj3.jpg").exists() and rep.notes
    names = {c.name for c in p.store.classes()}
    assert "shelf" in names and "mead_index_cards" in names


def test_labelme_semantic_label_pngs_import(tmp_path):
    base = shared("labelme-examples", "semantic_segmentation")
    folder = _copy_images(base / "data_annotated", tmp_path / "imgs")
    p = Project.open(folder)
    rep = labelmap.import_labelmap(p, base / "data_dataset_voc" / "SegmentationClass",
                                   base / "data_dataset_voc" / "class_names.txt")
    assert not rep.errors and rep.images == 3
    labelmap.export_labelmap(p, tmp_path / "out")
    for f in (base / "data_dataset_voc" / "SegmentationClass").glob("*.png"):
        theirs = np.array(Image.open(f))
        ours = np.array(Image.open(tmp_path / "out" / f.name))
        # same pixels per class name (class numbering follows the project's class order)
        names_t = (base / "data_dataset_voc" / "class_names.txt").read_text().split("\n")
        names_o = (tmp_path / "out" / "class_names.txt").read_text().split("\n")
        for v in np.unique(theirs):
            if v in (0, 255):
                assert np.array_equal(theirs == v, ours == v)
                continue
            assert np.array_equal(theirs == v, ours == names_o.index(names_t[v]))


def test_x_anylabeling_rectangles(tmp_path):
    base = shared("quirks", "x-anylabeling")
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(base / "demo.jpg", folder)
    p = Project.open(folder)
    rep = labelme.import_labelme(p, base / "demo.json")
    assert rep.regions >= 1 and rep.images == 1
