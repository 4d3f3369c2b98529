"""Classical assists that need no model: GrabCut from a box or seed clicks, an object from clicks
(`click_segment`, the window's Clicks → object tool: click_segment.py says how), flood-fill magic
wand, marker watershed (splitting a region; from clicks: `watershed_clicks`, click_watershed.py).
OpenCV and numpy only (no torch), so the window can call them from a plain worker thread.

All functions take the decoded image (uint8/uint16/float, gray or RGB) and return a cropped
boolean mask (mask, x, y), or None when nothing was found. Non-8-bit images are seen through the
display window (the window/level the user sees), so an assist separates what is visible.

One channel (EM, X-ray, fluorescence, 16-bit, or RGB whose channels are equal) needs its own
model: cv2.grabCut fits 5-component GMMs over 3 channels, and a grey image copied into 3 equal
channels gives singular covariances that OpenCV patches with a tiny ridge, so the data term turns
into spikes and the cut collapses to nothing (or to the whole region of interest). For one channel:

1. GrabCut runs on a feature image built from the windowed intensity: the intensity, a local
   median and a local texture (mean absolute difference from that median), each scaled to 0..255.
   Three channels that really differ give the GMMs non-degenerate covariances, and median + texture
   separate objects that share grey levels with their surroundings but not their neighbourhood
   statistics (grey photos).
2. When the object and its surroundings share the same intensities *and* texture (EM cells next
   to cells, a dim nucleus beside bright ones) no intensity model can tell them apart, and GrabCut
   still returns (next to) nothing. What separates them there is the boundary: a seeded marker
   watershed then floods from the box centre (or the object clicks) and from outside the box (or
   the background clicks) over the smoothed intensity, and the two meet on the strongest edge
   between them (a membrane, a nucleus rim).
"""

from __future__ import annotations

import cv2
import numpy as np

from segstudio.core import maskops
from segstudio.core.maskops import Box
from segstudio.editing import assist_pixels as px
from segstudio.editing.assist_pixels import FLAT, Crop, Point
from segstudio.editing.click_segment import click_segment
from segstudio.editing.click_watershed import click_area, degenerate, watershed_clicks, watershed_refine

__all__ = ["Crop", "FLAT", "MIN_BOX_SIDE", "click_segment", "grabcut_box", "grabcut_failure", "grabcut_refine",
           "magic_wand", "watershed_clicks", "watershed_split"]

# A GrabCut answer smaller than this part of the box counts as "collapsed" on one channel, and the
# watershed answers instead (0.1 and 0.2 did equally well on grey photos, EM slices and nuclei).
_MIN_BOX_FRACTION = 0.1
MIN_BOX_SIDE = 3  # px: a thinner box holds no object to separate from its surroundings
# Context around the object, as a fraction of (width + height) of the box, at least so many px:
BOX_MARGIN_MIN, BOX_MARGIN_DIV = 10, 8  # around a dragged box


def _centre_seed(shape, rect: Box, fraction: float = 0.25) -> np.ndarray:
    """An ellipse at the centre of `rect` (ROI coordinates), `fraction` of its width and height."""
    seed = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = rect
    centre = (int(round((x0 + x1 - 1) / 2)), int(round((y0 + y1 - 1) / 2)))
    axes = (max(1, int(round((x1 - x0) * fraction / 2))), max(1, int(round((y1 - y0) * fraction / 2))))
    cv2.ellipse(seed, centre, axes, 0, 0, 360, 1, -1)
    return seed.astype(bool)


