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


class Prepared:
    """An image made ready on the CPU (any thread) for the device: 8-bit pixels travel as bytes
    (4x less to copy than float) and are scaled on the device; other depths are scaled here."""

    __slots__ = ("tensor", "scale", "offset", "height", "width", "channels")

    def __init__(self, tensor, scale: float, offset: float, height: int, width: int, channels: int):
        self.tensor, self.scale, self.offset = tensor, scale, offset
        self.height, self.width, self.channels = height, width, channels


def prepare(image: np.ndarray, in_channels: int, norm: dict | None = None, pin: bool = False) -> Prepared:
    """HWC/HW array -> Prepared holding an HWC tensor (uint8, or float32 already normalised)."""
    import torch
    norm = norm or DEFAULT_NORMALIZATION
    h, w = image.shape[:2]
    if image.dtype == np.uint8 and norm.get("uint8", "unit") == "unit":
        a, scale = image, 1.0 / 255.0
    else:
        a, scale = normalize(image, norm), 1.0
    if a.ndim == 2:
        a = a[:, :, None]
    c = a.shape[2]
    if in_channels == 1 and c == 3:
        a = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2])[..., None].astype(np.float32)
        c = 1
    elif c not in (1, in_channels):
        raise ValueError(f"model takes {in_channels} channels, image has {c}")
    if pin:  # one copy, straight into page-locked memory (fast, asynchronous upload)
        t = torch.empty(a.shape, dtype=torch.from_numpy(a[:1, :1].copy()).dtype, pin_memory=True)
        t.numpy()[...] = a
    else:  # decoded images can be read-only; torch wants a writable buffer
        t = torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else np.ascontiguousarray(a).copy())
    return Prepared(t, scale, 0.0, h, w, c)


def to_device(items: list[Prepared], device, in_channels: int):
    """Stack same-size Prepared images on the device as float (N, C, H, W), scaled to [0, 1]."""
    xs = []
    for p in items:
        t = p.tensor.to(device, non_blocking=True)
        t = t.permute(2, 0, 1).float()
        if p.scale != 1.0 or p.offset:
            t = t * p.scale + p.offset
        if t.shape[0] == 1 and in_channels == 3:
            t = t.expand(3, -1, -1)
        xs.append(t)
    return xs
