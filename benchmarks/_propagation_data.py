"""Sequences for benchmarks/propagation.py: frames and instance-id label maps read from a folder of
numbered images or a multi-page TIFF, ISBI 2012's binary cell labels made into linked instances,
and a synthetic moving-object video with exact masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MAX_STACK_BYTES = 4 << 30  # a stack that says it is larger than this is refused before its pixels
LINK_IOU = 0.3  # ISBI: a cell keeps the id of the previous slice's cell it overlaps this much (greedy)
MIN_CELL = 16  # px: smaller cell pieces are no objects (as in benchmarks/_actions.truth_objects)


def read_sequence(path: Path, masks: bool = False) -> list[np.ndarray]:
    """The frames of a multi-page / 3D TIFF (read with tifffile) or a folder of numbered images
    (numeric order, `2.png` before `10.png`). Masks must be 2-D unsigned integer id maps."""
    path = Path(path)
    if path.is_dir():
        from segstudio.core.imageio import decode_image, is_image_name
        from segstudio.core.sequences import natural_key
        files = sorted((p for p in path.iterdir() if p.is_file() and is_image_name(p.name)),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise SystemExit(f"{path}: no image files")
        if masks:
            import _clicks
            frames = [_clicks.read_labels(p) for p in files]
        else:
            frames = [decode_image(p) for p in files]
    elif path.is_file() and path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            size = int(np.prod(series.shape)) * np.dtype(series.dtype).itemsize
            if size > MAX_STACK_BYTES:
                raise SystemExit(f"{path}: a {series.shape} stack is larger than {MAX_STACK_BYTES >> 30} GiB")
            a = series.asarray()
        if a.ndim == 2:
            a = a[None]
        if a.ndim == 4 and a.shape[-1] not in (3, 4):
            raise SystemExit(f"{path}: a {a.shape} stack: give frames x height x width (x 3 for colour)")
        frames = list(a)
    else:
        raise SystemExit(f"{path}: give a folder of numbered images or a .tif stack")
    if masks:
        for k, m in enumerate(frames):
            if m.ndim != 2 or m.dtype.kind not in "ub":
                raise SystemExit(f"{path}: mask frame {k} is {m.dtype} {m.shape}: give 2-D unsigned integer id maps")
    return frames


def objects_of(label_map: np.ndarray) -> dict[int, np.ndarray]:
    """Instance id -> its mask (0 is background)."""
    return {int(v): label_map == v for v in np.unique(label_map) if v != 0}


def link_instances(binary: list[np.ndarray], link_iou: float = LINK_IOU) -> list[np.ndarray]:
    """Instance maps from per-frame binary masks: the 4-connected areas of MIN_CELL px or more,
    each keeping the id of the previous frame's area it overlaps at IoU >= link_iou (one-to-one,
    greedy by IoU, best pair first), a new id otherwise."""
    out: list[np.ndarray] = []
    next_id = 1
    prev: np.ndarray | None = None
    for b in binary:
        n, lab, stats, _ = cv2.connectedComponentsWithStats((b > 0).astype(np.uint8), connectivity=4)
        keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= MIN_CELL]
        ids = np.zeros(n, np.int64)
        if prev is not None and keep:
            prev_ids = [int(v) for v in np.unique(prev) if v != 0]
            iou = _iou_matrix(lab, keep, prev, prev_ids)
            for r, c in greedy_pairs(iou, link_iou):
                ids[keep[r]] = prev_ids[c]
        for k in keep:
            if ids[k] == 0:
                ids[k] = next_id
                next_id += 1
            next_id = max(next_id, int(ids[k]) + 1)
        cur = ids[lab].astype(np.int32)
        out.append(cur)
        prev = cur
    return out


def greedy_pairs(iou: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """One-to-one pairs (row, column) of IoU >= minimum, the best pair first. At minimum >= 0.5 it
    is the only matching there is (two masks of one map cannot both overlap a third by more than
    half), so it equals the Hungarian one."""
    if iou.size == 0:
        return []
    order = np.argsort(-iou, axis=None, kind="stable")
    used_r, used_c, out = set(), set(), []
    for flat in order:
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < minimum:
            break
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            out.append((r, c))
    return out


def _iou_matrix(lab: np.ndarray, keep: list[int], prev: np.ndarray, prev_ids: list[int]) -> np.ndarray:
    col = {v: j for j, v in enumerate(prev_ids)}
    inter = np.zeros((len(keep), len(prev_ids)))
    row = {k: i for i, k in enumerate(keep)}
    both = (lab > 0) & (prev > 0)
    pairs, counts = np.unique(np.stack([lab[both], prev[both]]), axis=1, return_counts=True)
    for (a, b), c in zip(pairs.T, counts, strict=True):
        if int(a) in row and int(b) in col:
            inter[row[int(a)], col[int(b)]] = c
    area_a = np.array([np.count_nonzero(lab == k) for k in keep], float)
    area_b = np.array([np.count_nonzero(prev == v) for v in prev_ids], float)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1)


def isbi(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """ISBI 2012's slices (numeric order) and linked cell instances (labels: 255 = cell interior)."""
    from segstudio.core.imageio import decode_image
    from segstudio.core.sequences import natural_key
    if not (folder / "image").is_dir():
        raise SystemExit(f"ISBI data not found at {folder}")
    names = sorted((p.name for p in (folder / "image").glob("*.png")), key=natural_key)
    frames = [decode_image(folder / "image" / n) for n in names]
    labels = [decode_image(folder / "label" / n) for n in names]
    return frames, link_instances([(lab[..., 0] if lab.ndim == 3 else lab) >= 128 for lab in labels])


