"""Model detections onto project regions. No torch here: the window uses it too.

The name -> class mapping itself is segstudio.io.common.ClassMapper, shared with importers."""

from __future__ import annotations

from segstudio.core.region import Region
from segstudio.inference.runtime.segmenter import Detection, Prediction
from segstudio.io.common import ClassMapper

__all__ = ["ClassMapper", "detection_region", "prediction_regions"]  # ClassMapper re-exported


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
