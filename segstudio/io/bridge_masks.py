"""Masks that come through datumaro, decoded by segstudio's checked RLE decoder (core/rle.py).

datumaro decodes RLE with pycocotools, which trusts its input: counts summing short decode
into uninitialised memory, and a CVAT mask is made on a canvas of the size its XML declares
before anything is checked (50000x50000: 2.5 GB, then a failure). So the bridge never asks
datumaro for the pixels of an RLE mask. It takes the RLE datumaro parsed and decodes it here:

- `RleMask` (SA-1B, datumaro's own JSON, COCO): the COCO dict, its size checked against the
  project image and every count checked before a pixel is written (rle.from_coco).
- CVAT's `<mask rle left top width height>`: datumaro 1.13 keeps these only inside the closure
  that would decode them; the values are read from there, the box checked to lie inside the
  image and the counts to cover it exactly, then only the box is decoded. A closure of another
  shape (another datumaro version) is refused, never decoded unchecked.

Other masks (label-map PNGs) are decoded by datumaro from files whose headers the staged source
checked against the project's images first (bridge_source.py); their shape is checked here.
"""

from __future__ import annotations

import numpy as np

from segstudio.core import maskops, rle

# the free variables of datumaro 1.13's CVAT mask closure (plugins/data_formats/cvat/base.py)
_CVAT_CELLS = {"rle_uncompressed", "mask_l", "mask_t", "mask_w", "mask_h"}
_CVAT_QUALNAME = "_parse_shape_ann.<locals>._gen_mask"


def mask_crop(a, w: int, h: int) -> tuple[np.ndarray, int, int] | None:
    """The mask of a datumaro mask annotation on a w x h image, cropped to its content
    (mask, x, y), or None when empty. ValueError for anything that does not fit the image."""
    from datumaro.components.annotation import ExtractedMask, RleMask
    if isinstance(a, RleMask):
        return maskops.crop_to_content(_rle_mask(a, w, h))
    gen = getattr(a, "_image", None)
    if callable(gen) and getattr(gen, "__qualname__", "").endswith(_CVAT_QUALNAME):
        return cvat_mask_crop(gen, w, h)
    if callable(gen) and not isinstance(a, ExtractedMask) and "cvat" in getattr(gen, "__module__", ""):
        raise ValueError("a CVAT mask this version of datumaro stores in a way segstudio cannot check; "
                         "not decoded")
    m = np.asarray(a.image)
    if m.ndim != 2:
        raise ValueError(f"a mask must be one channel, not shape {m.shape}")
    if m.shape != (h, w):
        raise ValueError(f"mask is {m.shape[1]}x{m.shape[0]}, the image {w}x{h}")
    return maskops.crop_to_content(m.astype(bool, copy=False))


def _rle_mask(a, w: int, h: int) -> np.ndarray:
    data = a._rle  # the parsed RLE, never the `rle` property's pycocotools round trip
    if callable(data):
        data = data()
    if not isinstance(data, dict):
        raise ValueError("RLE must be an object with 'size' and 'counts'")
    counts = data.get("counts")
    if isinstance(counts, np.ndarray):
        counts = counts.tolist()
    return rle.from_coco({"size": data.get("size"), "counts": counts}, h, w)


def cvat_mask_crop(gen, w: int, h: int) -> tuple[np.ndarray, int, int] | None:
    """A CVAT mask (datumaro's closure `gen`) as a crop checked against the w x h image."""
    code, cells = gen.__code__, gen.__closure__ or ()
    if not _CVAT_CELLS <= set(code.co_freevars) or len(cells) != len(code.co_freevars):
        raise ValueError("a CVAT mask this version of datumaro stores in a way segstudio cannot check; "
                         "not decoded")
    v = {name: c.cell_contents for name, c in zip(code.co_freevars, cells, strict=True)}
    left, top, mw, mh = (_whole(v[k], k[5:]) for k in ("mask_l", "mask_t", "mask_w", "mask_h"))
    if mw <= 0 or mh <= 0:
        raise ValueError(f"mask box {mw}x{mh} is empty")
    if left < 0 or top < 0 or left + mw > w or top + mh > h:
        raise ValueError(f"mask box {mw}x{mh} at ({left}, {top}) reaches outside the {w}x{h} image")
    counts = np.asarray(v["rle_uncompressed"].get("counts"))
    if counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise ValueError("mask RLE must be a list of whole numbers")
    # CVAT's runs go along rows of the box: decoded as a (mw, mh) column-major RLE, transposed
    m = rle.counts_to_mask(counts.astype(np.int64), mw, mh).T
    return maskops.crop_to_content(np.ascontiguousarray(m), left, top)


def _whole(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"mask {what} must be a whole number")
    return int(value)
