"""The YOLO-seg export read by Ultralytics itself, from wherever the folder is moved (runs only
where `ultralytics` is importable: it is not a dependency, and it brings the OpenCV build with
Qt that fights PySide6; with it, `pip install --no-deps ultralytics` and its other needs)."""

import os
import shutil

import pytest

from segstudio.core.project import Project
from segstudio.io import yolo
from tests.conftest import shared


@pytest.fixture
def ultralytics_offline(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")  # never reaches for the network
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-settings")))
    return pytest.importorskip("ultralytics")


def test_ultralytics_loads_every_segment_of_a_moved_export(tmp_path, ultralytics_offline, monkeypatch):
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    base = shared("coco128-seg")
    p = Project.open(base / "images", tmp_path / "p.db")
    yolo.import_yolo(p, base / "labels", base / "classes.txt")
    rep = yolo.export_yolo(p, tmp_path / "export")
    exported = sum(len([ln for ln in f.read_text().splitlines() if ln.strip()])
                   for f in (tmp_path / "export" / "labels").rglob("*.txt"))
    assert rep.images == 96 and exported >= p.store.region_count()  # a region may be several parts
    moved = tmp_path / "elsewhere" / "deeper" / "coco128-export"
    moved.parent.mkdir(parents=True)
    shutil.move(tmp_path / "export", moved)
    for cwd, arg in ((tmp_path, str(moved / "data.yaml")), (moved.parent, "coco128-export/data.yaml"),
                     (moved, "data.yaml")):
        monkeypatch.chdir(cwd)
        data = check_det_dataset(arg, autodownload=False)
        assert data["nc"] == 80 and os.path.samefile(data["train"], moved / "images")
        ds = build_yolo_dataset(get_cfg(overrides={"task": "segment", "imgsz": 320}), data["train"], batch=4,
                                data=data, mode="val")
        assert ds.use_segments and len(ds.labels) == 96
        assert sum(len(lb["segments"]) for lb in ds.labels) == exported
