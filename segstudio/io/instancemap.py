"""Instance-id PNGs: each region its own id (1..N in z-order, 0 background), one PNG per image.

8-bit palette PNG while an image has fewer than 255 instances, 16-bit beyond. Regions of an
ignore class are written with the ignore value (255 / 65535), as VOC's SegmentationObject
does. `instances.json` maps, per image, each id to its class, source and score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from segstudio.core.classes import default_color
from segstudio.core.labelmap import IGNORE_8, IGNORE_16, z_sorted
from segstudio.core.project import Project
from segstudio.io.common import (CancelCheck, Progress, Report, atomic_dir, count_export_items,
                                 export_items, palette_bytes, relative_stem, step, write_png)
from segstudio.io.export_names import check_export_names, stem


def instance_map(regions, width: int, height: int, ignore_ids: set[int]) -> tuple[np.ndarray, list]:
    """(map, regions in id order): ids 1..N by z-order; ignore-class regions get the ignore value."""
    ordered = [r for r in z_sorted(regions) if r.mask.size]
    keep = [r for r in ordered if r.class_id not in ignore_ids]
    dtype = np.uint8 if len(keep) < IGNORE_8 else np.uint16
    ign = IGNORE_8 if dtype == np.uint8 else IGNORE_16
    ids = {r.id: i for i, r in enumerate(keep, start=1)}
    out = np.zeros((height, width), dtype=dtype)
    for r in ordered:
        v = ids.get(r.id, ign)
        h, w = r.mask.shape
        out[r.y:r.y + h, r.x:r.x + w][r.mask] = v
    return out, keep


def instance_png(values: np.ndarray) -> Image.Image:
    if values.dtype == np.uint8:
        im = Image.fromarray(values)
        im.putpalette(palette_bytes(default_color(i) for i in range(254)))
        return im
    return Image.fromarray(values)


def export_instancemap(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                       progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    classes = {c.id: c for c in project.store.classes()}
    ignore_ids = {c.id for c in classes.values() if c.ignore}
    index: dict[str, list] = {}
    total = count_export_items(project, statuses)
    check_export_names(project, statuses, "instancemap", lambda p: [stem(p) + ".png"])  # before a file is written
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            values, keep = instance_map(item.regions, item.width, item.height, ignore_ids)
            write_png(tmp / (relative_stem(item.record) + ".png"), instance_png(values))
            index[item.record.path] = [
                {"id": i, "class": classes[r.class_id].name if r.class_id in classes else None,
                 "source": r.source, "score": r.score, "iscrowd": bool(r.iscrowd)}
                for i, r in enumerate(keep, start=1)]
            report.images += 1
            report.regions += len(keep)
        (tmp / "instances.json").write_text(json.dumps(index, indent=1, ensure_ascii=False), encoding="utf-8")
    return report
