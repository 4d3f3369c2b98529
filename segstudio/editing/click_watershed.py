"""Clicks and the current region as markers: where the clicks' region of interest is, GrabCut's
ways of failing from clicks, and the marker watershed that answers then (or on its own, as the
`watershed` click tool of benchmarks/click_bench.py)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core import maskops
from segstudio.core.maskops import Box
from segstudio.editing import assist_pixels as px
from segstudio.editing.assist_pixels import Crop, Point

REFINE_MARGIN_MIN, REFINE_MARGIN_DIV = 16, 6  # context around the current mask and the clicks
CLICK_REACH_MIN, CLICK_REACH_DIV = 32, 6  # first click, no mask: min(w, h) / 6, at least 32 px
# GrabCut "could not grow": it added fewer pixels than this many, twice the object clicks' discs,
# or this part of the current mask.
MIN_GROWTH_PX, MIN_GROWTH_OF_MASK = 10, 0.05


@dataclass
class ClickArea:
    """The region of interest around the clicks and the current mask, and what lies in it."""
    roi: Box
    pixels: np.ndarray  # 3-channel 8-bit (colour, or the grey features)
    grey: np.ndarray | None  # the windowed intensity of a one-channel image
    inside: np.ndarray  # the current mask
    pos_disc: np.ndarray
    neg_disc: np.ndarray
    positive: list[Point]
    negative: list[Point]
    radius: int


def click_reach(width: int, height: int) -> int:
    """How far around a first click (no region yet) to look: a click says nothing of the size."""
    return max(CLICK_REACH_MIN, min(width, height) // CLICK_REACH_DIV)


def has_mask(current: Crop | None) -> bool:
    return current is not None and current[0].size > 0 and bool(current[0].any())


def click_area(image: np.ndarray, current: Crop | None, positive, negative, radius: int,
               window: tuple[float, float] | None) -> ClickArea | None:
    """The clicks' region of interest: the current mask and the click discs with a margin (a first
    click with no mask: `click_reach` around it). None when there is nothing to separate: no object
    click and no mask, or one grey level in the window."""
    h, w = image.shape[:2]
    positive, negative = px.inside_points(positive, w, h), px.inside_points(negative, w, h)
    has_current = has_mask(current)
    box: Box | None = None
    if has_current:
        assert current is not None
        m, x, y = current
        box = maskops.box_clip((x, y, x + m.shape[1], y + m.shape[0]), w, h)
    for cx, cy in positive + negative:
        disc = (int(cx) - radius, int(cy) - radius, int(cx) + radius + 1, int(cy) + radius + 1)
        box = maskops.box_union(box, disc)
    if box is None or not positive and not has_current:
        return None
    margin = max(REFINE_MARGIN_MIN, (box[2] - box[0] + box[3] - box[1]) // REFINE_MARGIN_DIV)
    if not has_current:
        margin = max(margin, click_reach(w, h))
    roi = px.roi_around(box, w, h, margin)
    if roi is None:
        return None
    window = px.window_for(image, window)
    pixels, grey = px.pixels_of(image[roi[1]:roi[3], roi[0]:roi[2]], window)
    if grey is not None and float(grey.max()) - float(grey.min()) < px.FLAT:
        return None  # one grey level in the window around the clicks: nothing to separate
    shape = pixels.shape[:2]
    inside = np.zeros(shape, bool)
    if has_current:
        assert current is not None
        inside = maskops.window(current[0], current[1], current[2], roi)
    return ClickArea(roi, pixels, grey, inside, px.discs(shape, roi, positive, radius),
                     px.discs(shape, roi, negative, radius), positive, negative, radius)


def degenerate(found: Crop | None, roi: Box, pos_disc: np.ndarray, inside: np.ndarray) -> bool:
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


def watershed_refine(area: ClickArea) -> Crop | None:
    """Marker watershed: object markers are the object clicks and the core of the current mask
    (its part nearer an object click than a background click), background markers the background
    clicks, the far surroundings of the current mask and the edge of the region of interest."""
    inside, pos_disc, neg_disc, radius = area.inside, area.pos_disc, area.neg_disc, area.radius
    shape = pos_disc.shape
    markers = np.zeros(shape, np.int32)
    # the edge of the region of interest is background; two pixels wide, since cv2.watershed
    # claims the outermost pixel row of its image for its own use
    markers[:2, :] = markers[-2:, :] = markers[:, :2] = markers[:, -2:] = 1
    size = int(inside.sum())
    if size:
        band = max(2 * radius + 2, int(0.3 * np.sqrt(size)))
        near = cv2.dilate((inside | pos_disc).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=band)
        markers[near == 0] = 1
        core = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
        if area.negative and core.any():
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
    if area.grey is not None:
        px.marker_watershed(area.grey, markers)
    else:
        cv2.watershed(np.ascontiguousarray(cv2.GaussianBlur(area.pixels, (0, 0), 1.0)), markers)
    fg = markers == 2
    if area.positive:
        return px.keep_seeded(fg, area.roi, area.positive)
    return maskops.crop_to_content(fg, area.roi[0], area.roi[1])


def watershed_clicks(image: np.ndarray, current: Crop | None, positive: list[Point], negative: list[Point],
                     radius: int = 4, window: tuple[float, float] | None = None) -> Crop | None:
    """The marker watershed from the clicks and the current mask alone (no colour model): the
    object and background markers of `watershed_refine` flood the image's gradient and meet on the
    strongest edge between them. None with nothing to separate."""
    area = click_area(image, current, positive, negative, radius, window)
    return None if area is None else watershed_refine(area)


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, steps)).astype(bool)
