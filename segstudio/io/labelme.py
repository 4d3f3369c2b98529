"""labelme JSON: import (polygons, rectangles, circles, lines, points, masks; group ids;
`__ignore__`; embedded base64 `imageData`) and export (one JSON per image that labelme opens).

Import rasterises shapes exactly as labelme does (PIL ImageDraw, outline included), so masks
match labelme's own label PNGs. Shapes sharing a (label, group_id) become one region.

Export writes each region as polygons (one per connected part, sharing a group_id when there
are several). labelme polygons cannot have holes: a region with holes, or a part too small for
a 3-point polygon, is written as a labelme `mask` shape (labelme >= 5.3 opens these) so nothing
is lost. Images are copied beside their JSON and `imageData` is left null.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from segstudio.core import imageio, maskops
from segstudio.core.classes import BACKGROUND_NAMES
from segstudio.core.labelmap import z_sorted
from segstudio.core.project import Project
from segstudio.core.records import DONE, ImageRecord
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress,
                                 RegionWriter, Report, atomic_dir, count_export_items,
                                 export_classes, export_items, image_name, imported_region, step)
from segstudio.io.coco import load_json
from segstudio.io.export_names import check_export_names, stem
from segstudio.io.frame_images import write_image
from segstudio.io import validate

LABELME_VERSION = "5.5.0"  # the file layout we write; labelme 4.x/5.x read it
LINE_WIDTH, POINT_SIZE = 10, 5  # labelme's rasterisation of lines and points


# ============================================================================= rasterising
# Shapes come from files made elsewhere: every number is checked finite and within
# maskops.coord_limit, and shapes are drawn on a canvas cut to the image, so memory follows
# the image, never the coordinates (validate.py).
BIG_CIRCLE = 100_000  # Pillow's ellipse takes seconds to minutes beyond ~600k pixels of radius


def shape_mask(shape: dict, height: int, width: int, allow_large: bool = False) -> tuple[np.ndarray, int, int] | None:
    """A labelme shape as a cropped mask (mask, x, y), rasterised as labelme does; None if it
    covers no pixel of the image; ValueError (or another of validate.BAD_INPUT) if invalid."""
    kind = shape.get("shape_type") or "polygon"
    if not isinstance(kind, str):
        raise ValueError(f"shape_type must be text, got {validate.brief(kind)}")
    pts = shape.get("points")
    pts = [] if pts is None else pts
    if not isinstance(pts, list):
        raise ValueError("points must be a list of [x, y] pairs")
    if kind == "mask":
        return _mask_shape(shape, pts, height, width, allow_large)
    if not pts:
        raise ValueError(f"{kind} without points")
    a = maskops.finite_points(pts, maskops.coord_limit(width, height), "points")
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError("points must be [x, y] pairs")
    xy = [(float(x), float(y)) for x, y in a]
    pad = LINE_WIDTH + POINT_SIZE + 2
    if kind == "circle":
        if len(xy) != 2:
            raise ValueError("a circle needs 2 points")
        (cx, cy), (px, py) = xy
        pad += int(math.hypot(cx - px, cy - py)) + 1
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    x0, y0 = max(0, int(math.floor(min(xs))) - pad), max(0, int(math.floor(min(ys))) - pad)
    x1, y1 = min(width, int(math.ceil(max(xs))) + pad + 1), min(height, int(math.ceil(max(ys))) + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    s = [(x - x0, y - y0) for x, y in xy]
    if kind == "circle" and math.hypot(s[0][0] - s[1][0], s[0][1] - s[1][1]) > BIG_CIRCLE:
        (cx, cy), (px, py) = s
        d = math.hypot(cx - px, cy - py)
        # Pillow's box floored, plus its half-pixel edge: the same disc but for boundary pixels
        bx0, by0, bx1, by1 = (math.floor(v) for v in (cx - d, cy - d, cx + d, cy + d))
        m = _disc((bx0 + bx1) / 2, (by0 + by1) / 2, (bx1 - bx0) / 2 + 0.5, x1 - x0, y1 - y0)
        return maskops.crop_to_content(m, x0, y0)
    im = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(im)
    if kind == "circle":
        (cx, cy), (px, py) = s
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "rectangle" and len(s) == 2:
        (ax, ay), (bx, by) = s
        draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], outline=1, fill=1)
    elif kind in ("rectangle", "rotation", "polygon"):
        # X-AnyLabeling writes rectangles (and rotated boxes) as their 4 corners
        if len(s) < 3:
            raise ValueError(f"a {kind} needs 3 points or more, got {len(s)}")
        draw.polygon(xy=s, outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        if len(s) < 2:
            raise ValueError(f"a {kind} needs 2 points or more")
        draw.line(xy=s, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        cx, cy = s[0]
        r = POINT_SIZE
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        raise ValueError(f"unknown shape_type {validate.brief(kind)}")
    return maskops.crop_to_content(np.asarray(im, dtype=bool), x0, y0)


def _disc(cx: float, cy: float, r: float, w: int, h: int) -> np.ndarray:
    """A filled circle on a w x h canvas, row by row (for radii Pillow is too slow for)."""
    dy = np.arange(h) - cy
    with np.errstate(invalid="ignore"):
        half = np.sqrt(np.maximum(r * r - dy * dy, -1.0))  # NaN where the row misses the circle
        lo = np.where(np.isnan(half), w, np.ceil(cx - half)).astype(np.int64)
        hi = np.where(np.isnan(half), -1, np.floor(cx + half)).astype(np.int64)
    cols = np.arange(w)
    return (cols >= lo[:, None]) & (cols <= hi[:, None])


def _mask_shape(shape: dict, pts: list, height: int, width: int, allow_large: bool):
    data = shape.get("mask")
    if not isinstance(data, str) or not data or not pts:
        raise ValueError("a mask shape needs 'mask' data (a base64 PNG) and its top-left point")
    a = maskops.finite_points(pts[:1], maskops.coord_limit(width, height), "points")
    if a.shape != (1, 2):
        raise ValueError("points must be [x, y] pairs")
    m = b64_to_array(data, allow_large=allow_large, max_size=(width, height))
    if m.ndim == 3:
        m = m[..., 0]
    m = m.astype(bool)
    x, y = int(round(a[0, 0])), int(round(a[0, 1]))
    return maskops.crop_to_content(maskops.window(m, x, y, (0, 0, width, height)))


def b64_to_array(data: str, allow_large: bool = False, max_size: tuple[int, int] | None = None) -> np.ndarray:
    """A base64 image as an array, through the decompression-bomb guard; with `max_size`
    (width, height), refused from its header when larger. ValueError when unreadable."""
    raw = base64.b64decode(data)  # binascii.Error is a ValueError
    try:
        with imageio.open_guarded(raw, allow_large=allow_large) as im:
            if max_size is not None and (im.width > max_size[0] or im.height > max_size[1]):
                raise ValueError(f"a {im.width}x{im.height} mask on a {max_size[0]}x{max_size[1]} image")
            return np.array(im)
    except imageio.ImageDecodeError as e:
        raise ValueError(f"mask: {e}") from None
    except (OSError, SyntaxError, EOFError) as e:  # truncated or corrupt pixel data
        raise ValueError(f"mask: corrupt image: {e}") from None


def array_to_b64png(a: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ============================================================================= import
def import_labelme(project: Project, source: str | Path, status: str | None = DONE,
                   progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*.json") if not p.name.startswith("."))
    if not files:
        raise FormatError(f"no labelme JSON files in {src}")
    report = Report()
    mapper = ClassMapper(project)
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    for k, f in enumerate(files):
        name = f.name if src.is_file() else f.relative_to(src).as_posix()
        step(progress, cancel, k, len(files), name)
        try:  # one bad file is an error in the report; the folder goes on
            data = load_json(f)
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                raise FormatError("not a labelme file (no 'shapes' list)")
            rec = _match_image(project, matcher, f, data, None if src.is_file() else name)
            if rec is None and data.get("imageData"):
                rec = _extract_embedded(project, f, data, report)
                if rec is not None:
                    matcher = ImageMatcher(project)
            if rec is None:
                report.unmatched.append(name)
                continue
            w, h = project.image_size(rec)
            jw, jh = data.get("imageWidth"), data.get("imageHeight")
            if jw is not None and jh is not None:
                stated = validate.as_size(jw, "imageWidth"), validate.as_size(jh, "imageHeight")
                if stated != (w, h):
                    report.error(name, f"JSON says {stated[0]}x{stated[1]} but the image is {w}x{h}; skipped")
                    continue
            regions, rejected = _shapes_to_regions(data["shapes"], h, w, mapper, name, report,
                                                   project.allow_large)
        except (FormatError, imageio.ImageDecodeError) as e:
            report.error(name, str(e))
            continue
        except validate.BAD_INPUT as e:
            report.error(name, f"{type(e).__name__}: {e}")
            continue
        writer.add(rec, regions, rejected=rejected, size=(w, h))
    step(progress, None, len(files), len(files))
    return report


def _shapes_to_regions(shapes: list, h: int, w: int, mapper: ClassMapper, name: str, report: Report,
                       allow_large: bool = False) -> tuple[list, int]:
    """Regions of one file's shapes (shapes sharing a label and group_id become one), and how
    many shapes were rejected (each named in the report)."""
    groups: dict = {}
    order: list = []
    rejected = 0
    for i, s in enumerate(shapes):
        try:
            if not isinstance(s, dict):
                raise ValueError(f"not an object but {validate.brief(s)}")
            raw = s.get("label")
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue  # an unlabelled shape: nothing to import
            label = validate.clean_class_name(raw)
            if label in BACKGROUND_NAMES:
                continue
            gid = s.get("group_id")
            if gid is not None and validate.as_key(gid) is None:
                raise ValueError(f"group_id must be a number or text, got {validate.brief(gid)}")
            c = shape_mask(s, h, w, allow_large)
        except validate.BAD_INPUT as e:
            report.error(name, f"shape {i}: {e}")
            rejected += 1
            continue
        if isinstance(raw, str) and label != raw.strip():
            report.note(f"{name}: shape {i}: label {validate.brief(raw)} imported as {label!r}")
        if c is None:
            report.note(f"{name}: shape {i} ({label}) has no pixels inside the image")
            continue
        gid = validate.as_key(gid) if gid is not None else None
        key = (label, gid) if gid is not None else (label, ("shape", i))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(c)
    regions = []
    for key in order:
        parts = groups[key]
        box: maskops.Box | None = None
        for m, x, y in parts:
            box = maskops.box_union(box, (x, y, x + m.shape[1], y + m.shape[0]))
        assert box is not None  # every group has at least one part
        union = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
        for m, x, y in parts:
            union |= maskops.window(m, x, y, box)
        label = key[0]
        cls = mapper.get(label, ignore=label == "__ignore__")
        assert cls is not None  # ClassMapper(project) creates missing classes
        extra = {"group_id": key[1]} if not isinstance(key[1], tuple) else {}
        regions.append(imported_region(cls.id, union, box[0], box[1], extra=extra))
    return regions, rejected


def _match_image(project: Project, matcher: ImageMatcher, json_path: Path, data: dict,
                 rel_json: str | None = None) -> ImageRecord | None:
    """`rel_json`: the JSON's path inside the folder imported; the image is looked for beside it
    first by that path (an export's `clips/run.mp4/000012.json` beside `000012.png` is that frame)."""
    image_path = data.get("imagePath")
    image_path = image_path.replace("\\", "/") if isinstance(image_path, str) else ""
    if image_path and rel_json is not None and "/" in rel_json and not image_path.startswith(("/", "../")):
        rec = matcher.match(rel_json.rsplit("/", 1)[0] + "/" + image_path)
        if rec is not None:
            return rec
    if image_path:
        cand = (json_path.parent / image_path)
        try:
            rel = os.path.relpath(cand.resolve(), project.folder.resolve()).replace(os.sep, "/")
            if not rel.startswith(".."):
                rec = matcher.by_path.get(rel)
                if rec is not None:
                    return rec
        except (ValueError, OSError):  # other drive on Windows, a NUL or an over-long name
            pass
        rec = matcher.match(image_path.rsplit("/", 1)[-1])
        if rec is not None:
            return rec
    try:
        rel_json = json_path.resolve().relative_to(project.folder.resolve()).as_posix()
        rec = matcher.match_stem(os.path.splitext(rel_json)[0])
        if rec is not None:
            return rec
    except ValueError:
        pass
    return matcher.match_stem(json_path.stem)


def _extract_embedded(project: Project, json_path: Path, data: dict, report: Report) -> ImageRecord | None:
    """A JSON whose image exists only as imageData: write it into the project folder as a new
    file, once it has decoded through the same guard as every image."""
    try:
        raw = base64.b64decode(data["imageData"])
        with imageio.open_guarded(raw, allow_large=project.allow_large) as im:
            ext = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif"}.get(im.format or "", ".png")
        imageio.decode_image("embedded" + ext, data=raw, allow_large=project.allow_large)
    except Exception as e:  # any error becomes this file's message; the import goes on  # noqa: BLE001
        report.error(json_path.name, f"embedded imageData is not a readable image: {e}")
        return None
    target = project.folder / (json_path.stem + ext)
    if target.exists():
        return None
    with open(target, "xb") as f:  # never overwrite a file
        f.write(raw)
    project.scan()
    report.note(f"{json_path.name}: image taken from its embedded imageData, saved as {target.name}")
    return project.store.image_by_path(target.name)


# ============================================================================= export
def export_labelme(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                   progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    by_id = {c.id: c for c in project.store.classes()}
    total = count_export_items(project, statuses)
    n_mask = 0
    validate.check_listable([c.name for c in export_classes(project)[0]], "labelme")  # labels.txt
    # <stem>.json beside the copied <path>: labelme pairs them by stem
    check_export_names(project, statuses, "labelme", lambda p: [stem(p) + ".json", image_name(p)])
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            rel = item.record.path
            written = write_image(project, item.record, tmp, report)  # a frame: decoded, as PNG
            if written is None:
                continue
            shapes = []
            for gid, r in enumerate(z_sorted(item.regions), start=1):
                cls = by_id.get(r.class_id)
                if cls is None:
                    continue
                s, used_mask = region_shapes(r, cls.name, gid)
                n_mask += used_mask
                shapes.extend(s)
            doc: dict[str, Any] = {
                "version": LABELME_VERSION,
                "flags": {},
                "shapes": shapes,
                "imagePath": written.rsplit("/", 1)[-1],
                "imageData": None,
                "imageHeight": item.height,
                "imageWidth": item.width,
            }
            jp = tmp / (os.path.splitext(rel)[0] + ".json")
            jp.parent.mkdir(parents=True, exist_ok=True)
            jp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
            report.images += 1
            report.regions += len(item.regions)
        (tmp / "labels.txt").write_text(
            "\n".join(["__ignore__", "_background_"]
                      + [c.name for c in export_classes(project)[0]]) + "\n",
            encoding="utf-8")
    if n_mask:
        report.notes.append(f"{n_mask} regions written as labelme mask shapes (holes or very small parts)")
    return report


def region_shapes(r, label: str, group_id: int) -> tuple[list[dict], bool]:
    """labelme shapes for one region: polygons, or one mask shape when polygons would lose pixels."""
    contours = maskops.outer_contours(r.mask, r.x, r.y)
    polys = [c for c in contours if len(c) >= 3]
    faithful = len(polys) == len(contours) and maskops.count_holes(r.mask) == 0
    if faithful:
        # check the polygons give back the pixels when rasterised the labelme way
        shapes: list[dict[str, Any]] = [{"label": label, "points": [[float(x), float(y)] for x, y in p],
                   "group_id": group_id if len(polys) > 1 else None, "description": "",
                   "shape_type": "polygon", "flags": {}, "mask": None} for p in polys]
        h, w = r.mask.shape
        back = np.zeros((h, w), dtype=bool)
        for s in shapes:
            c = shape_mask(s, r.y + h, r.x + w)
            if c is not None:
                back |= maskops.window(c[0], c[1], c[2], r.box)
        if np.count_nonzero(back ^ r.mask) <= max(2, r.mask.sum() // 100):
            return shapes, False
    h, w = r.mask.shape
    return [{"label": label, "points": [[float(r.x), float(r.y)], [float(r.x + w - 1), float(r.y + h - 1)]],
             "group_id": None, "description": "", "shape_type": "mask", "flags": {},
             "mask": array_to_b64png(r.mask)}], True
