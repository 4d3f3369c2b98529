"""The U-Net paper's border weight map (Ronneberger et al. 2015, eq. 2): pixels in the narrow
gaps between two separate objects weigh more in the loss, so the network learns to keep touching
objects apart:

    w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

d1, d2: distances to the nearest and second-nearest object. Objects are the 4-connected
components of each labelled class (label 1..K-1; 0 is background, `ignore` is left out). numpy
and OpenCV only; computed once per training image, then augmented with it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def border_weight_map(label: np.ndarray, w0: float = 10.0, sigma: float = 5.0, ignore: int = 255) -> np.ndarray:
    """float32 (H, W) weights >= 1 (ignored pixels: 1, the loss skips them anyway)."""
    h, w = label.shape
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    # beyond d1 + d2 = 4 sigma the extra weight is under 0.04 % of w0: each object's distances
    # are only needed in its bounding box grown by that much, which bounds the work by the image
    reach = int(math.ceil(4 * sigma))
    for v in np.unique(label):
        if v == 0 or v == ignore:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats((label == v).astype(np.uint8), connectivity=4)
        for i in range(1, n):
            x, y, bw, bh = stats[i, :4]
            y0, y1 = max(0, y - reach), min(h, y + bh + reach)
            x0, x1 = max(0, x - reach), min(w, x + bw + reach)
            outside = (comp[y0:y1, x0:x1] != i).astype(np.uint8)  # distanceTransform: distance to the zeros
            d = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
            a, b = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
            b[...] = np.minimum(b, np.maximum(a, d))
            a[...] = np.minimum(a, d)
    s = d1 + d2  # inf where fewer than two objects are near: weight 1
    extra = w0 * np.exp(-(s * s) / (2 * sigma * sigma))
    out = (1.0 + np.nan_to_num(extra, nan=0.0, posinf=0.0)).astype(np.float32)
    out[label == ignore] = 1.0
    return out
