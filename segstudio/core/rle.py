"""COCO run-length encoding through pycocotools (column-major, compressed counts)."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


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


def from_coco(segmentation, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation: polygons, uncompressed RLE (counts list) or compressed RLE."""
    if isinstance(segmentation, list):
        polys = [p for p in segmentation if isinstance(p, (list, tuple)) and len(p) >= 6]
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not size or len(size) != 2:
            raise ValueError("RLE without a valid 'size'")
        if [int(size[0]), int(size[1])] != [height, width]:
            raise ValueError(f"RLE size {size} does not match the image ({height}x{width})")
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        else:
            raise ValueError("RLE 'counts' must be a list or a string")
    else:
        raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=bool)


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
