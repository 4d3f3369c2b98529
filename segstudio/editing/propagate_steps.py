"""The pieces of one propagation step (propagate.py says which method uses which): both frames seen
through one window, OpenCV's DIS optical flow both ways, a mask warped by it, the flow's
forward-backward consistency inside a mask, a rigid re-fit by template matching, and the two
classical refinements of a warped mask (GrabCut, marker watershed). numpy + OpenCV only."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core import imageio
from segstudio.editing import assist_pixels as px

FB_TOLERANCE, FB_RELATIVE = 1.0, 0.1  # px, and a part of the motion: a consistent round trip
FLOW_MARGIN = 2  # px around a warped mask's box
MAX_SIDE = 32767  # OpenCV's remap takes no larger frame
MIN_FLOW_SIDE = 16  # px: DIS needs 12 px or more a side
PHOTO_SMOOTH = 1.0  # sigma (px) of the smoothing before pixels are compared across frames
PHOTO_MIN, PHOTO_TIMES = 12.0, 3.0  # "the same pixel": within 3x the frame's median difference, 12 at least
REFIT_SEARCH = 0.5  # re-fit: search a shift of up to half the object's box side (at least 4 px)


def grey_pair(prev_image: np.ndarray, next_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both frames as float32 0..255 intensity through one window (the two frames' joint 0.5..99.5
    percentiles for 16-bit and float, 0..255 for 8-bit), so the flow compares like with like."""
    for name, im in (("previous", prev_image), ("next", next_image)):
        if not isinstance(im, np.ndarray) or im.ndim not in (2, 3) or im.shape[0] == 0 or im.shape[1] == 0:
            raise ValueError(f"the {name} frame is not an image (shape {getattr(im, 'shape', None)})")
        if im.ndim == 3 and im.shape[2] not in (1, 3, 4):
            raise ValueError(f"the {name} frame has {im.shape[2]} channels: give gray, RGB or RGBA")
    if max(prev_image.shape[:2]) >= MAX_SIDE:
        raise ValueError(f"a frame of {prev_image.shape[1]}x{prev_image.shape[0]}: propagation works on frames "
                         f"under {MAX_SIDE} px a side")
    if prev_image.shape[:2] != next_image.shape[:2]:
        h0, w0 = prev_image.shape[:2]
        h1, w1 = next_image.shape[:2]
        raise ValueError(f"frames of different sizes cannot be propagated between: {w0}x{h0} and {w1}x{h1}")
    window = None
    if prev_image.dtype != np.uint8 or next_image.dtype != np.uint8:
        window = imageio.auto_window(np.concatenate([_one(prev_image).astype(np.float32),
                                                     _one(next_image).astype(np.float32)], axis=0))
    return px.intensity(prev_image, window), px.intensity(next_image, window)


def _one(a: np.ndarray) -> np.ndarray:
    a = a[..., :3].mean(axis=2) if a.ndim == 3 and a.shape[2] >= 3 else (a[..., 0] if a.ndim == 3 else a)
    return np.nan_to_num(a) if a.dtype.kind == "f" else a


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 1.0


