"""Model classes onto project classes, by name. No torch here: the window uses it too."""

from __future__ import annotations

import threading
from typing import Sequence

from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.inference.segmenter import Detection, Prediction


class ClassMapper:
    """Model class index -> project class id, by name. Classes the project lacks are created on
    first use when `create` is set, else their detections are dropped (and counted)."""

    def __init__(self, project: Project, model_classes: Sequence[str], create: bool = True):
        self.store = project.store
        self.names = list(model_classes)
        self.create = create
        self.by_name = {c.name: c.id for c in self.store.classes()}
        self.lock = threading.Lock()
        self.dropped: dict[str, int] = {}

    def __call__(self, label: int) -> int | None:
        if not 1 <= label <= len(self.names):
            return None
        name = self.names[label - 1]
        if name in ("N/A", "__background__"):
            return None
        with self.lock:
            cid = self.by_name.get(name)
            if cid is None:
                if not self.create:
                    self.dropped[name] = self.dropped.get(name, 0) + 1
                    return None
                cid = self.store.ensure_class(name).id
                self.by_name[name] = cid
            return cid


def prediction_regions(pred: Prediction, mapper: ClassMapper, source: str, z0: int = 1) -> list[Region]:
    regions = []
    for k, d in enumerate(pred.detections()):
        cid = mapper(d.label)
        if cid is None:
            continue
        regions.append(detection_region(d, cid, source, z0 + k))
    return regions


def detection_region(d: Detection, class_id: int, source: str, z: int) -> Region:
    return Region(0, class_id, d.mask.copy(), d.x, d.y, z=z, source=source, score=round(d.score, 4))
