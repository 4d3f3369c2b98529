"""What an annotator must change to turn a model's proposal into the ground truth.

The annotation-effort benchmark and the live-learning panel score each pre-labelled image with
these measures: the fraction of pixels whose label must change, how many separate error blobs
that takes (each about one brush stroke), and for instances how many must be added, deleted or
redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_BLOB_PX = 16  # error blobs smaller than this are not worth a stroke (a person leaves them)
MATCH_IOU = 0.5  # an instance whose best match is below this must be redrawn


@dataclass(frozen=True)
class SemanticEffort:
    changed_fraction: float  # of the pixels that count (not ignore)
    changed_pixels: int
    counted_pixels: int
    error_blobs: int  # 8-connected blobs of wrong pixels of at least MIN_BLOB_PX


@dataclass(frozen=True)
class InstanceEffort:
    ground_truth: int
    predicted: int
    kept: int  # matched at IoU >= MATCH_IOU with the right class
    add: int  # ground-truth instances nothing was proposed for
    delete: int  # proposals matching no ground-truth instance
    redraw: int  # matched, but IoU below MATCH_IOU or the wrong class

    @property
    def actions(self) -> int:
        return self.add + self.delete + self.redraw


def semantic_effort(predicted: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None,
                    min_blob: int = MIN_BLOB_PX) -> SemanticEffort:
    """Compare two label maps of one image (same shape, any integer dtype). `ignore` marks pixels
    that count for nothing (an ignore class, unlabelled pixels of sparse ground truth)."""
    if predicted.shape != truth.shape:
        raise ValueError(f"label maps differ in size: {predicted.shape} and {truth.shape}")
    wrong = predicted != truth
    if ignore is not None:
        wrong &= ~ignore
        counted = int(truth.size - np.count_nonzero(ignore))
    else:
        counted = int(truth.size)
    changed = int(np.count_nonzero(wrong))
    return SemanticEffort(changed / counted if counted else 0.0, changed, counted, count_blobs(wrong, min_blob))


def count_blobs(mask: np.ndarray, min_area: int = MIN_BLOB_PX) -> int:
    """8-connected components of a boolean mask with at least `min_area` pixels."""
    if not mask.any():
        return 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int(np.count_nonzero(stats[1:n, cv2.CC_STAT_AREA] >= min_area))


def instance_effort(predicted: np.ndarray, pred_classes: dict[int, int], truth: np.ndarray,
                    truth_classes: dict[int, int], iou_threshold: float = MATCH_IOU) -> InstanceEffort:
    """Compare two instance-id maps (0 = no instance). `*_classes` maps an instance id to its
    class. Instances are matched one to one, best IoU first; a pair that overlaps at all is a
    redraw when its IoU is under the threshold or its class is wrong."""
    if predicted.shape != truth.shape:
        raise ValueError(f"instance maps differ in size: {predicted.shape} and {truth.shape}")
    p_ids = [int(i) for i in np.unique(predicted) if i]
    t_ids = [int(i) for i in np.unique(truth) if i]
    pairs = []
    if p_ids and t_ids:
        both = (predicted > 0) & (truth > 0)
        # overlap counts for every (pred, truth) pair in one pass over the overlapping pixels
        key = predicted[both].astype(np.int64) * (int(truth.max()) + 1) + truth[both].astype(np.int64)
        keys, inter = np.unique(key, return_counts=True)
        p_area = dict(zip(*np.unique(predicted[predicted > 0], return_counts=True), strict=True))
        t_area = dict(zip(*np.unique(truth[truth > 0], return_counts=True), strict=True))
        for k, n in zip(keys.tolist(), inter.tolist(), strict=True):
            p, t = divmod(k, int(truth.max()) + 1)
            iou = n / (p_area[p] + t_area[t] - n)
            pairs.append((iou, p, t))
    pairs.sort(reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    kept = redraw = 0
    for iou, p, t in pairs:
        if p in used_p or t in used_t:
            continue
        used_p.add(p)
        used_t.add(t)
        if iou >= iou_threshold and pred_classes.get(p) == truth_classes.get(t):
            kept += 1
        else:
            redraw += 1
    return InstanceEffort(len(t_ids), len(p_ids), kept, len(t_ids) - len(used_t), len(p_ids) - len(used_p), redraw)
