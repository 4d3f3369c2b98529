"""COCO instances JSON: import (polygons, RLE, crowd RLE) and export (RLE or polygons).

Export conventions: categories numbered from 1 in class order; `bbox` is pycocotools' toBbox
of the mask; `area` is the mask's pixel count; `iscrowd` as stored (0 for instances). With
`polygons=True` a region is written as polygons (one per connected part, parts under 3 points
dropped) when that is faithful; a region with holes, a crowd region, or one whose polygons
rasterise to IoU < POLYGON_MIN_IOU with its mask is written as RLE instead (COCO readers,
pycocotools included, accept both in one file). Ignore classes are not exported (COCO has no
ignore category). Before an export is reported done, the file is re-read with pycocotools and
every mask is checked against the store: RLE exactly (area, box and IoU = 1), polygons to
POLYGON_MIN_IOU.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segstudio import __version__
from segstudio.core import maskops, rle
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.export_target import check_file_target, check_placement
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress,
                                 RegionWriter, Report, atomic_file, export_classes, export_items,
                                 count_export_items, imported_region, step)

POLYGON_MIN_IOU = 0.9
SPOT_CHECKS = 64


# ============================================================================= import
def load_json(path: str | Path) -> dict:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(f"file not found: {p}") from None
    except UnicodeDecodeError:
        raise FormatError(f"{p.name} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FormatError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{p.name} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def import_coco(project: Project, source: str | Path, status: str | None = DONE,
                progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    data = load_json(source)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FormatError(f"{Path(source).name} is not a COCO file: no 'images' list")
    anns = data.get("annotations") or []
    if not isinstance(anns, list):
        raise FormatError("'annotations' must be a list")
    report = Report()
    classes = ClassMapper(project)
    cat_class: dict = {}
    for cat in sorted((c for c in data.get("categories") or [] if isinstance(c, dict)),
                      key=lambda c: (c.get("id") is None, c.get("id", 0))):
        name = str(cat.get("name") or f"category_{cat.get('id')}")
        if name.lower() in ("_background_", "background", "__background__"):
            continue
        cat_class[cat.get("id")] = classes.get(name, ignore=name == "__ignore__")
    by_image = defaultdict(list)
    for a in anns:
        if isinstance(a, dict):
            by_image[a.get("image_id")].append(a)
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    images = [im for im in data["images"] if isinstance(im, dict)]
    for k, im in enumerate(images):
        fname = str(im.get("file_name") or "")
        step(progress, cancel, k, len(images), fname)
        rec = matcher.match(fname)
        if rec is None:
            report.unmatched.append(fname)
            continue
        try:
            w, h = project.image_size(rec)
        except Exception as e:
            report.errors.append((fname, str(e)))
            continue
        cw, ch = im.get("width"), im.get("height")
        if cw and ch and (int(cw), int(ch)) != (w, h):
            report.errors.append((fname, f"COCO says {cw}x{ch} but the image is {w}x{h} "
                                         "(after EXIF orientation); skipped"))
            continue
        regions = []
        for a in by_image.get(im.get("id"), []):
            cls = cat_class.get(a.get("category_id"))
            if cls is None:
                report.errors.append((fname, f"annotation {a.get('id')}: unknown category {a.get('category_id')}"))
                continue
            try:
                mask, bbox_only = _annotation_mask(a, h, w)
            except (ValueError, TypeError, KeyError) as e:
                report.errors.append((fname, f"annotation {a.get('id')}: {e}"))
                continue
            if bbox_only:
                report.notes.append(f"{fname}: annotation {a.get('id')} has no segmentation; imported its box")
            c = maskops.crop_to_content(mask)
            if c is None:
                continue
            regions.append(imported_region(cls.id, c[0], c[1], c[2], iscrowd=bool(a.get("iscrowd", 0))))
        writer.add(rec, regions)
    step(progress, None, len(images), len(images))
    return report


def _annotation_mask(a: dict, h: int, w: int) -> tuple[np.ndarray, bool]:
    seg = a.get("segmentation")
    if seg:
        return rle.from_coco(seg, h, w), False
    bbox = a.get("bbox")
    if not bbox or len(bbox) != 4:
        raise ValueError("neither a segmentation nor a bbox")
    x, y, bw, bh = (float(v) for v in bbox)
    m = np.zeros((h, w), dtype=bool)
    m[max(0, int(round(y))):min(h, int(round(y + bh))), max(0, int(round(x))):min(w, int(round(x + bw)))] = True
    return m, True


# ============================================================================= export
def coco_output_path(out: str | Path) -> Path:
    """The JSON file an export to `out` writes: `out` itself, or annotations.json inside a folder."""
    out = Path(out)
    if out.suffix.lower() != ".json" and (out.is_dir() or not out.suffix):
        return out / "annotations.json"
    return out


def check_coco_target(out: str | Path, project: Project) -> Path:
    """The file an export to `out` writes, checked: never the image folder, inside it or above
    it (the folder given included), never a folder, never a file segstudio did not write."""
    path = coco_output_path(out)
    if path != Path(out):
        check_placement(Path(out), project)
    check_file_target(path, project)
    return path


def export_coco(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                polygons: bool = False, progress: Progress | None = None,
                cancel: CancelCheck | None = None) -> Report:
    out = check_coco_target(out, project)
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    categories = [{"id": v, "name": c.name, "supercategory": ""} for c, v in
                  ((c, value_of[c.id]) for c in real)]
    images, annotations = [], []
    expected: dict[int, tuple] = {}  # annotation id -> (rle, area, bbox, is_polygon)
    spot_checks: dict[int, tuple] = {}  # a sample decoded in full, pixel by pixel
    total = count_export_items(project, statuses)
    n_poly_fallback = 0
    for k, item in enumerate(export_items(project, statuses, report)):
        step(progress, cancel, k, total, item.record.path)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": item.record.path, "width": item.width,
                       "height": item.height})
        regions = [r for r in item.regions if r.class_id in value_of]
        # full-image RLE computed from the crops: the cost follows the regions, not the image
        encoded = rle.encode_placed_many([(r.mask, r.x, r.y) for r in regions], item.height, item.width)
        for r, enc in zip(regions, encoded):
            h, w = r.mask.shape
            area = int(np.count_nonzero(r.mask))
            bbox = [float(r.x), float(r.y), float(w), float(h)]  # crops are tight: this is toBbox
            seg = None
            if polygons and not r.iscrowd:
                seg = _polygons_for(r, enc, item.height, item.width)
                if seg is None:
                    n_poly_fallback += 1
            if seg is None:
                seg = {"size": [item.height, item.width], "counts": enc["counts"].decode("ascii")}
            ann_id = len(annotations) + 1
            attrs = {"source": r.source}
            if r.score is not None:
                attrs["score"] = float(r.score)
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": value_of[r.class_id],
                                "segmentation": seg, "area": area, "bbox": bbox, "iscrowd": int(r.iscrowd),
                                "attributes": attrs})
            expected[ann_id] = (enc, area, (r.x, r.y, w, h), isinstance(seg, list))
            if len(spot_checks) < SPOT_CHECKS and ann_id % 97 == 1:
                spot_checks[ann_id] = (r.mask.copy(), r.x, r.y)
    data = {
        "info": {"description": f"exported by segstudio {__version__}", "version": __version__,
                 "date_created": time.strftime("%Y-%m-%d %H:%M:%S")},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    with atomic_file(out, project) as tmp:
        # json.dumps runs the C encoder; json.dump would stream through the pure-Python one
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        step(progress, cancel, total, total, "verifying")
        verify_coco(tmp, expected, spot_checks)
    report.images = len(images)
    report.regions = len(annotations)
    if ignore:
        report.notes.append(f"ignore classes not exported: {', '.join(c.name for c in ignore)}")
    if polygons and n_poly_fallback:
        report.notes.append(f"{n_poly_fallback} regions written as RLE (holes or too small for a faithful polygon)")
    return report


def _polygons_for(r, enc_full: dict, height: int, width: int) -> list | None:
    """COCO polygons for a region, or None when polygons would not represent it faithfully."""
    if maskops.count_holes(r.mask) > 0:
        return None
    polys = []
    for c in maskops.edge_polygons(r.mask, r.x, r.y):
        if len(c) < 3:
            continue
        polys.append([round(float(v), 2) for v in c.reshape(-1)])
    if not polys:
        return None
    poly_rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    iou = float(mask_utils.iou([poly_rle], [enc_full], [0])[0][0])
    return polys if iou >= POLYGON_MIN_IOU else None


class ExportVerificationError(Exception):
    pass


def verify_coco(path: Path, expected: dict[int, tuple], spot_checks: dict[int, tuple] | None = None) -> None:
    """Re-read a written COCO file with pycocotools and compare every mask with what was meant:
    area and box against the stored crop, the mask against the RLE meant (IoU = 1), and for a
    sample, every pixel of the decoded mask against the stored crop."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    if set(coco.anns) != set(expected):
        raise ExportVerificationError("annotation ids read back differ from those written")
    for ann_id, (crop, x, y) in (spot_checks or {}).items():
        if expected[ann_id][3]:
            continue
        full = coco.annToMask(coco.anns[ann_id]).astype(bool)
        h, w = crop.shape
        if not np.array_equal(full[y:y + h, x:x + w], crop) or int(full.sum()) != int(crop.sum()):
            raise ExportVerificationError(f"annotation {ann_id}: decoded mask differs from the project")
    ids = list(expected)
    got = [coco.annToRLE(coco.anns[i]) for i in ids]
    for g in got:  # pycocotools hands back a JSON string where the file has one
        if isinstance(g.get("counts"), str):
            g["counts"] = g["counts"].encode("ascii")
    # in chunks: pycocotools' area() of over 255 RLEs overflows a uint8 under numpy 2
    areas = [a for k in range(0, len(got), 255) for a in mask_utils.area(got[k:k + 255])]
    boxes = mask_utils.toBbox(got) if got else []
    for k, ann_id in enumerate(ids):
        enc, area, (x, y, w, h), is_poly = expected[ann_id]
        if is_poly:
            iou = float(mask_utils.iou([got[k]], [enc], [0])[0][0])
            if iou < POLYGON_MIN_IOU:
                raise ExportVerificationError(f"annotation {ann_id}: polygon IoU {iou:.3f} read back")
            continue
        if int(areas[k]) != area:
            raise ExportVerificationError(f"annotation {ann_id}: area {int(areas[k])} read back, "
                                          f"{area} in the project")
        if tuple(int(v) for v in boxes[k]) != (x, y, w, h):
            raise ExportVerificationError(f"annotation {ann_id}: box {tuple(int(v) for v in boxes[k])} "
                                          f"read back, {(x, y, w, h)} in the project")
        if got[k]["counts"] != enc["counts"]:  # RLE is canonical: equal strings, equal masks
            raise ExportVerificationError(f"annotation {ann_id}: mask read back differs")