def _texture(rng: np.random.Generator, shape, scale: float, colour, contrast: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), scale)
    noise /= max(float(noise.std()), 1e-6)
    fine = rng.normal(0, 0.35, shape).astype(np.float32)
    t = noise + fine
    return np.clip(np.array(colour, np.float32)[None, None, :] + contrast * t[..., None]
                   * np.array([1.0, 0.8, 0.6], np.float32), 0, 255)


def synthetic(frames: int = 12, size: tuple[int, int] = (120, 160), seed: int = 0
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A video of three textured objects (an ellipse, a rectangle, a triangle) moving and rotating
    over a textured background, painted in z-order, with their exact instance maps (ids 1..3).
    The triangle leaves the frame through its right edge in the last frames."""
    rng = np.random.default_rng(seed)
    h, w = size
    background = _texture(rng, (h + 40, w + 40), 6.0, (110, 120, 100), 35.0)
    shapes = []
    for colour, draw in [((200, 90, 80), "ellipse"), ((70, 160, 210), "rect"),
                                        ((230, 210, 90), "triangle")]:
        side = 40
        m = np.zeros((side, side), np.uint8)
        if draw == "ellipse":
            cv2.ellipse(m, (20, 20), (17, 11), 0, 0, 360, 1, -1)
        elif draw == "rect":
            cv2.rectangle(m, (6, 10), (33, 29), 1, -1)
        else:
            cv2.fillPoly(m, [np.array([[4, 34], [36, 34], [20, 5]], np.int32)], 1)
        shapes.append((m, _texture(rng, (side, side), 2.0, colour, 30.0)))
    starts = [(35.0, 40.0), (95.0, 75.0), (110.0, 30.0)]
    velocity = [(3.0, 1.5), (-2.5, 0.5), (4.5, 2.0)]
    spin = [4.0, -3.0, 6.0]  # degrees a frame
    images, labels = [], []
    for t in range(frames):
        ox, oy = int(round(2 * np.sin(t / 3))), int(round(2 * np.cos(t / 4)))  # the camera sways a little
        img = background[20 + oy:20 + oy + h, 20 + ox:20 + ox + w].copy()
        lab = np.zeros((h, w), np.uint16)
        for k, (m, tex) in enumerate(shapes):
            cx, cy = starts[k][0] + velocity[k][0] * t, starts[k][1] + velocity[k][1] * t
            rot = cv2.getRotationMatrix2D((20.0, 20.0), spin[k] * t, 1.0)
            rot[:, 2] += (cx - 20.0, cy - 20.0)
            mk = cv2.warpAffine(m, rot, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            tx = cv2.warpAffine(tex, rot, (w, h), flags=cv2.INTER_LINEAR)
            img[mk] = tx[mk]
            lab[mk] = k + 1
        images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        labels.append(lab)
    return images, labels
