"""Carry each object's mask from one frame to the next (propagation through a stack or a video).

`carry(prev_image, next_image, objects)` takes the objects of a done (or already carried) frame as
(track, class id, full-frame bool mask) and returns where each one is on the next frame, with its
track and class unchanged and a confidence in 0..1. No Qt, no torch: the window, the CLI and the
benchmark call it from any thread. The per-step pieces (flow, warp, refinement, re-fit) are in
propagate_steps.py; a click model (Segment Anything, through the promptable protocol) refines from
inference/propagate_refine.py, passed in as `refine`.

Methods (benchmarks/propagation.py measures them against each other and against the baselines):

- "copy": the mask unchanged (the object did not move);
- "refit": the mask moved by the translation that best matches the object's pixels (normalised
  cross-correlation of its box within a search window): a rigid re-fit, no deformation;
- "flow": dense optical flow (OpenCV DIS) from the next frame back to this one warps the mask;
- "flow+grabcut": the warped mask seeds GrabCut (probable object inside, probable background in a
  ring around it, the other objects' cores sure background), as the window's GrabCut does where
  there is no model;
- "flow+watershed": all warped masks at once: each object's core (its warped mask eroded) is a
  marker, the pixels far from every warped mask are background, and a marker watershed on the
  next frame puts each edge on the image's boundary between them (objects compete for pixels);
- "flow+level": each object re-fitted as the iso-intensity area (the level that reproduces its
  mask on this frame) within a ring around its warped mask: for bright nuclei on a dark ground;
- "flow+refine": the warped mask is handed to `refine(next_image, warped) -> mask | None` (the
  click model's adapter: a box and points from the warped mask; or the live model's object that
  matches it, inference/propagate_refine.EvidenceRefiner); where it answers None (no opinion:
  the live model has no object there) GrabCut refines, as in "flow+grabcut".

The default, "flow+grabcut", changed the fewest pixels of the classical candidates on all three
benchmark sequences, carried one step from a corrected frame (ISBI: 21.1 % of the pixels against
39.9 % copying; stardist-3d: 10.9 % against 11.7 %; the synthetic video: 29 px in 11 frames against
6,739) and chained from one done frame (ISBI, 4 slices each way: 32.1 % against 55.9 % copying and
77.2 % with nothing). Chained on ISBI, the live UNet trained on the done slice alone (60 s, CPU)
changed fewer (24-29 % in two runs); flow with that model's objects as evidence ("flow+refine" with
inference/propagate_refine.EvidenceRefiner) changed 25 % and keeps the objects' identities: pass
it where a live model exists. Figures and commands: benchmarks/propagation.py, benchmarks/README.md.

Confidence: how much the step trusts a carried mask, the product of
- photometric consistency: the share of the object's pixels that look the same (within a few
  times the frame pair's median difference) where the flow sends them: low where the flow is
  guessing or the object is gone (what the next frame shows there is something else). An object
  with less than GONE of its pixels consistent is taken to have vanished and is left out;
- the agreement of the refinement with the warped mask (IoU): low where the image says the object
  is elsewhere or of another shape;
- the contrast kept: how much the object still stands out from the ring around it, against how
  much it did (a nucleus past its last slice fades into its surroundings);
- the area change, min(ratio, 1/ratio) square-rooted (z-stacks grow and shrink objects by design;
  what leaves the frame is no change of size).
It ranks carries at IoU >= 0.5 above worse ones with an AUC of 0.89 (stardist-3d) and 0.74 (ISBI)
one step from a corrected frame. The flow's forward-backward consistency was measured too and left
out: DIS's flow is smooth and consistent whether the carry is right or wrong (AUC 0.50 on
stardist-3d and ISBI), so it only added noise.
An object whose mask is empty after the step (it left the frame, or shrank to nothing) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from segstudio.editing import propagate_steps as steps

METHODS = ("copy", "refit", "flow", "flow+grabcut", "flow+watershed", "flow+level", "flow+refine")
DEFAULT_METHOD = "flow+grabcut"
# A carried object below this confidence is not written and not carried further; the run stops at
# the frame where none is left (editing/propagation_run.py). Dropping costs pixels as well as saving
# deletions: carried from ISBI slice 10 over 4 slices each way, the pixels to change were 32.1 %
# carrying everything, 40.7 % dropping below 0.25, 41.9 % below 0.35, 46.8 % below 0.5 (copying:
# 55.9 %); at 0.25 the run drops what is clearly lost (benchmarks/propagation.py, "run").
CONFIDENCE_STOP = 0.25
MIN_AREA = 3  # px: a carried mask smaller than this is taken to have vanished
GONE = 0.2  # an object fewer of whose pixels than this look the same where the flow sends them has vanished

Refiner = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


@dataclass
class Carried:
    track: int  # the object's identity, unchanged
    class_id: int
    mask: np.ndarray  # bool, full frame size
    confidence: float  # 0..1, how much the step trusts this carried mask


def carry(prev_image: np.ndarray, next_image: np.ndarray, objects: list[tuple[int, int, np.ndarray]],
          refine: Refiner | None = None, *, method: str | None = None) -> list[Carried]:
    """Each object of `prev_image` carried to `next_image` (see the module doc). `objects`: (track,
    class id, full-frame bool mask). With `refine` and no `method`, the method is "flow+refine".
    ValueError for frames of different sizes, a mask of another size, an unknown method."""
    if method is None:
        method = "flow+refine" if refine is not None else DEFAULT_METHOD
    if method not in METHODS:
        raise ValueError(f"unknown propagation method {method!r}: one of {', '.join(METHODS)}")
    if method == "flow+refine" and refine is None:
        raise ValueError("method 'flow+refine' needs a refine function (a click model's adapter)")
    g0, g1 = steps.grey_pair(prev_image, next_image)
    masks = [_checked(track, m, g0.shape) for track, _, m in objects]
    if not masks:
        return []
    if method in ("copy", "refit"):
        moved = [m.copy() for m in masks] if method == "copy" else [steps.refit(g0, g1, m) for m in masks]
        flow = steps.Flow.between(g0, g1)
        return _collect(objects, masks, moved, moved, flow)
    flow = steps.Flow.between(g0, g1)
    warped = [flow.warp(m) for m in masks]
    if method == "flow":
        out = warped
    elif method == "flow+grabcut":
        out = [steps.grabcut_fit(g1, next_image, w, [o for j, o in enumerate(warped) if j != i])
               for i, w in enumerate(warped)]
    elif method == "flow+watershed":
        out = steps.watershed_fit(g1, next_image, warped)
    elif method == "flow+level":
        out = steps.level_fit(g0, g1, masks, warped)
    else:
        assert refine is not None
        out = [_refined(refine, g1, next_image, w, [o for j, o in enumerate(warped) if j != i])
               for i, w in enumerate(warped)]
    return _collect(objects, masks, warped, out, flow)


def _checked(track: int, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"object {track}: its mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} "
                         f"(width x height), the frame is {shape[1]}x{shape[0]}")
    return m.astype(bool, copy=False)


def _refined(refine: Refiner, g1: np.ndarray, image: np.ndarray, warped: np.ndarray,
             others: list[np.ndarray]) -> np.ndarray:
    if not warped.any():
        return warped
    out = refine(image, warped)
    if out is None:  # the model has no opinion here: GrabCut answers
        return steps.grabcut_fit(g1, image, warped, others)
    out = np.asarray(out)
    if out.shape != warped.shape:
        raise ValueError(f"the refine function answered a {out.shape} mask for a {warped.shape} frame")
    return out.astype(bool, copy=False)


def _collect(objects, before: list[np.ndarray], warped: list[np.ndarray], after: list[np.ndarray],
             flow: steps.Flow) -> list[Carried]:
    out = []
    for (track, class_id, _), m0, w, m1 in zip(objects, before, warped, after, strict=True):
        area0, area1 = int(m0.sum()), int(m1.sum())
        if area1 < MIN_AREA or area0 == 0:
            continue  # vanished (or nothing to carry)
        photo = flow.photo_consistency(m0)
        if photo < GONE:
            continue  # where it went, the next frame shows something else: it left (or was covered)
        area0 = max(1, int(flow.staying(m0).sum()))  # what leaves the frame is not a change of size
        ratio = min(area0, area1) / max(area0, area1)
        agree = steps.iou(w, m1) if w is not m1 else 1.0
        conf = float(np.clip(photo * agree * steps.contrast_kept(flow, m0, m1) * np.sqrt(ratio), 0.0, 1.0))
        out.append(Carried(int(track), int(class_id), m1, conf))
    return out
