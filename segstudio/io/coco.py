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
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segstudio import __version__
from segstudio.core import maskops, rle
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.export_target import check_file_target, check_placement
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress,
                                 RegionWriter, Report, atomic_file, count_export_items, counted, export_classes,
                                 export_items, image_name, imported_region, is_frame, step)
from segstudio.io import validate

POLYGON_MIN_IOU = 0.9
SPOT_CHECKS = 64


# ============================================================================= import
# Every value is checked before it becomes pixels (validate.py, core/rle.py): one bad image
# entry or annotation is an error in the report, and the rest of the file imports.
_BACKGROUND = ("_background_", "background", "__background__")


def load_json(path: str | Path):
    """A JSON file, bounded in size, any parse failure a FormatError (see validate.py)."""
    return validate.load_json(path)


def import_coco(project: Project, source: str | Path, status: str | None = DONE,
                progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    name = Path(source).name
    data = load_json(source)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FormatError(f"{name} is not a COCO file: no 'images' list")
    anns = data.get("annotations") or []
    cats = data.get("categories") or []
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise FormatError(f"{name}: 'annotations' and 'categories' must be lists")
    report = Report()
    cat_class, background = _categories(cats, ClassMapper(project), name, report)
    by_image = defaultdict(list)
    for k, a in enumerate(anns):
        key = validate.as_key(a.get("image_id")) if isinstance(a, dict) else None
        if key is None:  # cannot be tied to an image
            report.error(name, f"annotations[{k}]: not an object with an image_id; skipped")
            report.rejected += 1
            continue
        by_image[key].append(a)
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    images = data["images"]
    for k, im in enumerate(images):
        fname = im.get("file_name") if isinstance(im, dict) else None
        if not isinstance(fname, str) or not fname:
            step(progress, cancel, k, len(images))
            report.error(name, f"images[{k}]: not an object with a file_name; skipped")
            continue
        step(progress, cancel, k, len(images), fname)
        try:
            _import_image(project, im, fname, by_image, cat_class, background, matcher, writer, report)
        except validate.BAD_INPUT as e:
            report.error(fname, f"{type(e).__name__}: {e}")
    step(progress, None, len(images), len(images))
    return report


def _categories(cats: list, classes: ClassMapper, name: str, report: Report) -> tuple[dict, set]:
    """{category id: project class}, classes created in category-id order; and the ids of
    background categories (their annotations are left out, not errors)."""
    valid = []
    for k, c in enumerate(cats):
        cid = validate.as_key(c.get("id")) if isinstance(c, dict) else None
        if cid is None:
            report.error(name, f"categories[{k}]: not an object with an id; skipped")
            continue
        valid.append((cid, c))
    valid.sort(key=lambda t: (0, t[0], "") if isinstance(t[0], int) else (1, 0, t[0]))
    out, background = {}, set()
    for cid, c in valid:
        raw = c.get("name")
        try:
            cname = validate.clean_class_name(raw if raw not in (None, "") else f"category_{cid}")
        except ValueError as e:
            report.error(name, f"category {validate.brief(cid)}: {e}; its annotations are skipped")
            continue
        if isinstance(raw, str) and raw and cname != raw:
            report.note(f"category {validate.brief(cid)}: name {validate.brief(raw)} imported as {cname!r}")
        if cname.lower() in _BACKGROUND:
            background.add(cid)
            continue
        out[cid] = classes.get(cname, ignore=cname == "__ignore__")
    return out, background


def _import_image(project: Project, im: dict, fname: str, by_image: dict, cat_class: dict,
                  background: set, matcher: ImageMatcher, writer: RegionWriter, report: Report) -> None:
    rec = matcher.match(fname)
    if rec is None:
        report.unmatched.append(fname)
        return
    try:
        w, h = project.image_size(rec)
    except Exception as e:  # any error becomes this file's message; the import goes on  # noqa: BLE001
        report.error(fname, str(e))
        return
    cw, ch = im.get("width"), im.get("height")
    if cw is not None and ch is not None:
        try:
            stated = validate.as_size(cw, "width"), validate.as_size(ch, "height")
        except ValueError as e:
            report.error(fname, f"{e}; skipped")
            return
        if stated != (w, h):
            report.error(fname, f"COCO says {stated[0]}x{stated[1]} but the image is {w}x{h} "
                                "(after EXIF orientation); skipped")
            return
    key = validate.as_key(im.get("id"))
    if key is None:
        report.error(fname, f"image id {validate.brief(im.get('id'))} is not a number or a string; skipped")
        return
    regions, rejected = [], 0
    for a in by_image.get(key, []):
        aid = validate.brief(a.get("id"))
        cid = validate.as_key(a.get("category_id"))
        if cid is not None and cid in background:
            continue
        try:
            cls = cat_class.get(cid)
            if cls is None:
                raise ValueError(f"unknown category {validate.brief(a.get('category_id'))}")
            mask, bbox_only = _annotation_mask(a, h, w)
        except validate.BAD_INPUT as e:
            report.error(fname, f"annotation {aid}: {e}")
            rejected += 1
            continue
        if bbox_only:
            report.note(f"{fname}: annotation {aid} has no segmentation; imported its box")
        c = maskops.crop_to_content(mask)
        if c is None:
            report.note(f"{fname}: annotation {aid} has no pixels inside the image")
            continue
        regions.append(imported_region(cls.id, c[0], c[1], c[2], iscrowd=a.get("iscrowd", 0) in (1, True)))
    writer.add(rec, regions, rejected=rejected, size=(w, h))


def _annotation_mask(a: dict, h: int, w: int) -> tuple[np.ndarray, bool]:
    """The full-image mask of one annotation, and whether it came from its box alone."""
    seg = a.get("segmentation")
    if seg:
        return rle.from_coco(seg, h, w), False
    bbox = a.get("bbox")
    if not bbox:
        raise ValueError("neither a segmentation nor a bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError("bbox must be [x, y, width, height]")
    x, y, bw, bh = maskops.finite_points(bbox, maskops.coord_limit(w, h), "bbox")
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
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    expected: dict[int, tuple] = {}  # annotation id -> (rle, area, bbox, is_polygon)
    spot_checks: dict[int, tuple] = {}  # a sample decoded in full, pixel by pixel
    total = count_export_items(project, statuses)
    n_poly_fallback = frames = 0
    for k, item in enumerate(export_items(project, statuses, report)):
        step(progress, cancel, k, total, item.record.path)
        image_id = len(images) + 1
        # a frame has no file: its file_name is the PNG the folder formats write for it (image_name)
        images.append({"id": image_id, "file_name": image_name(item.record.path), "width": item.width,
                       "height": item.height})
        frames += is_frame(item.record.path)
        regions = [r for r in item.regions if r.class_id in value_of]
        # full-image RLE computed from the crops: the cost follows the regions, not the image
        encoded = rle.encode_placed_many([(r.mask, r.x, r.y) for r in regions], item.height, item.width)
        for r, enc in zip(regions, encoded, strict=True):
            h, w = r.mask.shape
            area = int(np.count_nonzero(r.mask))
            bbox = [float(r.x), float(r.y), float(w), float(h)]  # crops are tight: this is toBbox
            seg: list[Any] | dict[str, Any] | None = None
            if polygons and not r.iscrowd:
                seg = _polygons_for(r, enc, item.height, item.width)
                if seg is None:
                    n_poly_fallback += 1
            if seg is None:
                seg = {"size": [item.height, item.width], "counts": enc["counts"].decode("ascii")}
            ann_id = len(annotations) + 1
            attrs: dict[str, Any] = {"source": r.source}
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
    if frames:
        report.notes.append(f"{counted(frames, 'frame')} of stacks or videos named REL/NNNNNN.png in file_name: a COCO "
                            "file holds no pixels, so they are not written; the folder formats (yolo, labelme, mots) "
                            "write them under those names")
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