def grabcut_box(image: np.ndarray, box: Box, iterations: int = 5,
                window: tuple[float, float] | None = None) -> Crop | None:
    """Foreground inside a box. Works on a region of interest around the box, not the whole image."""
    h, w = image.shape[:2]
    clipped = maskops.box_clip(box, w, h)
    if clipped is None or clipped[2] - clipped[0] < MIN_BOX_SIDE or clipped[3] - clipped[1] < MIN_BOX_SIDE:
        return None
    box = clipped
    window = px.window_for(image, window)
    margin = max(BOX_MARGIN_MIN, (box[2] - box[0] + box[3] - box[1]) // BOX_MARGIN_DIV)
    roi = px.roi_around(box, w, h, margin)
    assert roi is not None  # the box is inside the image
    crop = image[roi[1]:roi[3], roi[0]:roi[2]]
    rect = (box[0] - roi[0], box[1] - roi[1], box[2] - box[0], box[3] - box[1])
    if not px.is_single_channel(crop):
        img = px.rgb8(crop, window)
        mask = np.zeros(img.shape[:2], np.uint8)
        if not px.grabcut(img, mask, rect, iterations, cv2.GC_INIT_WITH_RECT):
            return None
        return _keep_largest((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), roi[0], roi[1])

    intensity = px.intensity(crop, window)
    inner = intensity[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]]
    if float(inner.max()) - float(inner.min()) < FLAT:
        return None  # one grey level in the window: nothing to separate (see grabcut_failure)
    mask = np.zeros(intensity.shape, np.uint8)
    found = None
    features = px.grey_features(intensity)
    if px.grabcut(features, mask, rect, iterations, cv2.GC_INIT_WITH_RECT):
        found = _keep_largest((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), roi[0], roi[1])
    if found is not None and found[0].sum() >= _MIN_BOX_FRACTION * rect[2] * rect[3]:
        return found
    # GrabCut collapsed (no intensity model separates the object here): the boundary does
    rx0, ry0 = rect[0], rect[1]
    inside = (rx0, ry0, rx0 + rect[2], ry0 + rect[3])
    markers = np.ones(intensity.shape, np.int32)
    markers[ry0:inside[3], rx0:inside[2]] = 0
    markers[:2, :] = markers[-2:, :] = markers[:, :2] = markers[:, -2:] = 1  # a box on the image edge
    seed = _centre_seed(intensity.shape, inside)
    markers[seed] = 2
    px.marker_watershed(intensity, markers)
    return _keep_seeded_mask(markers == 2, seed, roi)


def grabcut_failure(image: np.ndarray, box: Box | None, window: tuple[float, float] | None = None) -> str:
    """Why GrabCut found nothing in `box` (image pixels), in words for the status bar."""
    h, w = image.shape[:2]
    box = maskops.box_clip(box, w, h) if box is not None else None
    if box is None or box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE:
        return "GrabCut: the box is too small (or outside the image): drag a larger box around one object"
    crop = image[box[1]:box[3], box[0]:box[2]]
    window = px.window_for(image, window)
    view = px.intensity(crop, window) if px.is_single_channel(crop) else px.rgb8(crop, window).astype(np.float32)
    if float(view.max()) - float(view.min()) < FLAT:
        if image.dtype != np.uint8:
            return ("GrabCut found no object: the box shows a single grey level in the current window/level; "
                    "widen the window (Auto window or Levels) or draw the box elsewhere")
        what = "grey level" if px.is_single_channel(crop) else "flat colour"
        return f"GrabCut found no object: the box holds a single {what}, nothing to separate"
    return "GrabCut found no object in that box: draw the box a little larger than the object"


def grabcut_refine(image: np.ndarray, current: Crop | None, positive: list[Point], negative: list[Point],
                   radius: int = 4, iterations: int = 4, window: tuple[float, float] | None = None) -> Crop | None:
    """Refine a mask with seed clicks: positive points are sure foreground, negative sure background.

    GrabCut answers first; where it degenerates (it shrinks onto the object clicks, or floods the
    whole region of interest, as it does on one channel and from a single click), a marker
    watershed from the clicks and the current mask answers instead. (The window's Clicks tool now
    uses `click_segment`; this is the Clicks → GrabCut tool it replaced, kept as the benchmark's
    `grabcut` tool and as its measured baseline.)
    """
    area = click_area(image, current, positive, negative, radius, window)
    if area is None:
        return None
    gc = np.full(area.pixels.shape[:2], cv2.GC_PR_BGD, np.uint8)
    gc[area.inside] = cv2.GC_PR_FGD
    gc[area.pos_disc] = cv2.GC_FGD
    gc[area.neg_disc] = cv2.GC_BGD
    if not ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).any():
        return None
    found = None
    roi = area.roi
    if px.grabcut(area.pixels, gc, None, iterations, cv2.GC_INIT_WITH_MASK):
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        found = px.keep_seeded(fg, roi, area.positive) if area.positive else maskops.crop_to_content(fg, roi[0], roi[1])
    if not degenerate(found, roi, area.pos_disc, area.inside):
        return found
    return watershed_refine(area)


