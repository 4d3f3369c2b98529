"""Classical assists that need no model: GrabCut from a box or seed clicks, flood-fill magic
wand, marker watershed. OpenCV and numpy only (no torch), so the window can call them from a
plain worker thread.

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

from segstudio.core import imageio, maskops
from segstudio.core.maskops import Box

Crop = tuple[np.ndarray, int, int]

# A GrabCut answer smaller than this part of the box counts as "collapsed" on one channel, and the
# watershed answers instead (0.1 and 0.2 did equally well on grey photos, EM slices and nuclei).
_MIN_BOX_FRACTION = 0.1
MIN_BOX_SIDE = 3  # px: a thinner box holds no object to separate from its surroundings
GREY_RGB_SPREAD = 2  # RGB channels this close everywhere are one grey channel (JPEG noise)
FLAT = 1.0  # a crop whose intensity spans less than this (0..255 scale) has nothing to separate
# Context around the object, as a fraction of (width + height) of the box, at least so many px:
BOX_MARGIN_MIN, BOX_MARGIN_DIV = 10, 8  # around a dragged box
REFINE_MARGIN_MIN, REFINE_MARGIN_DIV = 16, 6  # around the current mask and the clicks
CLICK_REACH_MIN, CLICK_REACH_DIV = 32, 6  # first click, no mask: min(w, h) / 6, at least 32 px
# GrabCut "could not grow": it added fewer pixels than this many, twice the object clicks' discs,
# or this part of the current mask.
MIN_GROWTH_PX, MIN_GROWTH_OF_MASK = 10, 0.05


def _window_for(image: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float] | None:
    """The window the user sees: the given one, or the one the display picks (whole image)."""
    if window is None and image.dtype != np.uint8:
        return imageio.auto_window(image)
    return window


def _is_single_channel(a: np.ndarray) -> bool:
    if a.ndim == 2 or a.shape[2] == 1:
        return True
    c = a[..., :3].astype(np.int32)  # RGB of a grey picture (a grey JPEG saved as RGB): one channel
    return bool(np.abs(c[..., 0] - c[..., 1]).max(initial=0) <= GREY_RGB_SPREAD
                and np.abs(c[..., 1] - c[..., 2]).max(initial=0) <= GREY_RGB_SPREAD)


def _intensity(a: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """One channel through the display window as float32 0..255 (not yet rounded to 8 bits)."""
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2) if a.shape[2] >= 3 else a[..., 0]
    a = a.astype(np.float32)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = window if window is not None else (0.0, 255.0)
    out = (a - np.float32(lo)) * np.float32(255.0 / max(hi - lo, 1e-12))
    np.clip(out, 0, 255, out=out)
    return out


def _rgb8(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """GrabCut and watershed want 8-bit, 3-channel pixels; 16-bit goes through the display window."""
    if image.ndim == 3 and image.shape[2] > 3:
        image = image[..., :3]  # RGBA: the alpha channel is no colour
    if image.dtype.kind == "f":
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(imageio.to_rgb_u8(image, window))


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _grey_features(intensity: np.ndarray, scale: float) -> np.ndarray:
    """3 channels for GrabCut from one: intensity, local median, local texture.

    The median (not a Gaussian mean) keeps object edges where they are: a blurred channel grows
    the object by about its radius (measured: IoU 0.74 with a σ=4 mean, 0.97 with the median on a
    noisy blob). Texture is the smoothed absolute difference from that median, scaled so that its
    99th percentile is 255."""
    k = 2 * int(round(scale)) + 1
    median = cv2.medianBlur(_u8(intensity), k).astype(np.float32)
    texture = cv2.GaussianBlur(np.abs(intensity - median), (0, 0), scale / 2)
    top = float(np.percentile(texture, 99)) if texture.size else 0.0
    texture = texture * (255.0 / top) if top > 1e-6 else np.zeros_like(texture)
    return np.ascontiguousarray(np.dstack([_u8(intensity), _u8(median), _u8(texture)]))


def _feature_scale(box: Box) -> float:
    return 3.0  # a 7x7 median: tried 2..4 on grey photos, EM slices and nuclei, 3..4 best


def _grabcut(pixels: np.ndarray, mask: np.ndarray, rect, iterations: int, mode: int) -> bool:
    """cv2.grabCut with a fixed seed (the same box gives the same answer); False when it cannot fit."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(pixels, mask, rect, bgd, fgd, iterations, mode)
    except cv2.error:
        return False  # a degenerate area (one colour): no model can be fitted
    return True


