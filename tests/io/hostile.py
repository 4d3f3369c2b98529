"""Shared makers for the hostile-input tests: a small project, files in each format, a real
decompression bomb, and a peak-memory probe."""

from __future__ import annotations

import base64
import json
import struct
import tracemalloc
import zlib
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from segstudio.core.project import Project
from tests.conftest import make_image

W, H = 64, 48
GOOD_BOX = (10, 10, 30, 30)  # x0, y0, x1, y1 of the good annotation beside each bad one
GOOD_POLY = [10.0, 10.0, 29.0, 10.0, 29.0, 29.0, 10.0, 29.0]


def make_project(root: Path, names=("a.png", "b.png", "c.png"), db: Path | None = None) -> Project:
    folder = root / "imgs"
    for i, n in enumerate(names):
        if not (folder / n).exists():
            make_image(folder / n, W, H, seed=i)
    return Project.open(folder, db)


def regions_of(project: Project, name: str):
    rec = project.store.image_by_path(name)
    return project.store.regions(rec.id)


def status_of(project: Project, name: str) -> str:
    return project.store.image_by_path(name).status


def assert_inside(project: Project) -> None:
    """Every region of the project lies inside its image and has pixels."""
    for rec in project.store.images():
        w, h = project.image_size(rec)
        for r in project.store.regions(rec.id):
            x0, y0, x1, y1 = r.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (rec.path, r.box)
            assert r.mask.any()


def has_good_region(project: Project, name: str, box=GOOD_BOX) -> bool:
    """The good annotation (a filled rectangle, give or take its rasteriser's edge) is there."""
    for r in regions_of(project, name):
        x0, y0, x1, y1 = r.box
        if abs(x0 - box[0]) <= 1 and abs(y0 - box[1]) <= 1 and abs(x1 - box[2]) <= 1 and abs(y1 - box[3]) <= 1:
            return r.mask.mean() > 0.9
    return False


def dump(obj) -> str:
    """JSON as hostile files have it: NaN and Infinity written as bare words."""
    return json.dumps(obj, allow_nan=True)


def coco_doc(anns_a=(), anns_b=(), names=("cat",)) -> dict:
    """A COCO file over a.png (id 1, the good annotation plus anns_a), b.png (id 2, anns_b)
    and c.png (id 3, no annotations)."""
    cats = [{"id": i, "name": n} for i, n in enumerate(names, start=1)]
    good = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [GOOD_POLY], "iscrowd": 0}
    anns = [good]
    for k, a in enumerate(list(anns_a) + list(anns_b)):
        img = 1 if k < len(anns_a) else 2
        anns.append(dict({"id": 100 + k, "image_id": img, "category_id": 1, "iscrowd": 0}, **a))
    return {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H},
                       {"id": 2, "file_name": "b.png", "width": W, "height": H},
                       {"id": 3, "file_name": "c.png", "width": W, "height": H}],
            "annotations": anns, "categories": cats}


def labelme_doc(shapes, image="a.png", **kw) -> dict:
    good = {"label": "cat", "points": [[10, 10], [29, 10], [29, 29], [10, 29]], "shape_type": "polygon",
            "group_id": None}
    d = {"version": "5.5.0", "shapes": [good] + list(shapes), "imagePath": image, "imageData": None,
         "imageHeight": H, "imageWidth": W}
    d.update(kw)
    return d


def yolo_good_line() -> str:
    x0, y0, x1, y1 = GOOD_BOX
    pts = [(x0, y0), (x1 - 1, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)]
    return "0 " + " ".join(f"{x / W:.6f} {y / H:.6f}" for x, y in pts)


def good_label_map() -> np.ndarray:
    v = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = GOOD_BOX
    v[y0:y1, x0:x1] = 1
    return v


@lru_cache(maxsize=8)
def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real 1-bit PNG whose header says width x height (900 Mpx by default), all zeros,
    about 100 KB: written row by row, never held in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 1000
    parts = [z.compress(block) for _ in range(height // 1000)]
    parts.append(z.compress(row * (height % 1000)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def png_bytes(a: np.ndarray, mode: str | None = None) -> bytes:
    import io
    buf = io.BytesIO()
    im = Image.fromarray(a) if mode is None else Image.fromarray(a).convert(mode)
    im.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@contextmanager
def traced_peak():
    """Peak of Python and numpy allocations inside the block, in bytes (box["peak"])."""
    box = {}
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield box
    finally:
        box["peak"] = tracemalloc.get_traced_memory()[1] - base
        if not was:
            tracemalloc.stop()
