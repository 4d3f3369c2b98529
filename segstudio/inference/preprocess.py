"""Pixels to model input: one normalisation, written into each checkpoint, used by training,
prediction and evaluation alike.

8-bit images are divided by 255. 16-bit and float images are scaled per image between their
1st and 99.8th percentiles (robust to hot pixels and to 12-bit data stored as 16-bit).
Gray images given to a 3-channel model are repeated; RGB given to a 1-channel model is
converted to luminance.
"""

from __future__ import annotations

import numpy as np

DEFAULT_NORMALIZATION = {"uint8": "unit", "other": "percentile", "low": 1.0, "high": 99.8}


def normalize(image: np.ndarray, norm: dict | None = None) -> np.ndarray:
    """(H, W[, C]) array -> float32 (H, W[, C]) roughly in [0, 1]."""
    norm = norm or DEFAULT_NORMALIZATION
    if image.dtype == np.uint8 and norm.get("uint8", "unit") == "unit":
        return image.astype(np.float32) * (1.0 / 255.0)
    a = image.astype(np.float32)
    if norm.get("other", "percentile") == "unit" and image.dtype == np.uint16:
        return a * (1.0 / 65535.0)
    step = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / 250_000)))
    sample = a[::step, ::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros_like(a)
    lo, hi = np.percentile(sample, [norm.get("low", 1.0), norm.get("high", 99.8)])
    if hi <= lo:
        hi = lo + 1.0
    out = (a - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.nan_to_num(out, copy=False)
    return out.astype(np.float32, copy=False)


def to_chw(image: np.ndarray, in_channels: int, norm: dict | None = None) -> np.ndarray:
    """Normalised float32 (C, H, W) with the channel count the model wants."""
    a = normalize(image, norm)
    if a.ndim == 2:
        a = a[None]
        if in_channels == 3:
            a = np.repeat(a, 3, axis=0)
    else:
        a = np.ascontiguousarray(a.transpose(2, 0, 1))
        if in_channels == 1:
            a = (0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2])[None].astype(np.float32)
    if a.shape[0] != in_channels:
        raise ValueError(f"model takes {in_channels} channels, image has {a.shape[0]}")
    return a
