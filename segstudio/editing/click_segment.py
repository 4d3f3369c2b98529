"""The Clicks tool (R): an object from object and background clicks, with no trained model.

`click_segment(image, current, positive, negative, radius, window)` has grabcut_refine's shape: the
current region (a crop or None), every click so far, the click discs' radius; it returns the new
region as a crop (mask, x, y), or None when there is nothing to separate. What it does, and why
(the measurements are in benchmarks/README.md, issue 25):

- The first click (no region yet) is taken to be inside an object of unknown size. GrabCut's loop
  runs over the whole image (scaled to WORK_PIXELS): the click's disc sure object, a disc of a
  sixth of the image's shorter side around it probable object, the rest probable background; the
  colour models are fitted to that labelling, the graph cut relabels, three times, and the image's
  colours decide the extent (the old Clicks → GrabCut looked only 32+ px around the click, so a
  large object came out as a patch of it: IoU 0.16 after one click on GrabCut-50, 0.73 here).
  Where GrabCut degenerates (it collapses onto the click, as on EM slices where every cell has the
  same grey and texture, or takes the whole image) the marker watershed from the click, within a
  local reach, answers instead: the boundary separates what no colour model does.
- A later click keeps the current region and changes it only around the clicks it contradicts (an
  object click outside it, a background click inside it). Around such a click at distance d from
  the region's edge, a disc of REACH * d may change (MIN_REACH px at least), and only the way the
  click asks: an object click's disc may only gain object, a background click's only lose it. The
  rest of the region stays as it was, so a click never undoes earlier work (letting either click
  change its disc both ways: 3.56 clicks to 90 % on GrabCut-50 against 3.66, but 13.54 on 52 COCO
  objects against 12.52, and a mean IoU after 3 clicks there of 0.50 against 0.61).
- The clicked neighbourhood, a disc of SAMPLE * d around the click, is the click's sample of what
  it marks: a click far from the edge sits in a large wrong area, one close to it in a thin one. The
  cut starts from it as object (background), and it weighs as much in the object's (background's)
  colour model as all the rest of the region. OpenCV's GrabCut could not do this: it learns its
  models from the current labelling, in which a missed part counts as background, so the
  background model owns that part's colours and the click gains its own disc and nothing more
  (the stalls of 10+ clicks in today's tool). The models are fitted here (colour_models) and cut
  by GrabCut's graph with the models frozen; then fitted again to that cut, and cut once more.
- Hard labels: the discs of `radius` px under the clicks, and the sample discs outside the other
  clicks' reach (inside an object click's reach the region may only gain, so its sample stays
  object). A sample that crossed the object's edge is undone by a background click there: the
  object click, now inside the region, samples only its own disc from then on.

The work is bounded: the changing area and its context (the whole image for a first click) is
worked at most WORK_PIXELS pixels, scaled down beyond that; where the scaled answer agrees with the
scaled region, the region keeps its own full-resolution pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from segstudio.core import maskops
from segstudio.core.maskops import Box
from segstudio.editing import assist_pixels as px
from segstudio.editing import colour_models
from segstudio.editing.assist_pixels import Crop, Point
from segstudio.editing.click_watershed import click_area, degenerate, has_mask, watershed_refine

WORK_PIXELS = 100_000  # a larger area is worked scaled down (a graph cut of 100k px: ~0.1-0.3 s)
FIRST_PRIOR_DIV = 6  # first click: probable object within min(w, h) / 6 of it
FIRST_ITERATIONS = 3  # fit and cut three times
# A contradicting click at distance d from the edge changes a disc of REACH * d. Clicks to 90 % on
# GrabCut-50 / on 52 COCO objects: reach 3: 4.02 / 13.40, 5: 3.66 / 12.52, 8: 3.46 / 12.79 (and less
# right after 3 clicks: mean IoU 0.85 / 0.57 against 0.88 / 0.61 with 5).
REACH, MIN_REACH = 5.0, 12
SAMPLE = 0.5  # ... and its disc of d / 2 is its sample of what it marks
CLICK_WEIGHT = 0.5  # the clicks' samples: this part of their colour model; the rest of the region the rest
CONTEXT, CONTEXT_MIN = 0.25, 16  # colours around the changing area: a quarter of its longer side
REFITS = 1  # fit the models to the first cut and cut again
MIN_MODEL_PIXELS = 50  # fewer pixels of the region (or of its outside) away from the changing area: fit to all of it
FLAT_SAMPLE = 2.0  # a click sample whose channels spread less than this (0..255) is one colour
MIN_SEPARATION = 0.5  # nats a pixel: a click's sample this much likelier under its own colour model


def click_segment(image: np.ndarray, current: Crop | None, positive: list[Point], negative: list[Point],
                  radius: int = 4, window: tuple[float, float] | None = None) -> Crop | None:
    """The object the clicks mark: `positive` clicks on it, `negative` ones beside it, `current` the
    region so far (None or an empty mask: a new object). Clicks off the image are ignored; None
    when there is nothing to separate (no object click and no region, a flat image)."""
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        return None
    positive, negative = px.inside_points(positive, w, h), px.inside_points(negative, w, h)
    radius = max(1, int(radius))
    window = px.window_for(image, window)
    if not has_mask(current):
        return _first(image, positive, negative, radius, window) if positive else None
    assert current is not None
    return _update(image, current, positive, negative, radius, window)


# ---------------------------------------------------------------- scaled work areas


def _scale(box: Box) -> float:
    n = (box[2] - box[0]) * (box[3] - box[1])
    return 1.0 if n <= WORK_PIXELS else float(np.sqrt(WORK_PIXELS / n))


def _shrink(a: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """`a` resized to size (w, h); dtypes OpenCV cannot resize go through float32."""
    if (a.shape[1], a.shape[0]) == size:
        return a
    if a.dtype == bool:
        return cv2.resize(a.astype(np.uint8) * 255, size, interpolation=interpolation) > 127
    if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        a = a.astype(np.float32)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    out = cv2.resize(a, size, interpolation=interpolation)
    return out[..., None] if a.ndim == 3 and out.ndim == 2 else out


class _Work:
    """A box of the image worked at `scale`: its pixels, and click positions in its coordinates."""

    def __init__(self, image: np.ndarray, box: Box, window: tuple[float, float] | None) -> None:
        self.box, self.scale = box, _scale(box)
        bw, bh = box[2] - box[0], box[3] - box[1]
        self.size = (max(1, int(round(bw * self.scale))), max(1, int(round(bh * self.scale))))
        self.pixels, self.grey = px.pixels_of(_shrink(image[box[1]:box[3], box[0]:box[2]], self.size), window)
        self.shape = self.pixels.shape[:2]

    def flat(self) -> bool:
        view = self.grey if self.grey is not None else self.pixels
        return float(view.max()) - float(view.min()) < px.FLAT

    def point(self, p: Point) -> tuple[int, int]:
        return (min(self.size[0] - 1, int(round((p[0] - self.box[0]) * self.scale))),
                min(self.size[1] - 1, int(round((p[1] - self.box[1]) * self.scale))))

    def length(self, v: float) -> int:
        return max(1, int(round(v * self.scale)))

    def discs(self, points, radius: float) -> np.ndarray:
        out = np.zeros(self.shape, np.uint8)
        for p in points:
            cv2.circle(out, self.point(p), self.length(radius), 1, -1)
        return out.astype(bool)

    def full(self, fg: np.ndarray, before: np.ndarray) -> np.ndarray:
        """The answer at full resolution: `before` (full resolution) where the scaled answer agrees
        with the scaled `before`, the scaled answer where it changed it."""
        if self.scale == 1.0:
            return fg
        size = (self.box[2] - self.box[0], self.box[3] - self.box[1])
        changed = _shrink(fg != _shrink(before, self.size), size, cv2.INTER_NEAREST)
        return np.where(changed, _shrink(fg, size, cv2.INTER_LINEAR), before)


# ---------------------------------------------------------------- first click


def _first(image: np.ndarray, positive: list[Point], negative: list[Point], radius: int,
           window: tuple[float, float] | None) -> Crop | None:
    h, w = image.shape[:2]
    work = _Work(image, (0, 0, w, h), window)
    if work.flat():
        return None
    labels = np.full(work.shape, cv2.GC_PR_BGD, np.uint8)
    prior = max(radius + 2, min(w, h) // FIRST_PRIOR_DIV)
    labels[work.discs(positive, prior)] = cv2.GC_PR_FGD
    pos = work.discs(positive, radius)
    labels[pos] = cv2.GC_FGD
    labels[work.discs(negative, radius)] = cv2.GC_BGD
    found = None
    roi = (0, 0, work.size[0], work.size[1])
    scaled = [(float(x), float(y)) for x, y in (work.point(p) for p in positive)]
    known = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    for _ in range(FIRST_ITERATIONS):  # GrabCut's loop: fit the models to the labelling, cut, again
        obj = colour_models.fit([(work.pixels[known], 1.0)])
        bg = colour_models.fit([(work.pixels[~known], 1.0)])
        cut = labels.copy()
        if obj is None or bg is None or not colour_models.cut(work.pixels, cut, obj, bg):
            break
        known = (cut == cv2.GC_FGD) | (cut == cv2.GC_PR_FGD)
        found = px.keep_seeded(known, roi, scaled)
    if degenerate(found, roi, pos, np.zeros(work.shape, bool)):
        area = click_area(image, None, positive, negative, radius, window)
        return None if area is None else watershed_refine(area)
    assert found is not None
    if work.scale == 1.0:
        return found
    fm, fx, fy = found  # back to full resolution: the answer's own box, scaled up
    x0, y0 = int(fx / work.scale), int(fy / work.scale)
    x1 = min(w, int(np.ceil((fx + fm.shape[1]) / work.scale)))
    y1 = min(h, int(np.ceil((fy + fm.shape[0]) / work.scale)))
    return maskops.crop_to_content(_shrink(fm, (max(1, x1 - x0), max(1, y1 - y0)), cv2.INTER_LINEAR), x0, y0)


# ---------------------------------------------------------------- later clicks


def _update(image: np.ndarray, current: Crop, positive: list[Point], negative: list[Point], radius: int,
            window: tuple[float, float] | None) -> Crop | None:
    h, w = image.shape[:2]
    m, mx, my = current
    mask_box = maskops.box_clip((mx, my, mx + m.shape[1], my + m.shape[0]), w, h)
    if mask_box is None:
        return _first(image, positive, negative, radius, window) if positive else None
    wrong = _contradicting(m, mx, my, mask_box, positive, negative, w, h)
    if not wrong:
        return maskops.crop_to_content(maskops.window(m, mx, my, mask_box), mask_box[0], mask_box[1])
    changing: Box | None = None
    for (x, y), _, d in wrong:
        reach = max(MIN_REACH, REACH * d)
        changing = maskops.box_union(changing, (int(x - reach), int(y - reach), int(x + reach) + 2, int(y + reach) + 2))
    assert changing is not None
    context = max(CONTEXT_MIN, int(CONTEXT * max(changing[2] - changing[0], changing[3] - changing[1])))
    roi = px.roi_around(changing, w, h, context)
    assert roi is not None  # it holds a click on the image
    work = _Work(image, roi, window)
    before = maskops.window(m, mx, my, roi)
    region = _shrink(before, work.size)
    grows, shrinks = np.zeros(work.shape, np.uint8), np.zeros(work.shape, np.uint8)
    pos_sample, neg_sample = work.discs(positive, radius), work.discs(negative, radius)
    for p, is_object, d in wrong:
        cv2.circle(grows if is_object else shrinks, work.point(p), work.length(max(MIN_REACH, REACH * d)), 1, -1)
        cv2.circle(pos_sample.view(np.uint8) if is_object else neg_sample.view(np.uint8), work.point(p),
                   work.length(max(radius, SAMPLE * d)), 1, -1)
    fg = _cut(work, region, grows.astype(bool), shrinks.astype(bool), pos_sample, neg_sample,
              work.discs(positive, radius), work.discs(negative, radius), bool(negative))
    union = maskops.box_union(mask_box, roi)
    out = maskops.window(m, mx, my, union)
    out[roi[1] - union[1]:roi[3] - union[1], roi[0] - union[0]:roi[2] - union[0]] = work.full(fg, before)
    if positive:  # what the cut left apart from every object click goes, but outside the area the cut
        # worked on the region stays as it was (a part of it far away is not the click's business)
        keep = maskops.window(m, mx, my, union)
        keep[roi[1] - union[1]:roi[3] - union[1], roi[0] - union[0]:roi[2] - union[0]] = False
        seeded = px.keep_seeded(out, union, positive)
        if seeded is not None:
            sm, sx, sy = seeded
            keep[sy - union[1]:sy - union[1] + sm.shape[0], sx - union[0]:sx - union[0] + sm.shape[1]] |= sm
        return maskops.crop_to_content(keep, union[0], union[1])
    return maskops.crop_to_content(out, union[0], union[1])


def _contradicting(m: np.ndarray, mx: int, my: int, mask_box: Box, positive: list[Point], negative: list[Point],
                   w: int, h: int) -> list[tuple[Point, bool, float]]:
    """(click, is an object click, its distance to the region's edge) for each click the region
    contradicts: an object click outside it, a background click inside it."""
    area = mask_box
    for p in positive + negative:
        cx, cy = px.pixel_of(p, w, h)
        area = maskops.box_union(area, (cx, cy, cx + 1, cy + 1))
    inside = np.pad(maskops.window(m, mx, my, area), 1)  # the frame: the image edge counts as an edge
    u8 = inside.astype(np.uint8)
    to_region = cv2.distanceTransform(1 - u8, cv2.DIST_L2, 5)
    to_outside = cv2.distanceTransform(u8, cv2.DIST_L2, 5)
    out = []
    for p, is_object in [(p, True) for p in positive] + [(p, False) for p in negative]:
        cx, cy = px.pixel_of(p, w, h)
        iy, ix = cy - area[1] + 1, cx - area[0] + 1
        if bool(inside[iy, ix]) != is_object:
            out.append((p, is_object, float(to_region[iy, ix] if is_object else to_outside[iy, ix])))
    return out


def _separable(pixels: np.ndarray, obj: np.ndarray, bg: np.ndarray, pos_sample: np.ndarray,
               neg_sample: np.ndarray) -> bool:
    """Whether the colour models tell the clicks' samples apart. A flat sample (one colour: a
    drawing, a screenshot, a mask) must be clearly (MIN_SEPARATION nats a pixel) more likely under
    its own model; where it is not (a click on a flat area the other side shares), the graph cut has
    nothing to decide by and cv2.grabCut took 10 s on a 350 x 350 drawing, minutes on larger ones, so
    the clicks' discs answer. Textured samples always go to the cut (skipping them cost 0.2 clicks
    to 90 % on GrabCut-50)."""
    for sample, own, other in ((pos_sample, obj, bg), (neg_sample, bg, obj)):
        if sample.any():
            px_ = pixels[sample]
            if float(px_.std(axis=0).max()) >= FLAT_SAMPLE:
                continue  # a textured sample: the cut has evidence to weigh even when the means agree
            gap = float(np.mean(colour_models.log_likelihood(own, px_) - colour_models.log_likelihood(other, px_)))
            if not gap >= MIN_SEPARATION:
                return False
    return True


def _cut(work: _Work, region: np.ndarray, grows: np.ndarray, shrinks: np.ndarray, pos_sample: np.ndarray,
         neg_sample: np.ndarray, pos: np.ndarray, neg: np.ndarray, has_negative: bool) -> np.ndarray:
    """The region after the cut: it may grow inside `grows` (the reach of object clicks) and shrink
    inside `shrinks` (that of background clicks), the clicks' own discs are hard labels, and the
    colour models weigh the click samples CLICK_WEIGHT."""
    grows, shrinks = grows | pos_sample, shrinks | neg_sample
    reach = grows | shrinks
    start = (region | pos_sample) & ~neg_sample
    labels = np.where(start, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    labels[shrinks & start] = cv2.GC_PR_FGD
    labels[grows & ~start] = cv2.GC_PR_BGD
    labels[pos] = cv2.GC_FGD
    labels[neg] = cv2.GC_BGD
    rest = ~pos_sample & ~neg_sample
    known, trusted = start, ~reach  # first fit: what the region says away from the changing area
    fg = start
    for _ in range(1 + REFITS):
        obj_rest, bg_rest = known & trusted & rest, ~known & trusted & rest
        if obj_rest.sum() < MIN_MODEL_PIXELS or bg_rest.sum() < MIN_MODEL_PIXELS:
            obj_rest, bg_rest = known & rest, ~known & rest  # the reach covers (nearly) all: the region says
        obj = colour_models.fit([(work.pixels[obj_rest], 1 - CLICK_WEIGHT), (work.pixels[pos_sample], CLICK_WEIGHT)])
        bg = colour_models.fit([(work.pixels[bg_rest], 1 - CLICK_WEIGHT if has_negative else 1.0),
                                (work.pixels[neg_sample], CLICK_WEIGHT)])
        if obj is None or bg is None or not _separable(work.pixels, obj, bg, pos_sample, neg_sample):
            break
        cut = labels.copy()
        if not colour_models.cut(work.pixels, cut, obj, bg):
            break
        fg = (cut == cv2.GC_FGD) | (cut == cv2.GC_PR_FGD)
        known, trusted = fg, np.ones(work.shape, bool)
    return fg
