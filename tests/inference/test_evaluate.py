"""evaluate_project with a model stand-in: which project classes are scored."""

import numpy as np
import pytest
from PIL import Image

from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.inference.training.evaluate import evaluate_project
from segstudio.inference.runtime.segmenter import Detection, Prediction


class FixedModel:
    """Answers every image with the same prediction (what a Segmenter's predict returns)."""

    def __init__(self, arch, classes, class_map=None, detections=()):
        self.arch, self.classes = arch, classes
        self.class_map, self.detections = class_map, list(detections)
        self.semantic = class_map is not None  # a class for every pixel, as UNetSegmenter.semantic

    def predict(self, image):
        h, w = image.shape[:2]
        if self.class_map is not None:
            return Prediction(w, h, 0.0, class_map=self.class_map,
                              confidence=np.full((h, w), 255, np.uint8))
        return Prediction(w, h, 0.0, _candidates=self.detections)


@pytest.fixture
def labelled(tmp_path):
    """A 20x20 image: the left half painted 'background', a 6x6 'cell' square on the right."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(d / "a.png")
    p = Project.open(d)
    bg, cell = p.store.add_class("background"), p.store.add_class("cell")
    rec = p.store.images()[0]
    regs = [Region(0, bg.id, np.ones((20, 10), bool), 0, 0, z=1),
            Region(0, cell.id, np.ones((6, 6), bool), 12, 4, z=2)]
    for r, i in zip(regs, p.store.reserve_region_ids(2), strict=True):
        r.id = i
    p.store.save_regions(rec.id, regs, status="done")
    yield p
    p.close()


def test_semantic_leaves_a_background_class_out(labelled):
    cmap = np.zeros((20, 20), np.uint8)
    cmap[4:10, 12:18] = 1  # the cell, exactly
    rep = evaluate_project(labelled, FixedModel("unet", ["cell"], class_map=cmap))
    m = rep.metrics
    assert set(m["per_class_iou"]) == {"background", "cell"}  # 'background' is label 0, not a class
    assert m["per_class_iou"]["cell"] == 1.0 and m["per_class_iou"]["background"] == 1.0
    assert m["mean_iou"] == 1.0 and m["pixel_accuracy"] == 1.0


def test_semantic_background_class_pixels_are_background(labelled):
    cmap = np.zeros((20, 20), np.uint8)
    cmap[4:10, 12:18] = 1
    cmap[0:5, 0:5] = 1  # 25 'background' pixels called cell: a mistake, not a second class's hit
    m = evaluate_project(labelled, FixedModel("unet", ["cell"], class_map=cmap)).metrics
    assert m["per_class_iou"]["cell"] == pytest.approx(36 / 61)
    assert m["pixel_accuracy"] == pytest.approx(375 / 400)


def test_instances_leave_a_background_class_out(labelled):
    mask = np.ones((6, 6), bool)
    rep = evaluate_project(labelled, FixedModel("maskrcnn", ["cell"], detections=[Detection(1, mask, 12, 4, 0.9)]))
    assert rep.metrics["instances"] == 1  # the cell; the background region is no instance
    assert rep.metrics["mask_AP"] == pytest.approx(1.0)