def magic_wand(image: np.ndarray, x: int, y: int, tolerance: float, connectivity: int = 8) -> Crop | None:
    """Pixels connected to (x, y) whose value differs from the seed by at most `tolerance`
    (in the image's own units: 0..255 for 8-bit, 0..65535 for 16-bit)."""
    h, w = image.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        return None
    img = image
    if img.dtype not in (np.uint8, np.float32):
        img = img.astype(np.float32)  # 16-bit: floodFill takes 8-bit or float
    img = np.ascontiguousarray(img)
    mask = np.zeros((h + 2, w + 2), np.uint8)
    t = float(tolerance)
    lo = (t, t, t) if img.ndim == 3 else t
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(img, mask, (int(x), int(y)), 0, lo, lo, flags)
    return maskops.crop_to_content(mask[1:-1, 1:-1].astype(bool))


def watershed_split(image: np.ndarray, region: Crop, seeds: list[tuple[float, float]],
                    window: tuple[float, float] | None = None) -> list[Crop]:
    """Split a region into one part per seed with marker watershed on the image gradient."""
    m, x, y = region
    if len(seeds) < 2:
        return [region]
    h, w = m.shape
    pad = 2
    H, W = image.shape[:2]
    roi = maskops.box_clip((x - pad, y - pad, x + w + pad, y + h + pad), W, H)
    assert roi is not None  # a region lies inside its image
    img = px.rgb8(image[roi[1]:roi[3], roi[0]:roi[2]], px.window_for(image, window))
    inside = maskops.window(m, x, y, roi)
    markers: np.ndarray = np.zeros(inside.shape, np.int32)
    markers[~inside] = 1  # background
    for k, (sx, sy) in enumerate(seeds, start=2):
        cx, cy = int(round(sx)) - roi[0], int(round(sy)) - roi[1]
        if 0 <= cx < markers.shape[1] and 0 <= cy < markers.shape[0] and inside[cy, cx]:
            cv2.circle(markers, (cx, cy), 2, k, -1)
    markers[~inside] = 1
    cv2.watershed(img, markers)
    # watershed marks the lines between parts with -1: give those pixels to a neighbouring part
    lines = (markers == -1) & inside
    if lines.any():
        parts_only = np.where(markers >= 2, markers, 0).astype(np.uint16)
        grown = cv2.dilate(parts_only, np.ones((3, 3), np.uint8))
        markers[lines] = grown[lines]
    parts = []
    for k in range(2, len(seeds) + 2):
        part = (markers == k) & inside
        c = maskops.crop_to_content(part, roi[0], roi[1])
        if c is not None:
            parts.append(c)
    return parts or [region]


def _keep_largest(fg: np.ndarray, ox: int, oy: int) -> Crop | None:
    parts = maskops.components(fg)
    if not parts:
        return None
    m, dx, dy = max(parts, key=lambda p: int(p[0].sum()))
    return maskops.fill_holes(m), ox + dx, oy + dy


def _keep_seeded_mask(fg: np.ndarray, seed: np.ndarray, roi: Box) -> Crop | None:
    """The components of `fg` that touch `seed`, holes filled (a box's object is one piece)."""
    n, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & fg])
    keep = keep[keep > 0]
    if not keep.size:
        return None
    c = maskops.crop_to_content(np.isin(labels, keep), roi[0], roi[1])
    return None if c is None else (maskops.fill_holes(c[0]), c[1], c[2])