@dataclass
class Flow:
    fwd: np.ndarray  # (H, W, 2): where each pixel of the previous frame goes on the next one
    bwd: np.ndarray  # (H, W, 2): where each pixel of the next frame came from

    g0: np.ndarray  # the two frames, smoothed (photometric consistency compares them)
    g1: np.ndarray
    tolerance: float  # intensity difference (0..255) that still counts as the same pixel

    @classmethod
    def between(cls, g0: np.ndarray, g1: np.ndarray) -> "Flow":
        h, w = g0.shape
        # DIS refuses frames under 12 px a side; small frames are padded (edge copied) and cropped
        ph, pw = max(0, MIN_FLOW_SIDE - h), max(0, MIN_FLOW_SIDE - w)
        a = cv2.copyMakeBorder(px.u8(g0), 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        b = cv2.copyMakeBorder(px.u8(g1), 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        if min(a.shape) < 64:  # DIS's coarsest level must keep a few patches: small frames use small patches
            dis.setPatchSize(4)
            dis.setPatchStride(2)
        fwd, bwd = dis.calc(a, b, None)[:h, :w], dis.calc(b, a, None)[:h, :w]
        s0 = cv2.GaussianBlur(g0, (0, 0), PHOTO_SMOOTH)
        s1 = cv2.GaussianBlur(g1, (0, 0), PHOTO_SMOOTH)
        flow = cls(np.ascontiguousarray(fwd), np.ascontiguousarray(bwd), s0, s1, PHOTO_MIN)
        # what the whole frame pair differs by under the flow (noise, a section far from the last
        # one): a pixel of an object is "the same" within a few times that
        diff = np.abs(flow.landing(s1, np.nonzero(np.ones((h, w), bool))) - s0.ravel())
        flow.tolerance = max(PHOTO_MIN, PHOTO_TIMES * float(np.median(diff)))
        return flow

    def landing(self, img: np.ndarray, where: tuple[np.ndarray, ...]) -> np.ndarray:
        """`img` (next frame) sampled where the forward flow sends the pixels `where` (bilinear)."""
        ys, xs = where
        f = self.fwd[ys, xs]
        h, w = img.shape
        x = np.clip(xs + f[:, 0], 0, w - 1)
        y = np.clip(ys + f[:, 1], 0, h - 1)
        x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        ax, ay = x - x0, y - y0
        top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
        bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
        return top * (1 - ay) + bottom * ay

    def staying(self, mask: np.ndarray) -> np.ndarray:
        """The mask's pixels that the forward flow keeps on the frame."""
        h, w = mask.shape
        ys, xs = np.nonzero(mask)
        f = self.fwd[ys, xs]
        tx, ty = xs + f[:, 0], ys + f[:, 1]
        out = np.zeros_like(mask)
        keep = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        out[ys[keep], xs[keep]] = True
        return out

    def photo_consistency(self, mask: np.ndarray) -> float:
        """The share of the mask's pixels that look the same (within `tolerance`) where the flow
        sends them: low where the object is gone (the background it uncovered is not the object).
        Pixels sent off the frame are left out; 0 when all of them go."""
        where = np.nonzero(self.staying(mask))
        if not len(where[0]):
            return 0.0
        diff = np.abs(self.landing(self.g1, where) - self.g0[where])
        return float((diff <= self.tolerance).mean())

    def warp(self, mask: np.ndarray) -> np.ndarray:
        """The mask on the next frame: each next-frame pixel takes the mask's value where the
        backward flow says it came from (bilinear, kept at >= 0.5), worked in the box the forward
        flow sends the mask to."""
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        if not len(xs):
            return np.zeros_like(mask)
        d = self.fwd[ys, xs]
        x0 = int(np.floor(min(xs.min(), (xs + d[:, 0]).min()))) - FLOW_MARGIN
        x1 = int(np.ceil(max(xs.max(), (xs + d[:, 0]).max()))) + FLOW_MARGIN + 1
        y0 = int(np.floor(min(ys.min(), (ys + d[:, 1]).min()))) - FLOW_MARGIN
        y1 = int(np.ceil(max(ys.max(), (ys + d[:, 1]).max()))) + FLOW_MARGIN + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        out = np.zeros_like(mask)
        if x1 <= x0 or y1 <= y0:
            return out
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        b = self.bwd[y0:y1, x0:x1]
        val = cv2.remap(mask.astype(np.float32), gx + b[..., 0], gy + b[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[y0:y1, x0:x1] = val >= 0.5
        return out

    def fb_consistency(self, mask: np.ndarray) -> float:
        return fb_consistency(self, mask)


def fb_consistency(flow: Flow, mask: np.ndarray) -> float:
    """The share of the mask's pixels whose forward flow, followed by the backward flow where it
    lands, comes back within FB_TOLERANCE px + FB_RELATIVE of the motion. Pixels the flow sends off
    the frame are left out (an object leaving the frame is no error); 0 when all of them go."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    f = flow.fwd[ys, xs]
    tx, ty = xs + f[:, 0], ys + f[:, 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    if not inside.any():
        return 0.0
    qx = np.clip(np.rint(tx), 0, w - 1).astype(np.intp)
    qy = np.clip(np.rint(ty), 0, h - 1).astype(np.intp)
    err = np.hypot(*(f + flow.bwd[qy, qx]).T)
    ok = err <= FB_TOLERANCE + FB_RELATIVE * np.hypot(*f.T)
    return float(ok[inside].mean())


def refit(g0: np.ndarray, g1: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask moved by the shift (within REFIT_SEARCH of its box side) whose window on the next
    frame best matches (normalised cross-correlation) the object's box on this one."""
    box = _box(mask)
    if box is None:
        return mask.copy()
    x0, y0, x1, y1 = box
    h, w = mask.shape
    s = max(4, int(REFIT_SEARCH * max(x1 - x0, y1 - y0)))
    tmpl = g0[y0:y1, x0:x1]
    sx0, sy0, sx1, sy1 = max(0, x0 - s), max(0, y0 - s), min(w, x1 + s), min(h, y1 + s)
    area = g1[sy0:sy1, sx0:sx1]
    if float(tmpl.std()) < 1e-3 or area.shape[0] < tmpl.shape[0] or area.shape[1] < tmpl.shape[1]:
        return mask.copy()
    score = cv2.matchTemplate(area, tmpl, cv2.TM_CCOEFF_NORMED)
    _, _, _, (bx, by) = cv2.minMaxLoc(np.nan_to_num(score, nan=-1.0))
    return shift(mask, sx0 + bx - x0, sy0 + by - y0)


def shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _radius(mask: np.ndarray) -> float:
    return float(np.sqrt(np.count_nonzero(mask) / np.pi))


def _disc(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _ring(mask: np.ndarray) -> int:
    """How far an edge may move in one step: a fifth of the object's radius, 2..12 px."""
    return int(np.clip(round(0.2 * _radius(mask)) + 1, 2, 12))


def _core(mask: np.ndarray) -> np.ndarray:
    """The mask's inside, away from its edge (the mask itself when eroding would empty it)."""
    r = max(1, _ring(mask) // 2)
    core = cv2.erode(mask.astype(np.uint8), _disc(r)).astype(bool)
    return core if core.any() else mask


def _pixels(g1: np.ndarray, image: np.ndarray) -> np.ndarray:
    """3-channel 8-bit pixels of the next frame for GrabCut / watershed: colour where it is
    colour, the grey features (assist_pixels.grey_features) where it is one channel."""
    if image.ndim == 3 and not px.is_single_channel(image):
        return px.rgb8(image, px.window_for(image, None))
    return px.grey_features(g1)


def grabcut_fit(g1: np.ndarray, image: np.ndarray, warped: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """GrabCut seeded by the warped mask: its core sure object, the rest of it probable object, a
    ring of _ring px around it probable background, beyond that (and the other objects' cores)
    sure background. Keeps the parts that touch the core; the warped mask where GrabCut fails."""
    box = _box(warped)
    if box is None:
        return warped
    r = _ring(warped)
    h, w = warped.shape
    m = 2 * r + 4
    x0, y0, x1, y1 = max(0, box[0] - m), max(0, box[1] - m), min(w, box[2] + m), min(h, box[3] + m)
    crop = warped[y0:y1, x0:x1]
    grown = cv2.dilate(crop.astype(np.uint8), _disc(r)).astype(bool)
    core = _core(crop)
    gc = np.full(crop.shape, cv2.GC_BGD, np.uint8)
    gc[grown] = cv2.GC_PR_BGD
    gc[crop] = cv2.GC_PR_FGD
    for o in others:
        oc = o[y0:y1, x0:x1]
        if oc.any():
            gc[_core(oc) & ~core] = cv2.GC_BGD
    gc[core] = cv2.GC_FGD
    if not (gc == cv2.GC_BGD).any():
        return warped
    pixels = np.ascontiguousarray(_pixels(g1, image)[y0:y1, x0:x1])
    if not px.grabcut(pixels, gc, None, 3, cv2.GC_INIT_WITH_MASK):
        return warped
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    n, lab = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    keep = np.unique(lab[core & fg])
    out = np.zeros_like(warped)
    out[y0:y1, x0:x1] = np.isin(lab, keep[keep > 0])
    return out


def watershed_fit(g1: np.ndarray, image: np.ndarray, warped: list[np.ndarray]) -> list[np.ndarray]:
    """All warped masks refined at once by a marker watershed on the next frame: each object's
    core is its marker, pixels beyond its ring (_ring px) from every warped mask are background;
    each object keeps only what lies within its own ring. A pixel two cores claim is nobody's."""
    h, w = g1.shape
    markers = np.zeros((h, w), np.int32)
    reach = np.zeros((h, w), bool)
    owners = np.zeros((h, w), np.int32)
    grown_all = []
    for k, m in enumerate(warped):
        if not m.any():
            grown_all.append(m)
            continue
        grown = cv2.dilate(m.astype(np.uint8), _disc(_ring(m))).astype(bool)
        grown_all.append(grown)
        reach |= grown
        core = _core(m)
        owners[core] = np.where(owners[core] == 0, k + 2, -1)
    markers[~reach] = 1
    markers[owners > 0] = owners[owners > 0]
    if not (markers > 1).any():
        return [m.copy() for m in warped]
    smooth = cv2.GaussianBlur(_pixels(g1, image), (0, 0), 1.0)
    cv2.watershed(np.ascontiguousarray(smooth), markers)
    lines = markers == -1
    if lines.any():  # the watershed's dividing lines: to a neighbouring object (the highest id around)
        parts = np.where(markers >= 1, markers, 0).astype(np.uint16)
        grown_ids = cv2.dilate(parts, np.ones((3, 3), np.uint8))
        markers[lines] = grown_ids[lines]
    return [(markers == k + 2) & g if m.any() else m.copy()
            for k, (m, g) in enumerate(zip(warped, grown_all, strict=True))]


LEVEL_SMOOTH = 1.0  # sigma (px) of the smoothing before an iso-level is learned or applied
LEVEL_EXPLAINS = 0.6  # the learned level must reproduce the previous mask at this IoU to be used


def level_fit(g0: np.ndarray, g1: np.ndarray, before: list[np.ndarray], warped: list[np.ndarray]) -> list[np.ndarray]:
    """Each object re-fitted as an iso-intensity area: the level (and side: brighter or darker)
    that best reproduces its mask on the previous frame, within a ring of _ring px around it, is
    applied to the next frame within the ring around its warped mask; the parts that touch its
    warped core are kept, holes filled. An object the level cannot explain (IoU < LEVEL_EXPLAINS on
    its own frame) keeps its warped mask; one whose level finds nothing there has faded out (empty).
    A pixel two objects claim goes to the one whose warped mask is nearer."""
    s0 = cv2.GaussianBlur(g0, (0, 0), LEVEL_SMOOTH)
    s1 = cv2.GaussianBlur(g1, (0, 0), LEVEL_SMOOTH)
    out = []
    for m0, w in zip(before, warped, strict=True):
        if not m0.any() or not w.any():
            out.append(w.copy())
            continue
        level = _learn_level(s0, m0)
        if level is None:
            out.append(w.copy())
            continue
        t, bright = level
        grown = cv2.dilate(w.astype(np.uint8), _disc(_ring(m0))).astype(bool)
        fg = grown & ((s1 >= t) if bright else (s1 <= t))
        n, lab = cv2.connectedComponents(fg.astype(np.uint8), connectivity=4)
        keep = np.unique(lab[_core(w) & fg])
        found = np.isin(lab, keep[keep > 0])
        out.append(_fill(found) if found.any() else found)
    return _resolve(out, warped)


def _learn_level(s0: np.ndarray, mask: np.ndarray) -> tuple[float, bool] | None:
    grown = cv2.dilate(mask.astype(np.uint8), _disc(_ring(mask))).astype(bool)
    inside, ring = s0[mask], s0[grown & ~mask]
    if not ring.size or not inside.size:
        return None
    bright = float(np.median(inside)) >= float(np.median(ring))
    vals = s0[grown]
    best, best_t = -1.0, 0.0
    for t in np.unique(np.percentile(vals, np.arange(2, 99, 2))):
        fg = (vals >= t) if bright else (vals <= t)
        truth = mask[grown]
        inter = int(np.count_nonzero(fg & truth))
        score = inter / max(int(np.count_nonzero(fg | truth)), 1)
        if score > best:
            best, best_t = score, float(t)
    return (best_t, bright) if best >= LEVEL_EXPLAINS else None


def _fill(mask: np.ndarray) -> np.ndarray:
    from segstudio.core import maskops
    return maskops.fill_holes(mask)


def _resolve(masks: list[np.ndarray], warped: list[np.ndarray]) -> list[np.ndarray]:
    """Pixels claimed by more than one mask go to the object whose warped mask is nearest."""
    if len(masks) < 2:
        return masks
    count = np.zeros(masks[0].shape, np.int32)
    for m in masks:
        count += m
    contested = count > 1
    if not contested.any():
        return masks
    ys, xs = np.nonzero(contested)
    best = np.full(len(ys), np.inf)
    owner = np.full(len(ys), -1)
    for k, (m, w) in enumerate(zip(masks, warped, strict=True)):
        if not m[ys, xs].any():
            continue
        d = cv2.distanceTransform((~w).astype(np.uint8), cv2.DIST_L2, 3)[ys, xs]
        d = np.where(m[ys, xs], d, np.inf)
        better = d < best
        best[better], owner[better] = d[better], k
    out = [m.copy() for m in masks]
    for k, m in enumerate(out):
        m[ys, xs] = owner == k
        m[ys, xs] &= masks[k][ys, xs]
    return out


CONTRAST_MIN = 0.1  # an object that stands out from its ring by less than this (in std) has no contrast to lose


def contrast(g: np.ndarray, mask: np.ndarray) -> float:
    """How much the object stands out from the ring of _ring px around it: (mean inside - mean of
    the ring) / the spread of both together."""
    grown = cv2.dilate(mask.astype(np.uint8), _disc(_ring(mask))).astype(bool)
    ring = grown & ~mask
    if not ring.any() or not mask.any():
        return 0.0
    return float((g[mask].mean() - g[ring].mean()) / (g[grown].std() + 1e-3))


def contrast_kept(flow: Flow, before: np.ndarray, after: np.ndarray) -> float:
    """The share of its contrast with its surroundings the object keeps on the next frame (0..1):
    a nucleus past its last slice, or an object that is gone, fades into its ring."""
    c0 = contrast(flow.g0, before)
    if abs(c0) < CONTRAST_MIN:
        return 1.0
    return float(np.clip(contrast(flow.g1, after) / c0, 0.0, 1.0))
