"""A click model refines a carried mask: the `refine` function that editing/propagate.carry takes.

`PromptRefiner(model)` wraps any model of the promptable protocol (inference/promptable.py: the
Segment Anything family, SAM 2.1): called with (next frame, warped mask), it embeds the frame (once
per frame: the last frame's embedding is kept, since carry refines every object of one frame in a
row), prompts the warped mask's box and POINTS positive points at its most inside pixels, and
answers the candidate that agrees best (IoU) with the warped mask: the flow says where the object
is, the model where its edges are; picking by the model's own score would swap a part for the
whole. No Qt; the model's device is the model's.

Checked with random weights only (no weights can be downloaded where it was written): it runs and
answers masks of the frame's size; its quality needs real weights (benchmarks/propagation.py with
a weights file is the measurement to make).
"""

from __future__ import annotations

import hashlib
from typing import Any

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
        best, best_iou = None, -1.0
        for k in range(len(cands)):
            m = np.asarray(cands.mask(k), bool)
            union = np.count_nonzero(m | warped)
            v = np.count_nonzero(m & warped) / union if union else 0.0
            if v > best_iou:
                best, best_iou = m, v
        return best

    def _embedding(self, image: np.ndarray) -> Any:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{image.shape} {image.dtype.str}".encode())
        h.update(np.ascontiguousarray(image).data)
        key = h.digest()
        if key != self._key:
            self._emb = self.model.embedding_for(image, None, self.cache)
            self._key = key
        return self._emb


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
