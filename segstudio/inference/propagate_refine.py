"""A model refines a carried mask: the `refine` functions that editing/propagate.carry takes.

`PromptRefiner(model)` wraps any model of the promptable protocol (inference/promptable.py: the
Segment Anything family, SAM 2.1): called with (next frame, warped mask), it embeds the frame (once
per frame: the last frame's embedding is kept, since carry refines every object of one frame in a
row), prompts the warped mask's box and POINTS positive points at its most inside pixels, and
answers the candidate that agrees best (IoU) with the warped mask: the flow says where the object
is, the model where its edges are; picking by the model's own score would swap a part for the
whole. No Qt; the model's device is the model's.

`EvidenceRefiner(predict)` takes a pre-label model's answer on the next frame as evidence (the live
model's prediction, issue 26): `predict(image)` gives the frame's object masks (for a Segmenter:
its Prediction's candidates, `segmenter_masks`); the carried object becomes the predicted object
that overlaps its warped mask most, where that overlap reaches IoU EVIDENCE_MATCH; elsewhere it
answers None (no opinion), and carry refines the warped mask itself (GrabCut).

Checked with random weights only (no weights can be downloaded where it was written): it runs and
answers masks of the frame's size; its quality needs real weights (benchmarks/propagation.py with
a weights file is the measurement to make).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from segstudio.inference.promptable import Promptable

POINTS = 3  # positive points: the most inside pixel, then the most inside ones far from those chosen


class PromptRefiner:
    def __init__(self, model: Promptable, points: int = POINTS, cache: Any = None) -> None:
        if points < 1:
            raise ValueError(f"a prompt needs at least one point, not {points}")
        self.model, self.points, self.cache = model, points, cache
        self._key: bytes | None = None
        self._emb: Any = None

    def __call__(self, image: np.ndarray, warped: np.ndarray) -> np.ndarray | None:
        if warped.shape != image.shape[:2]:
            raise ValueError(f"a {warped.shape} mask for a {image.shape[:2]} frame")
        ys, xs = np.nonzero(warped)
        if not len(xs):
            return None
        emb = self._embedding(image)
        box = (float(xs.min()), float(ys.min()), float(xs.max()) + 1.0, float(ys.max()) + 1.0)
        cands = self.model.decode(emb, inside_points(warped, self.points), box)
        best, _ = best_match((np.asarray(cands.mask(k), bool) for k in range(len(cands))), warped)
        return best

    def _embedding(self, image: np.ndarray) -> Any:
        key = frame_key(image)
        if key != self._key:
            self._emb = self.model.embedding_for(image, None, self.cache)
            self._key = key
        return self._emb


EVIDENCE_MATCH = 0.5  # the predicted object must overlap the warped mask this much (IoU) to replace it


class EvidenceRefiner:
    """The pre-label model's object that matches the warped mask (module doc); `predict` runs once
    a frame."""

    def __init__(self, predict: Callable[[np.ndarray], list[np.ndarray]], minimum: float = EVIDENCE_MATCH) -> None:
        self.predict, self.minimum = predict, minimum
        self._key: bytes | None = None
        self._masks: list[np.ndarray] = []

    def __call__(self, image: np.ndarray, warped: np.ndarray) -> np.ndarray | None:
        if warped.shape != image.shape[:2]:
            raise ValueError(f"a {warped.shape} mask for a {image.shape[:2]} frame")
        key = frame_key(image)
        if key != self._key:
            self._masks = [np.asarray(m, bool) for m in self.predict(image)]
            self._key = key
        best, v = best_match(self._masks, warped)
        return best if best is not None and v >= self.minimum else None


def segmenter_masks(segmenter: Any) -> Callable[[np.ndarray], list[np.ndarray]]:
    """`predict` for EvidenceRefiner from a Segmenter: its candidates (an instance each, or a class
    area each) as full-frame masks."""
    def predict(image: np.ndarray) -> list[np.ndarray]:
        h, w = image.shape[:2]
        out = []
        for d in segmenter.predict(image).candidates():
            m = np.zeros((h, w), bool)
            m[d.y:d.y + d.mask.shape[0], d.x:d.x + d.mask.shape[1]] = d.mask
            out.append(m)
        return out
    return predict


def best_match(masks: Iterable[np.ndarray], warped: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The mask that overlaps `warped` most (IoU), and that IoU; (None, 0) for no masks."""
    best, best_iou = None, 0.0
    for m in masks:
        if m.shape != warped.shape:
            continue
        union = np.count_nonzero(m | warped)
        v = np.count_nonzero(m & warped) / union if union else 0.0
        if best is None or v > best_iou:
            best, best_iou = m, v
    return best, best_iou


def frame_key(image: np.ndarray) -> bytes:
    """A digest of a frame's pixels: the same frame asked again reuses its embedding / prediction."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.shape} {image.dtype.str}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.digest()


def inside_points(mask: np.ndarray, n: int) -> list[tuple[float, float, bool]]:
    """n positive points (pixel centres) deep inside the mask: the farthest pixel from its edge,
    then each next one the farthest from the edge and from the points already chosen."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    out: list[tuple[float, float, bool]] = []
    left = dist.copy()
    for _ in range(n):
        if float(left.max(initial=0.0)) <= 0:
            break
        y, x = np.unravel_index(int(np.argmax(left)), left.shape)
        out.append((x + 0.5, y + 0.5, True))
        r = max(2.0, float(dist[y, x]))
        cv2.circle(left, (int(x), int(y)), int(np.ceil(r)), 0.0, -1)
    return out


def live_evidence(project: Any, device: str = "auto") -> tuple[EvidenceRefiner, str] | None:
    """The project's newest live model version (Learn as I annotate, `train --watch`) as evidence
    for propagation, with its file's name; None when the project has none. On ISBI it turned a
    chain of carries that changed 32 % of the pixels into 25 %, against 29 % for the live model
    alone (benchmarks/README.md, propagation)."""
    from pathlib import Path

    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
    from segstudio.inference.training.live import LIVE_ARCHS, LiveConfig, LiveLearner, trainer_family
    newest: tuple[float, str, str] | None = None
    for arch in LIVE_ARCHS:
        path = LiveLearner(project, LiveConfig(arch=arch)).start_checkpoint()
        if path is not None:
            when = Path(path).stat().st_mtime
            if newest is None or when > newest[0]:
                newest = (when, path, arch)
    if newest is None:
        return None
    _, path, arch = newest
    seg = load_segmenter(ModelSpec(arch=trainer_family(arch).key, weights=path, device=device), project)
    return EvidenceRefiner(segmenter_masks(seg)), Path(path).name
