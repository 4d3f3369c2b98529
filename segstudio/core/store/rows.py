"""A stored region as a row: what model results are encoded into on worker threads and what a
store writes (`Store.replace_source_regions_many` takes entries of such rows). No backend here."""

from __future__ import annotations

import json

from segstudio.core import rle
from segstudio.core.region import Region

# A stored region row, in this order: what region_row / encoded_region_row build and a store writes
REGION_COLUMNS = ("id", "image_id", "class_id", "x", "y", "w", "h", "rle", "area", "z", "source", "score",
                  "iscrowd", "extra", "track")
ROW_W = REGION_COLUMNS.index("w")  # a row whose width is 0 holds no pixels and is not written


def encoded_region_row(region_id: int, image_id: int, class_id: int, x: int, y: int, w: int, h: int,
                       counts: bytes, area: int, z: int = 0, source: str = "manual", score: float | None = None,
                       iscrowd: bool = False, extra: dict | None = None, track: int | None = None) -> tuple:
    """A region row from an already RLE-encoded tight crop (a model's results, encoded in workers)."""
    return (region_id, image_id, class_id, x, y, w, h, counts, area, z, source, score, int(iscrowd),
            json.dumps(extra) if extra else None, track)


def region_row(image_id: int, r: Region) -> tuple:
    """The row a region is stored as (tightened, RLE-encoded); callers may build rows on worker threads."""
    r.tighten()  # the store holds tight crops: box = bbox of the pixels
    h, w = r.mask.shape
    return encoded_region_row(r.id, image_id, r.class_id, r.x, r.y, w, h, rle.encode(r.mask), int(r.mask.sum()),
                              r.z, r.source, r.score, r.iscrowd, r.extra, r.track)


def row_region(row: tuple) -> Region:
    """A Region from a row of (id, class_id, x, y, w, h, rle, z, source, score, iscrowd, extra, track)."""
    rid, cid, x, y, w, h, counts, z, source, score, crowd, extra, track = row
    return Region(rid, cid, rle.decode(counts, h, w), x, y, z, source, score, bool(crowd),
                  json.loads(extra) if extra else {}, _track(track))


def _track(value) -> int | None:
    """A stored track read back: a whole number from 1 up, else none (the region is its own object)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 63 else None
