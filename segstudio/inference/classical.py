"""Classical assists that need no model: GrabCut from a box or seed clicks, flood-fill magic
wand, marker watershed. OpenCV and numpy only (no torch), so the window can call them from a
plain worker thread.

All functions take the decoded image (uint8/uint16/float, gray or RGB) and return a cropped
boolean mask (mask, x, y), or None when nothing was found.
"""

from __future__ import annotations

import cv2
import numpy as np

from segstudio.core import imageio, maskops
from segstudio.core.maskops import Box

Crop = tuple[np.ndarray, int, int]


def _rgb8(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """GrabCut and watershed want 8-bit, 3-channel pixels; 16-bit goes through the display window."""
    return np.ascontiguousarray(imageio.to_rgb_u8(image, window))


def _roi(box: Box, width: int, height: int, margin: int) -> Box:
    return maskops.box_clip((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), width, height)


def grabcut_box(image: np.ndarray, box: Box, iterations: int = 5,
                window: tuple[float, float] | None = None) -> Crop | None:
    """Foreground inside a box. Works on a region of interest around the box, not the whole image."""
    h, w = image.shape[:2]
    box = maskops.box_clip(box, w, h)
    if box is None or box[2] - box[0] < 3 or box[3] - box[1] < 3:
        return None
    margin = max(10, (box[2] - box[0] + box[3] - box[1]) // 8)
    roi = _roi(box, w, h, margin)
    img = _rgb8(image[roi[1]:roi[3], roi[0]:roi[2]], window)
    mask = np.zeros(img.shape[:2], np.uint8)
    rect = (box[0] - roi[0], box[1] - roi[1], box[2] - box[0], box[3] - box[1])
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(img, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None  # a degenerate box (one colour): no model can be fitted
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return _keep_largest(fg, roi[0], roi[1])


def grabcut_refine(image: np.ndarray, current: Crop | None, positive: list[tuple[float, float]],
                   negative: list[tuple[float, float]], radius: int = 4, iterations: int = 4,
                   window: tuple[float, float] | None = None) -> Crop | None:
    """Refine a mask with seed clicks: positive points are sure foreground, negative sure background."""
    h, w = image.shape[:2]
    pts = list(positive) + list(negative)
    box = None
    if current is not None and current[0].size:
        m, x, y = current
        box = (x, y, x + m.shape[1], y + m.shape[0])
    for px, py in pts:
        box = maskops.box_union(box, (int(px) - radius, int(py) - radius, int(px) + radius + 1, int(py) + radius + 1))
    if box is None or not positive and current is None:
        return None
    margin = max(16, (box[2] - box[0] + box[3] - box[1]) // 6)
    roi = _roi(box, w, h, margin)
    img = _rgb8(image[roi[1]:roi[3], roi[0]:roi[2]], window)
    gc = np.full(img.shape[:2], cv2.GC_PR_BGD, np.uint8)
    if current is not None and current[0].size:
        m, x, y = current
        inside = maskops.window(m, x, y, roi)
        gc[inside] = cv2.GC_PR_FGD
    for (px, py), val in [(p, cv2.GC_FGD) for p in positive] + [(p, cv2.GC_BGD) for p in negative]:
        cv2.circle(gc, (int(round(px)) - roi[0], int(round(py)) - roi[1]), radius, int(val), -1)
    if not ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).any():
        return None
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(img, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return _keep_seeded(fg, roi, positive) if positive else maskops.crop_to_content(fg, roi[0], roi[1])


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
    img = _rgb8(image[roi[1]:roi[3], roi[0]:roi[2]], window)
    inside = maskops.window(m, x, y, roi)
    markers = np.zeros(inside.shape, np.int32)
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
