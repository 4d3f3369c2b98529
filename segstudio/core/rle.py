"""COCO run-length encoding through pycocotools (column-major, compressed counts)."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from segstudio.core import maskops


def encode(mask: np.ndarray) -> bytes:
    """Compressed RLE counts of a boolean mask (its shape is kept by the caller)."""
    if mask.size == 0:
        return b""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"]


def decode(counts: bytes, height: int, width: int) -> np.ndarray:
    if height == 0 or width == 0:
        return np.zeros((height, width), dtype=bool)
    m = mask_utils.decode({"size": [int(height), int(width)], "counts": counts})
    return np.ascontiguousarray(m, dtype=bool)


def to_coco(mask: np.ndarray) -> dict:
    """A JSON-ready COCO RLE dict (counts as str) for a full-image mask."""
    r = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}


# ----------------------------------------------------------------------------- reading untrusted RLE
# pycocotools trusts its input: a counts list summing to less than h*w decodes into
# uninitialised memory, one summing to more writes past the buffer, and a truncated compressed
# string is read past its end. Imported RLE is therefore decoded here, and every count checked
# before a pixel is written.
MAX_RLE_PIXELS = 2**32 - 1  # pycocotools keeps counts and h*w in uint32
_MAX_CHARS_PER_COUNT = 6  # 30 bits: what pycocotools' own reader handles (2**29 = 3x the bomb limit)


def string_to_counts(s: str | bytes) -> np.ndarray:
    """The runs of a compressed COCO counts string (pycocotools' rleFrString), checked.

    Each character holds 6 bits (ASCII 48..111): 5 of value, 0x20 "more characters follow",
    and in a number's last character 0x10 is its sign. Counts after the third are stored as
    the difference from the count two before. Raises ValueError on anything else.
    """
    if isinstance(s, str):
        if not s.isascii():
            raise ValueError("RLE counts string is not ASCII")
        s = s.encode("ascii")
    a = np.frombuffer(bytes(s), dtype=np.uint8).astype(np.int64) - 48
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.min() < 0 or a.max() > 63:
        raise ValueError("RLE counts string has characters outside '0'..'o'")
    last = (a & 0x20) == 0
    if not last[-1]:
        raise ValueError("RLE counts string is truncated (its last number is unfinished)")
    ends = np.flatnonzero(last)
    starts = np.r_[0, ends[:-1] + 1]
    lens = ends - starts + 1
    if lens.max() > _MAX_CHARS_PER_COUNT:
        raise ValueError("RLE counts string holds a number too large for any image")
    pos = np.arange(a.size) - np.repeat(starts, lens)
    vals = np.add.reduceat((a & 0x1F) << (5 * pos), starts)
    neg = (a[ends] & 0x10) != 0
    vals[neg] -= np.left_shift(1, 5 * lens[neg])  # sign-extend, as rleFrString does
    if len(vals) > 2:
        if int(np.abs(vals).max()) * len(vals) >= 2**62:  # the sums below would overflow int64
            raise ValueError("RLE counts string too long for any image")
        vals[1::2] = np.cumsum(vals[1::2])  # undo the differences, odd and even runs apart
        vals[2::2] = np.cumsum(vals[2::2])
    return vals


def check_counts(counts: np.ndarray, height: int, width: int) -> None:
    """Raise ValueError unless the runs are non-negative and cover the image exactly."""
    if height * width > MAX_RLE_PIXELS:
        raise ValueError(f"a {width}x{height} image is too large for COCO RLE")
    if counts.ndim != 1:
        raise ValueError("RLE counts must be a flat list of numbers")
    if counts.size and counts.min() < 0:
        raise ValueError(f"RLE has a negative count ({int(counts.min())})")
    if counts.size and counts.max() > height * width:
        raise ValueError(f"RLE count {int(counts.max())} is more than the image's {height * width} pixels")
    total = int(counts.sum(dtype=np.int64)) if counts.size else 0  # each < 2**32: cannot overflow
    if total != height * width:
        raise ValueError(f"RLE counts sum to {total}, the image has {height * width} pixels "
                         f"({height}x{width})")


def counts_to_mask(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode checked runs (column-major, starting with background) to a (height, width) mask."""
    check_counts(counts, height, width)
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def _list_counts(counts: list) -> np.ndarray:
    a = np.asarray(counts) if counts else np.zeros(0, dtype=np.int64)
    if a.ndim != 1 or a.dtype.kind not in "iuf":
        raise ValueError("RLE counts must be a flat list of numbers")
    if a.dtype.kind == "f" and (not np.isfinite(a).all() or (a != np.round(a)).any()):
        raise ValueError("RLE counts must be whole numbers")
    if a.size and np.abs(a).max() > MAX_RLE_PIXELS:  # before int64, which would wrap
        raise ValueError(f"RLE count {np.abs(a).max():.0f} is more than any image's pixels")
    return a.astype(np.int64)


def _check_size_field(size, height: int, width: int) -> None:
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in size)):
        raise ValueError("RLE without a valid 'size' [height, width]")
    if list(size) != [height, width]:  # compares numbers, NaN and infinities included, safely
        raise ValueError(f"RLE size {list(size)} does not match the image ({height}x{width})")


