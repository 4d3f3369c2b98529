"""PNG label maps: one PNG per image, the class value of each pixel.

Values: 0 background; classes 1..N in class order; ignore pixels (regions of an ignore class)
255 in 8-bit maps and 65535 in 16-bit maps. Maps are `P` mode PNGs with the class colours as
palette while the classes fit in 8 bits (N <= 254), 16-bit grayscale (`I;16`) beyond. A
`class_names.txt` beside them lists `_background_` then the classes, line k = value k (the
layout labelme writes). Overlapping regions: the higher z wins.

Import reads palette PNGs as indices (never as colours), 8- and 16-bit grayscale as values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from segstudio.core import maskops
from segstudio.core.classes import read_class_file
from segstudio.core.labelmap import ignore_value, label_dtype, paint_label_map
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, matched_files,
                                 RegionWriter, Report, atomic_dir, count_export_items, export_classes,
                                 export_items, imported_region, palette_bytes, relative_stem, step,
                                 write_png)

CLASS_NAMES_FILE = "class_names.txt"


def label_map_image(values: np.ndarray, colors: list[tuple[int, int, int]]) -> Image.Image:
    if values.dtype == np.uint8:
        im = Image.fromarray(values)
        im.putpalette(palette_bytes(colors))  # an L image with a palette becomes P, values kept
        return im
    return Image.fromarray(values.astype(np.uint16))


def export_labelmap(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                    progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    dtype = label_dtype(len(real))
    ign = ignore_value(dtype)
    value_of = dict(value_of)
    value_of.update({c.id: ign for c in ignore})
    colors = [c.color for c in real]
    total = count_export_items(project, statuses)
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            values = paint_label_map(item.regions, item.width, item.height, value_of, dtype)
            write_png(tmp / (relative_stem(item.record) + ".png"), label_map_image(values, colors))
            report.images += 1
            report.regions += len(item.regions)
        write_class_names(tmp / CLASS_NAMES_FILE, [c.name for c in real])
    return report


def write_class_names(path: Path, names: list[str]) -> None:
    path.write_text("\n".join(["_background_"] + names) + "\n", encoding="utf-8")


def read_label_png(path: Path) -> np.ndarray:
    """Values of a label-map PNG: palette indices for P mode, raw values for L / I;16 / I."""
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L"):
                return np.array(im)  # P: indices, not colours
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.array(im).astype(np.int64)
            if im.mode == "1":
                return np.array(im).astype(np.uint8)
            raise FormatError(f"{im.mode} image: a label map must hold class values (palette or "
                              "grayscale PNG), not colours")
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(f"cannot read label map: {e}") from None


def import_labelmap(project: Project, source: str | Path, classes_file: str | Path | None = None,
                    status: str | None = DONE, progress: Progress | None = None,
                    cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    if not src.is_dir():
        raise FormatError(f"{src} is not a folder of label-map PNGs")
    if classes_file is None and (src / CLASS_NAMES_FILE).exists():
        classes_file = src / CLASS_NAMES_FILE
    mapper = ClassMapper(project)
    value_class: dict[int, int] = {}
    ignore_cls = None
    if classes_file is not None:
        try:
            entries = read_class_file(classes_file)
        except OSError as e:
            raise FormatError(f"cannot read class list {classes_file}: {e}") from None
        v = 1
        for e in entries:
            c = mapper.get(e.name, e.color, ignore=e.ignore)
            if e.ignore:
                ignore_cls = c
            else:
                value_class[v] = c.id
                v += 1
    report = Report()
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    files = sorted(p for p in src.rglob("*.png") if not p.name.startswith("."))
    for rel, f, rec in matched_files(matcher, src, files, report, progress, cancel):
        try:
            values = read_label_png(f)
            w, h = project.image_size(rec)
        except Exception as e:
            report.errors.append((rel, str(e)))
            continue
        if values.shape != (h, w):
            report.errors.append((rel, f"label map is {values.shape[1]}x{values.shape[0]}, image is {w}x{h}"))
            continue
        ign = 255 if values.dtype == np.uint8 else 65535
        regions = []
        for v in np.unique(values):
            v = int(v)
            if v == 0:
                continue
            if v == ign and v not in value_class:
                if ignore_cls is None:
                    ignore_cls = mapper.get("__ignore__", ignore=True)
                cid = ignore_cls.id
            elif v in value_class:
                cid = value_class[v]
            else:
                cid = mapper.get(f"class_{v}").id
                value_class[v] = cid
                report.notes.append(f"value {v} has no name in the class list; imported as class_{v}")
            c = maskops.crop_to_content(values == v)
            if c is not None:
                regions.append(imported_region(cid, *c))
        writer.add(rec, regions)
    return report
