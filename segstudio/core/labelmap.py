"""Derived rasters: the semantic label map and the instance-id map, painted in z-order."""

from __future__ import annotations

from typing import AbstractSet, Iterable, Mapping

import numpy as np

from segstudio.core.region import Region

# Background is 0. Ignore pixels take the largest value of the map's dtype: 255 in an 8-bit
# map, 65535 in a 16-bit map (the convention of PASCAL VOC and labelme).
BACKGROUND = 0
IGNORE_8 = 255
IGNORE_16 = 65535


def z_sorted(regions: Iterable[Region]) -> list[Region]:
    """Painting order: lower z first; equal z in creation order (id)."""
    return sorted(regions, key=lambda r: (r.z, r.id))


def label_dtype(n_values: int) -> np.dtype:
    """uint8 while classes and the ignore value fit below 255, else uint16."""
    return np.dtype(np.uint8) if n_values < IGNORE_8 else np.dtype(np.uint16)


def ignore_value(dtype: np.dtype) -> int:
    return IGNORE_8 if np.dtype(dtype) == np.uint8 else IGNORE_16


def paint_label_map(regions: Iterable[Region], width: int, height: int,
                    value_of_class: Mapping[int, int], dtype=np.uint8) -> np.ndarray:
    """Paint each region's value into a (height, width) map; later z wins where they overlap.

    Regions whose class is not in `value_of_class` are skipped.
    """
    out = np.zeros((height, width), dtype=dtype)
    for r in z_sorted(regions):
        v = value_of_class.get(r.class_id)
        if v is None or r.mask.size == 0:
            continue
        _paint(out, r, v)
    return out


def paint_instance_map(regions: Iterable[Region], width: int, height: int,
                       skip_classes: AbstractSet[int] = frozenset()) -> tuple[np.ndarray, list[Region]]:
    """Each region its own id 1..N in z-order; returns the map and the regions by id - 1."""
    ordered = [r for r in z_sorted(regions) if r.class_id not in skip_classes and r.mask.size]
    dtype = np.uint8 if len(ordered) < IGNORE_8 else (np.uint16 if len(ordered) < IGNORE_16 else np.uint32)
    out = np.zeros((height, width), dtype=dtype)
    for i, r in enumerate(ordered, start=1):
        _paint(out, r, i)
    return out, ordered


def _paint(out: np.ndarray, r: Region, value: int) -> None:
    h, w = r.mask.shape
    H, W = out.shape
    x0, y0 = max(r.x, 0), max(r.y, 0)
    x1, y1 = min(r.x + w, W), min(r.y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    sub = out[y0:y1, x0:x1]
    sub[r.mask[y0 - r.y:y1 - r.y, x0 - r.x:x1 - r.x]] = value
