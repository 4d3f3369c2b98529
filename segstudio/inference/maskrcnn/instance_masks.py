"""Mask R-CNN's masks as the network gives them (28x28 per detection), made image-sized only
where and when they are needed.

torchvision pastes every mask into a zeroed image-sized float image, one detection at a time,
inside the model (`roi_heads.paste_masks_in_image`): 100 detections on an 800x1067 image are
340 MB of zeroed floats and a few hundred kernel launches and device syncs per image, all on
the thread that feeds the model. Here the model hands back the small masks and torchvision's
own expanded boxes; each mask is resized into its box with OpenCV (the same half-pixel bilinear
resampling as torch's `interpolate(align_corners=False)`), clipped to the image, by whoever
reads it: the prediction pipeline's post-processing workers, or the window's model thread.
No torch here, so the workers that do it can be processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.inference.runtime.segmenter import Detection


@dataclass
class LowResMasks:
    """One image's detections before pasting. `masks` (N, S, S) probabilities, already padded
    by the one pixel torchvision pads with; `boxes` (N, 4) int, the expanded boxes torchvision
    pastes into (x0, y0, x1, y1, inclusive, may reach past the image)."""
    masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    threshold: float = 0.5

    def detections(self, width: int, height: int, min_score: float = float("-inf")) -> list[Detection]:
        """The detections scoring at least `min_score` whose mask has a pixel in the image."""
        out = []
        for k in np.flatnonzero(self.scores >= min_score):
            crop = paste_mask(self.masks[k], self.boxes[k], width, height, self.threshold)
            if crop is not None:
                out.append(Detection(int(self.labels[k]), crop[0], crop[1], crop[2], float(self.scores[k])))
        return out


def paste_mask(mask: np.ndarray, box: np.ndarray, width: int, height: int,
               threshold: float) -> tuple[np.ndarray, int, int] | None:
    """torchvision's `paste_mask_in_image`, restricted to the pasted rectangle: the mask
    resized to the box's (w, h), the part inside the image, thresholded. None when empty."""
    bx0, by0, bx1, by1 = (int(v) for v in box)
    bw, bh = max(bx1 - bx0 + 1, 1), max(by1 - by0 + 1, 1)
    x0, y0 = max(bx0, 0), max(by0, 0)
    x1, y1 = min(bx1 + 1, width, bx0 + bw), min(by1 + 1, height, by0 + bh)
    if x1 <= x0 or y1 <= y0 or bw * bh > 4 * width * height + 4:  # outside, or a box no detector gives
        return None
    resized = cv2.resize(np.ascontiguousarray(mask, dtype=np.float32), (bw, bh), interpolation=cv2.INTER_LINEAR)
    crop = resized[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] > threshold
    if not crop.any():
        return None
    return crop, x0, y0
