"""What the command line says about an import that rejected annotations, and class names that
could break a line-based class list."""

import json

import numpy as np

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.region import Region
from tests.conftest import make_image


def test_cli_names_images_whose_annotations_were_rejected(tmp_path, capsys):
    d = tmp_path / "imgs"
    make_image(d / "a.png", 40, 30, seed=1)
    make_image(d / "b.png", 40, 30, seed=2)
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                       {"id": 2, "file_name": "b.png", "width": 40, "height": 30}],
            "categories": [{"id": 1, "name": "cell"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 20, 20]]},
                {"id": 2, "image_id": 2, "category_id": 1, "segmentation": {"size": [30, 40], "counts": [5, 3]}},
                {"id": 3, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, float("nan"), 5, 9, 9]]},
            ]}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(coco))  # json writes NaN as a bare literal, as hostile files do
    code = main(["import", str(d), "--format", "coco", str(src)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 annotations rejected" in out
    assert "not marked done (annotations rejected): b.png" in out
    p = Project.open(d)
    try:
        assert p.store.image_by_path("a.png").status == "done"
        assert p.store.image_by_path("b.png").status == "new"
        assert p.store.region_count() == 1
    finally:
        p.close()


def test_labelme_export_refuses_a_class_name_that_would_split_labels_txt(tmp_path, capsys):
    d = tmp_path / "imgs"
    make_image(d / "a.png", 40, 30)
    p = Project.open(d)
    try:
        c = p.store.add_class("two\nlines\\")
        r = Region(p.store.reserve_region_ids(1)[0], c.id, np.ones((4, 4), bool), 2, 2)
        p.store.save_regions(p.store.images()[0].id, [r], status="done")
    finally:
        p.close()
    assert main(["export", str(d), "--format", "labelme", "--out", str(tmp_path / "lm")]) == 2
    err = capsys.readouterr().err
    assert "'two\\nlines\\\\'" in err and "rename the class" in err
    assert not (tmp_path / "lm").exists()
