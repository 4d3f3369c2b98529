"""What a promptable model takes, checked, for any family: the image as the user sees it (uint8
RGB through the display's window/level) and prompts in image pixels (points, a box) with every
hostile value refused by a clear message. No torch, no Qt.

The same rules as the Segment Anything family's own (sam/spec.py `to_sam_rgb`, sam/model.py
`check_prompts`), here so that any promptable family uses them without importing another family.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from segstudio.core import imageio
from segstudio.core.errors import BadValue

Point = tuple[float, float, bool]


# ----------------------------------------------------------------------------- pixels in
def model_window(image: np.ndarray, window: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """The window/level the model sees: the one the user sees. 8-bit images are shown as they are
    (the display ignores a window for them): None. Other depths go through the given window, or
    the one the display would pick (imageio.auto_window)."""
    if image.dtype == np.uint8:
        return None
    if window is None:
        return imageio.auto_window(image)
    try:
        lo, hi = float(window[0]), float(window[1])
    except (TypeError, ValueError, IndexError):
        raise BadValue(f"a window/level is two numbers (black, white), not {window!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise BadValue(f"window/level ({lo}, {hi}) is not a range: the white point must be above the black point")
    return lo, hi


def to_model_rgb(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Any decoded image -> uint8 RGB (H, W, 3), contiguous, through the display's own code
    (imageio.to_rgb_u8) with `model_window`: 16-bit, float and grey images reach the model as the
    user sees them. Grey is repeated to 3 channels, alpha dropped, NaN/inf in float images become 0."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 2):
        a = a[..., 0]  # grey (+ alpha)
    elif a.ndim == 3 and a.shape[2] > 3:
        a = a[..., :3]  # RGBA: alpha is no colour
    if a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise BadValue(f"not an image: array of shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * np.uint8(255)
    elif a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    elif a.dtype.kind not in "ui":
        raise BadValue(f"images of type {a.dtype} cannot be segmented")
    return np.ascontiguousarray(imageio.to_rgb_u8(a, model_window(a, window)))


# ----------------------------------------------------------------------------- prompts in
def number(v: Any, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise BadValue(f"{what} must be a number, not {v!r}") from None
    if not math.isfinite(f):
        raise BadValue(f"{what} must be a finite number, not {v!r}")
    return f


def check_box(box: Sequence[float] | np.ndarray, width: int, height: int) -> np.ndarray:
    """(x0, y0, x1, y1) in any corner order -> float64 array clipped to the image; BadValue for
    non-numbers, NaN/inf, or no area inside the image."""
    try:
        vals = [number(v, "a box coordinate") for v in box]
    except TypeError:
        raise BadValue(f"a box is (x0, y0, x1, y1), not {box!r}") from None
    if len(vals) != 4:
        raise BadValue(f"a box is (x0, y0, x1, y1), not {len(vals)} numbers")
    x0, x1 = sorted((vals[0], vals[2]))
    y0, y1 = sorted((vals[1], vals[3]))
    x0, x1 = min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))
    y0, y1 = min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise BadValue(f"the box ({vals[0]:g}, {vals[1]:g}, {vals[2]:g}, {vals[3]:g}) has no area inside "
                       f"the {width}x{height} image")
    return np.asarray([x0, y0, x1, y1], np.float64)


def check_points(points: Iterable[Point] | None, width: int, height: int, max_points: int
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y, positive) prompts in image pixels -> (coords (N, 2) float64, labels (N,) int64: 1
    positive, 0 negative), or None for none. Non-numbers and NaN/inf raise BadValue; points outside
    the image are clipped to its edge."""
    try:
        pts = list(points) if points is not None else []
    except TypeError:
        raise BadValue(f"point prompts are a list of (x, y, positive), not {points!r}") from None
    if len(pts) > max_points:
        raise BadValue(f"{len(pts)} point prompts: at most {max_points}")
    if not pts:
        return None
    c, lab = [], []
    for k, p in enumerate(pts):
        try:
            x, y, positive = p
        except (TypeError, ValueError):
            raise BadValue(f"point {k} must be (x, y, positive), not {p!r}") from None
        c.append((min(max(number(x, "a point's x"), 0.0), width - 1.0),
                  min(max(number(y, "a point's y"), 0.0), height - 1.0)))
        lab.append(1 if bool(positive) else 0)
    return np.asarray(c, np.float64), np.asarray(lab, np.int64)


def check_low_res_mask(mask_input: Any, side: int) -> np.ndarray:
    """A previous candidate's low-resolution logits -> float32 (1, side, side), NaN/inf and
    extremes clipped to +-32; BadValue for any other shape."""
    try:
        m = np.asarray(mask_input, np.float32)
    except (TypeError, ValueError):
        raise BadValue("mask_input must be an array of low-resolution logits, "
                       f"not {type(mask_input).__name__}") from None
    if m.shape == (side, side):
        m = m[None]
    if m.shape != (1, side, side):
        raise BadValue(f"mask_input must be the model's low-resolution logits (1, {side}, {side}), not shape {m.shape}")
    return np.clip(np.nan_to_num(m, nan=0.0, posinf=32.0, neginf=-32.0), -32.0, 32.0)
