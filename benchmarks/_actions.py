"""Effort in actions: the simulated annotator fixes a pre-label object by object with a click tool
(benchmarks/_clicks.py's protocol), as annotators spend their day.

Objects are the truth's instances (for class maps: the 4-connected areas of each class, e.g. ISBI's
cell interiors) and the pre-label's (for class maps: the 8-connected areas of each predicted class,
the candidates the window's model click offers, `semantic_detections`). Per image:

- a predicted object that matches no truth object at IoU >= 0.5 is deleted: one action;
- a truth object whose best predicted object has IoU >= 0.9 costs nothing (predicted objects of
  class maps are taken as the truth's: 4-connected areas of 16 px or more, so a perfect pre-label
  costs nothing);
- one with a match at IoU >= 0.5 is redrawn by clicks that start from the predicted mask;
- one with no such match (missing) is clicked from nothing;
- clicks go on until IoU >= 0.9 or 20 clicks, each click one action; what is still wrong after
  20 clicks costs one brush stroke per error blob of >= 16 px (at least one).

Clicking every object of a 120-cell slice with three scenarios would take an hour on two cores, so
`sample` truth objects per image are clicked (the same ones, by a seed from the image name, in
every scenario) and their mean scales to all of the image's objects; deletions are counted in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

import _clicks

MATCH, GOOD = 0.5, 0.9
STROKE_BLOB = 16  # px: an error blob this large takes a brush stroke (core/effort.py's blob size)


def id_map(objects: list[np.ndarray], shape) -> np.ndarray:
    out = np.zeros(shape, np.int32)
    for k, m in enumerate(objects, start=1):
        out[m] = k
    return out


def truth_objects(label_map: np.ndarray, values, min_area: int = 16) -> list[np.ndarray]:
    """The 4-connected areas of each class value (objects smaller than min_area left out)."""
    out = []
    for v in values:
        n, lab, stats, _ = cv2.connectedComponentsWithStats((label_map == v).astype(np.uint8), connectivity=4)
        out += [lab == k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area]
    return out


def predicted_detections(class_map: np.ndarray) -> list:
    """The window's model-click candidates for a class map: one per class per 8-connected area."""
    from segstudio.inference.runtime.segmenter import semantic_detections
    return semantic_detections(class_map.astype(np.uint16), np.full(class_map.shape, 255, np.uint8))


def detection_mask(det, shape) -> np.ndarray:
    return _clicks.paste((det.mask, det.x, det.y), shape)


def best_matches(truth: np.ndarray, pred: np.ndarray, n_truth: int, n_pred: int):
    """(IoU matrix rows truth 1..T, columns pred 1..P) from two id maps, through their overlaps."""
    t_area = np.bincount(truth.ravel(), minlength=n_truth + 1)
    p_area = np.bincount(pred.ravel(), minlength=n_pred + 1)
    both = (truth > 0) & (pred > 0)
    inter = np.zeros((n_truth + 1, n_pred + 1), np.int64)
    np.add.at(inter, (truth[both], pred[both]), 1)
    union = t_area[:, None] + p_area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return ious[1:, 1:]


def strokes(result: np.ndarray, gt: np.ndarray) -> int:
    """Brush strokes for what is still wrong: none when the result is good, else one per error
    blob of STROKE_BLOB px or more (at least one)."""
    if _clicks.iou(gt, result) >= GOOD:
        return 0
    wrong = ((result != (gt == _clicks.OBJECT)) & (gt != _clicks.IGNORE)).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(wrong, connectivity=8)
    return max(1, int((stats[1:, cv2.CC_STAT_AREA] >= STROKE_BLOB).sum()))


def finish(run: _clicks.Run, gt: np.ndarray) -> _clicks.Run:
    """The strokes the run leaves, counted now; its full-size mask is dropped (runs are cached)."""
    assert run.final is not None
    run.strokes = strokes(run.final, gt)
    run.final = None
    return run


@dataclass
class ImageActions:
    objects: int  # truth objects in the image
    sampled: int
    deletes: int
    clicks: int  # over the sampled objects
    strokes: int  # over the sampled objects
    good: int  # sampled objects the pre-label already had at IoU >= 0.9
    per_object: list[int] = field(default_factory=list)

    @property
    def actions(self) -> float:
        """Deletions plus the sampled objects' clicks and strokes scaled to every object."""
        scale = self.objects / self.sampled if self.sampled else 0.0
        return self.deletes + (self.clicks + self.strokes) * scale

    @property
    def per_object_mean(self) -> float:
        return self.actions / self.objects if self.objects else 0.0


sample_ids = _clicks.sample_ids


def image_actions(image: np.ndarray, name: str, truth: list[np.ndarray], pred: list[np.ndarray],
                  tool: _clicks.Tool, sample: int, ignore: np.ndarray | None = None, max_clicks: int = 20,
                  cache: dict | None = None) -> ImageActions:
    """The actions to turn `pred` objects into `truth` objects (see the module doc). `cache` keeps
    the from-nothing runs by (name, object), which are the same whatever the pre-label was."""
    shape = image.shape[:2]
    tmap, pmap = id_map(truth, shape), id_map(pred, shape)
    ious = best_matches(tmap, pmap, len(truth), len(pred))
    deletes = int((ious.max(axis=0, initial=0.0) < MATCH).sum()) if pred else 0
    out = ImageActions(len(truth), 0, deletes, 0, 0, 0)
    for t in sample_ids(name, len(truth), sample):
        gt = truth[t].astype(np.int8)
        if ignore is not None:
            gt[ignore & ~truth[t]] = _clicks.IGNORE
        best = int(ious[t].argmax()) if pred else -1
        out.sampled += 1
        if pred and _clicks.iou(gt, pred[best]) >= GOOD:  # the unsure band counts neither way here either
            out.good += 1
            out.per_object.append(0)
            continue
        start = pred[best] if pred and float(ious[t, best]) >= MATCH else None
        key = (name, t)
        if start is None and cache is not None and key in cache:
            run = cache[key]
        else:
            run = finish(_clicks.run_object(tool, "", image, name, gt, name, max_clicks, GOOD, start), gt)
            if start is None and cache is not None:
                cache[key] = run
        n, s = len(run.ious), int(run.strokes or 0)
        out.clicks += n
        out.strokes += s
        out.per_object.append(n + s)
    return out


def from_nothing(tools: dict[str, _clicks.Tool], image: np.ndarray, name: str, truth: list[np.ndarray],
                 sample: int, ignore: np.ndarray | None, caches: dict[str, dict], max_clicks: int = 20
                 ) -> dict[str, list[_clicks.Run]]:
    """NoC runs of each tool on the image's sampled truth objects, from nothing (the runs of a tool
    named in `caches` are kept there by (image, object): they do not depend on any model)."""
    out: dict[str, list[_clicks.Run]] = {t: [] for t in tools}
    for t in sample_ids(name, len(truth), sample):
        gt = truth[t].astype(np.int8)
        if ignore is not None:
            gt[ignore & ~truth[t]] = _clicks.IGNORE
        for tname, tool in tools.items():
            cache = caches.get(tname)
            run = cache.get((name, t)) if cache is not None else None
            if run is None:
                run = finish(_clicks.run_object(tool, tname, image, name, gt, name, max_clicks, GOOD), gt)
                if cache is not None:
                    cache[(name, t)] = run
            out[tname].append(run)
    return out