# Polygons: pycocotools' rleFrPoly allocates ~100 bytes per pixel of perimeter (a point every
# fifth of a pixel), and a NaN vertex becomes INT_MIN: over 20 GB for one annotation. Vertices
# are checked finite and not absurdly far out; a polygon reaching more than an image size
# outside is clipped to the image first (edges cut where they cross, so the part inside keeps
# its shape); and the perimeter left is bounded.
def _perimeter_limit(height: int, width: int) -> float:
    return max(1_000_000.0, 16.0 * (height + width))


def polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (flat [x0, y0, x1, y1, ...] lists) exactly as pycocotools does,
    with memory bounded by the image, not by the coordinates. Parts under 3 points are
    dropped (as before); a bad number anywhere raises ValueError."""
    limit = maskops.coord_limit(width, height)
    keep = []
    for p in polygons:
        if not isinstance(p, (list, tuple)):
            raise ValueError(f"a polygon must be a list of numbers, got {type(p).__name__}")
        pts = maskops.finite_points(p, limit, "polygon") if p else np.zeros(0)
        if pts.ndim != 1:
            raise ValueError("a polygon must be a flat list of numbers [x0, y0, x1, y1, ...]")
        if len(p) < 6:
            continue
        if len(p) % 2:
            raise ValueError(f"a polygon has an odd number of coordinates ({len(p)})")
        pts = pts.reshape(-1, 2)
        r = max(width, height)
        if pts.min() < -r or (pts - (width, height)).max() > r:
            pts = maskops.clip_polygon(pts, (-2.0, -2.0, width + 1.0, height + 1.0))
            if len(pts) < 3:
                continue
        keep.append(pts)
    if not keep:
        return np.zeros((height, width), dtype=bool)
    perimeter = sum(float(np.abs(np.diff(np.vstack([q, q[:1]]), axis=0)).max(axis=1).sum()) for q in keep)
    if perimeter > _perimeter_limit(height, width):
        raise ValueError(f"polygons {perimeter:.0f} pixels long on a {width}x{height} image; refused "
                         "(rasterising them would need memory in proportion)")
    rles = mask_utils.frPyObjects([q.reshape(-1).tolist() for q in keep], height, width)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles)), dtype=bool)


def from_coco(segmentation, height: int, width: int) -> np.ndarray:
    """Decode an imported COCO segmentation: polygons, uncompressed RLE (counts list) or
    compressed RLE (counts string), to a (height, width) mask.

    Everything is checked before a pixel is written (see above); a bad value raises ValueError.
    """
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        _check_size_field(segmentation.get("size"), height, width)
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            return counts_to_mask(_list_counts(counts), height, width)
        if isinstance(counts, (str, bytes)):
            return counts_to_mask(string_to_counts(counts), height, width)
        raise ValueError("RLE 'counts' must be a list or a string")
    raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")


def full_runs(mask: np.ndarray, x: int, y: int, height: int, width: int) -> list[int]:
    """Uncompressed COCO counts of a cropped mask placed at (x, y) in a height x width image.

    Computed from the crop alone (cost proportional to the crop, not the image): transitions
    are found down each zero-padded crop column and shifted to their column-major position in
    the full image. The crop must lie inside the image.
    """
    h, w = mask.shape
    total = height * width
    if h == 0 or w == 0:
        return [total]
    cols = np.zeros((w, h + 2), dtype=bool)
    cols[:, 1:-1] = mask.T
    v = cols.ravel()
    nz = np.flatnonzero(v[1:] != v[:-1])  # alternating run starts and ends, column-major
    if nz.size == 0:
        return [total]
    col, row = np.divmod(nz, h + 2)
    pos = (col + x) * height + y + row
    # a run ending at the bottom of a column and one starting at the top of the next touch
    # (when the crop spans the image height): the end equals the next start, drop both
    dup = pos[1:] == pos[:-1]
    if dup.any():
        pos = pos[~(np.r_[dup, False] | np.r_[False, dup])]
    counts = np.empty(len(pos) + 1, dtype=np.int64)
    counts[0] = pos[0]
    counts[1:-1] = pos[1:] - pos[:-1]
    counts[-1] = total - pos[-1]
    if counts[-1] == 0:  # pycocotools writes no trailing empty run
        counts = counts[:-1]
    return counts.tolist()


def encode_placed(mask: np.ndarray, x: int, y: int, height: int, width: int) -> dict:
    """Compressed COCO RLE (pycocotools dict) of a cropped mask placed in the full image."""
    return mask_utils.frPyObjects({"size": [height, width], "counts": full_runs(mask, x, y, height, width)},
                                  height, width)


def encode_placed_many(crops: list[tuple[np.ndarray, int, int]], height: int, width: int) -> list[dict]:
    """encode_placed for several regions of one image in one pycocotools call."""
    if not crops:
        return []
    objs = [{"size": [height, width], "counts": full_runs(m, x, y, height, width)} for m, x, y in crops]
    return mask_utils.frPyObjects(objs, height, width)