def _watershed(intensity: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Marker watershed on the lightly smoothed intensity; labels in place (1 background, 2 object)."""
    smooth = _u8(cv2.GaussianBlur(intensity, (0, 0), 1.5))
    cv2.watershed(np.ascontiguousarray(np.dstack([smooth] * 3)), markers)
    return markers


def _roi(box: Box, width: int, height: int, margin: int) -> Box | None:
    return maskops.box_clip((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), width, height)


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
    window = _window_for(image, window)
    margin = max(BOX_MARGIN_MIN, (box[2] - box[0] + box[3] - box[1]) // BOX_MARGIN_DIV)
    roi = _roi(box, w, h, margin)
    assert roi is not None  # the box is inside the image
    crop = image[roi[1]:roi[3], roi[0]:roi[2]]
    rect = (box[0] - roi[0], box[1] - roi[1], box[2] - box[0], box[3] - box[1])
    if not _is_single_channel(crop):
        img = _rgb8(crop, window)
        mask = np.zeros(img.shape[:2], np.uint8)
        if not _grabcut(img, mask, rect, iterations, cv2.GC_INIT_WITH_RECT):
            return None
        return _keep_largest((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), roi[0], roi[1])

    intensity = _intensity(crop, window)
    inner = intensity[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]]
    if float(inner.max()) - float(inner.min()) < FLAT:
        return None  # one grey level in the window: nothing to separate (see grabcut_failure)
    mask = np.zeros(intensity.shape, np.uint8)
    found = None
    features = _grey_features(intensity, _feature_scale(box))
    if _grabcut(features, mask, rect, iterations, cv2.GC_INIT_WITH_RECT):
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
    _watershed(intensity, markers)
    return _keep_seeded_mask(markers == 2, seed, roi)


def grabcut_failure(image: np.ndarray, box: Box | None, window: tuple[float, float] | None = None) -> str:
    """Why GrabCut found nothing in `box` (image pixels), in words for the status bar."""
    h, w = image.shape[:2]
    box = maskops.box_clip(box, w, h) if box is not None else None
    if box is None or box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE:
        return "GrabCut: the box is too small (or outside the image): drag a larger box around one object"
    crop = image[box[1]:box[3], box[0]:box[2]]
    window = _window_for(image, window)
    view = _intensity(crop, window) if _is_single_channel(crop) else _rgb8(crop, window).astype(np.float32)
    if float(view.max()) - float(view.min()) < FLAT:
        if image.dtype != np.uint8:
            return ("GrabCut found no object: the box shows a single grey level in the current window/level; "
                    "widen the window (Auto window or Levels) or draw the box elsewhere")
        what = "grey level" if _is_single_channel(crop) else "flat colour"
        return f"GrabCut found no object: the box holds a single {what}, nothing to separate"
    return "GrabCut found no object in that box: draw the box a little larger than the object"


def _click_reach(width: int, height: int) -> int:
    """How far around a first click (no region yet) to look: a click says nothing of the size."""
    return max(CLICK_REACH_MIN, min(width, height) // CLICK_REACH_DIV)


def grabcut_refine(image: np.ndarray, current: Crop | None, positive: list[tuple[float, float]],
                   negative: list[tuple[float, float]], radius: int = 4, iterations: int = 4,
                   window: tuple[float, float] | None = None) -> Crop | None:
    """Refine a mask with seed clicks: positive points are sure foreground, negative sure background.

    GrabCut answers first; where it degenerates (it shrinks onto the object clicks, or floods the
    whole region of interest, as it does on one channel and from a single click), a marker
    watershed from the clicks and the current mask answers instead.
    """
    h, w = image.shape[:2]
    pts = list(positive) + list(negative)
    has_current = current is not None and current[0].size > 0 and bool(current[0].any())
    box: Box | None = None
    if has_current:
        assert current is not None
        m, x, y = current
        box = (x, y, x + m.shape[1], y + m.shape[0])
    for px, py in pts:
        disc = (int(px) - radius, int(py) - radius, int(px) + radius + 1, int(py) + radius + 1)
        box = maskops.box_union(box, disc)
    if box is None or not positive and not has_current:
        return None
    margin = max(REFINE_MARGIN_MIN, (box[2] - box[0] + box[3] - box[1]) // REFINE_MARGIN_DIV)
    if not has_current:
        margin = max(margin, _click_reach(w, h))
    roi = _roi(box, w, h, margin)
    if roi is None:
        return None
    window = _window_for(image, window)
    crop = image[roi[1]:roi[3], roi[0]:roi[2]]
    single = _is_single_channel(crop)
    intensity = _intensity(crop, window) if single else None
    if intensity is not None and float(intensity.max()) - float(intensity.min()) < FLAT:
        return None  # one grey level in the window around the clicks: nothing to separate
    pixels = _grey_features(intensity, _feature_scale(box)) if intensity is not None else _rgb8(crop, window)
    shape = pixels.shape[:2]
    inside = maskops.window(current[0], current[1], current[2], roi) if has_current and current is not None \
        else np.zeros(shape, bool)
    pos_disc, neg_disc = _discs(shape, roi, positive, radius), _discs(shape, roi, negative, radius)
    gc = np.full(shape, cv2.GC_PR_BGD, np.uint8)
    gc[inside] = cv2.GC_PR_FGD
    gc[pos_disc] = cv2.GC_FGD
    gc[neg_disc] = cv2.GC_BGD
    if not ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).any():
        return None
    found = None
    if _grabcut(pixels, gc, None, iterations, cv2.GC_INIT_WITH_MASK):
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        found = _keep_seeded(fg, roi, positive) if positive else maskops.crop_to_content(fg, roi[0], roi[1])
    if not _degenerate(found, roi, pos_disc, inside):
        return found
    return _watershed_refine(intensity if intensity is not None else pixels, roi, inside, positive, negative,
                             pos_disc, neg_disc, radius)


def _discs(shape, roi: Box, points, radius: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for px, py in points:
        cv2.circle(out, (int(round(px)) - roi[0], int(round(py)) - roi[1]), radius, 1, -1)
    return out.astype(bool)


def _degenerate(found: Crop | None, roi: Box, pos_disc: np.ndarray, inside: np.ndarray) -> bool:
    """GrabCut's failure modes: nothing; only the object clicks (it could not grow, or shrank the
    region onto them); or the whole region of interest (a square, not an object)."""
    if found is None:
        return True
    fg = maskops.window(found[0], found[1], found[2], roi)
    grown = int((fg & ~pos_disc).sum())
    if grown < max(MIN_GROWTH_PX, 2 * int(pos_disc.sum()), MIN_GROWTH_OF_MASK * int(inside.sum())):
        return True
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    return bool(border.mean() > 0.5) and not bool(inside.all())


def _watershed_refine(pixels: np.ndarray, roi: Box, inside: np.ndarray, positive, negative,
                      pos_disc: np.ndarray, neg_disc: np.ndarray, radius: int) -> Crop | None:
    """Marker watershed: object markers are the object clicks and the core of the current mask
    (its part nearer an object click than a background click), background markers the background
    clicks, the far surroundings of the current mask and the edge of the region of interest."""
    shape = pos_disc.shape
    markers = np.zeros(shape, np.int32)
    # the edge of the region of interest is background; two pixels wide, since cv2.watershed
    # claims the outermost pixel row of its image for its own use
    markers[:2, :] = markers[-2:, :] = markers[:, :2] = markers[:, -2:] = 1
    area = int(inside.sum())
    if area:
        band = max(2 * radius + 2, int(0.3 * np.sqrt(area)))
        near = cv2.dilate((inside | pos_disc).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=band)
        markers[near == 0] = 1
        core = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
        if negative and core.any():
            anchors = pos_disc.copy()
            if not anchors.any():  # no object click: the deepest point of what is left of the mask
                rest = inside & ~_grow(neg_disc, 3 * radius)
                depth = cv2.distanceTransform(rest.astype(np.uint8), cv2.DIST_L2, 3)
                if depth.max() > 0:
                    anchors[np.unravel_index(int(depth.argmax()), shape)] = True
            if anchors.any():
                to_pos = cv2.distanceTransform((~anchors).astype(np.uint8), cv2.DIST_L2, 3)
                to_neg = cv2.distanceTransform((~neg_disc).astype(np.uint8), cv2.DIST_L2, 3)
                core &= to_pos < to_neg
            else:
                core[:] = False
        markers[core] = 2
    markers[pos_disc] = 2
    markers[neg_disc] = 1
    if not (markers == 2).any():
        return None
    if pixels.ndim == 2:
        _watershed(pixels, markers)
    else:
        cv2.watershed(np.ascontiguousarray(cv2.GaussianBlur(pixels, (0, 0), 1.0)), markers)
    fg = markers == 2
    if positive:
        return _keep_seeded(fg, roi, positive)
    return maskops.crop_to_content(fg, roi[0], roi[1])


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, px)).astype(bool)


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
    img = _rgb8(image[roi[1]:roi[3], roi[0]:roi[2]], _window_for(image, window))
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


def _keep_seeded(fg: np.ndarray, roi: Box, positive) -> Crop | None:
    """Keep the components that contain a positive seed (clicks elsewhere must not leave islands)."""
    n, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    keep = set()
    for px, py in positive:
        cx, cy = int(round(px)) - roi[0], int(round(py)) - roi[1]
        if 0 <= cy < labels.shape[0] and 0 <= cx < labels.shape[1] and labels[cy, cx] > 0:
            keep.add(int(labels[cy, cx]))
    if not keep:
        return maskops.crop_to_content(fg, roi[0], roi[1])
    return maskops.crop_to_content(np.isin(labels, list(keep)), roi[0], roi[1])


def _keep_seeded_mask(fg: np.ndarray, seed: np.ndarray, roi: Box) -> Crop | None:
    """The components of `fg` that touch `seed`, holes filled (a box's object is one piece)."""
    n, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & fg])
    keep = keep[keep > 0]
    if not keep.size:
        return None
    c = maskops.crop_to_content(np.isin(labels, keep), roi[0], roi[1])
    return None if c is None else (maskops.fill_holes(c[0]), c[1], c[2])
