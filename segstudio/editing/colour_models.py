"""Colour models that we fit ourselves, cut by OpenCV's GrabCut graph.

cv2.grabCut learns its object and background Gaussian mixtures from every pixel of the current
labelling. After a click that labelling is wrong exactly where the click says it is (a missed
part counts as background, so the background model holds its colours and the click cannot win it
back). Here the mixtures are fitted from chosen samples with chosen weights (the click's own
neighbourhood weighs as much as the rest of the object), packed in OpenCV's layout and handed to
cv2.grabCut with GC_EVAL_FREEZE_MODEL: one graph cut with those models and GrabCut's
contrast-sensitive smoothness, no re-learning.

OpenCV's model layout (modules/imgproc/src/grabcut.cpp, class GMM): 65 doubles per model,
5 component weights, then 5 means of 3, then 5 covariances of 3x3."""

from __future__ import annotations

import cv2
import numpy as np

COMPONENTS = 5  # OpenCV's GMM has 5 components
SAMPLES = 4000  # pixels drawn per model: plenty for 5 components of 3x3 covariances
RIDGE = 1.0  # added to each covariance's diagonal (8-bit quantisation and JPEG blocks; no singular fits)


def fit(sources: list[tuple[np.ndarray, float]], seed: int = 0) -> np.ndarray | None:
    """A 5-component Gaussian mixture in OpenCV's 65-double layout from weighted pixel sources:
    [(pixels N x 3, weight)], each source drawn in proportion to its weight (a small source is
    repeated). None when no source has a pixel."""
    used = [(s.reshape(-1, 3), float(w)) for s, w in sources if s.size and w > 0]
    if not used:
        return None
    total = sum(w for _, w in used)
    rng = np.random.default_rng(seed)
    parts = []
    for s, w in used:
        n = max(1, int(round(SAMPLES * w / total)))
        idx = rng.integers(0, len(s), n) if len(s) > n else np.resize(np.arange(len(s)), n)
        parts.append(s[idx])
    x = np.concatenate(parts).astype(np.float32)
    k = min(COMPONENTS, len(x))
    cv2.setRNGSeed(seed)
    _, labels, _ = cv2.kmeans(x, k, np.zeros((len(x), 1), np.int32), (cv2.TERM_CRITERIA_MAX_ITER, 10, 0), 1,
                              cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    model = np.zeros(13 * COMPONENTS, np.float64)
    xd = x.astype(np.float64)
    for c in range(k):
        xs = xd[labels == c]
        if not len(xs):
            continue
        mean = xs.mean(axis=0)
        d = xs - mean
        model[c] = len(xs) / len(xd)
        model[COMPONENTS + 3 * c:COMPONENTS + 3 * c + 3] = mean
        cov = d.T @ d / len(xs) + RIDGE * np.eye(3)
        model[4 * COMPONENTS + 9 * c:4 * COMPONENTS + 9 * c + 9] = cov.ravel()
    return model


def cut(pixels: np.ndarray, labels: np.ndarray, object_model: np.ndarray, background_model: np.ndarray) -> bool:
    """One GrabCut graph cut of `labels` (GC_* values, changed in place: the probable ones are
    decided) with the given models; False when OpenCV refuses them."""
    try:
        cv2.grabCut(pixels, labels, (0, 0, 0, 0), background_model.reshape(1, -1).copy(),
                    object_model.reshape(1, -1).copy(), 1, cv2.GC_EVAL_FREEZE_MODEL)
    except cv2.error:
        return False
    return True


def log_likelihood(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """log p(pixel | model) for N x 3 pixels (what the cut's data term is made of; for tests)."""
    x = pixels.reshape(-1, 3).astype(np.float64)
    p = np.zeros(len(x))
    for c in range(COMPONENTS):
        w = model[c]
        if w <= 0:
            continue
        mean = model[COMPONENTS + 3 * c:COMPONENTS + 3 * c + 3]
        cov = model[4 * COMPONENTS + 9 * c:4 * COMPONENTS + 9 * c + 9].reshape(3, 3)
        d = x - mean
        maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
        p += w * np.exp(-0.5 * maha) / np.sqrt(np.linalg.det(cov) * (2 * np.pi) ** 3)
    return np.log(np.maximum(p, 1e-300))
