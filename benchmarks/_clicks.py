"""The simulated clicking annotator: the field's standard protocol (RITM's `Clicker` and NoC,
github SamsungLabs/ritm_interactive_segmentation, isegm/inference/clicker.py and utils.py) and the
window's click tools as functions of (image, clicks so far, previous mask).

Protocol, as RITM evaluates GrabCut / Berkeley / DAVIS:
- the next click goes to the error pixel farthest from the boundary of its error region (a distance
  transform of the false negatives and of the false positives, the image border counting as a
  boundary), never to a pixel clicked before;
- it is positive when the false-negative distance is the larger;
- the tool gets every click so far and its own previous answer (the window keeps the region);
- a run stops at the target IoU or after `max_clicks`; NoC counts `max_clicks` for a run that never
  reaches a threshold. Pixels of the unsure band (IGNORE) count neither way.

Used by click_bench.py (NoC per tool) and annotation_effort.py (actions per image).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IGNORE = -1
OBJECT = 1
MAX_MASK_PIXELS = 200_000_000  # a mask bigger than this is refused before decoding


@dataclass(frozen=True)
class Click:
    x: int  # column
    y: int  # row
    positive: bool


class Clicker:
    """RITM's clicker: `gt` holds OBJECT, 0 and IGNORE."""

    def __init__(self, gt: np.ndarray) -> None:
        self.gt = gt == OBJECT
        self.valid = gt != IGNORE
        self.not_clicked = np.ones(gt.shape, bool)
        self.clicks: list[Click] = []

    def next_click(self, pred: np.ndarray) -> Click | None:
        fn = self.gt & ~pred & self.valid
        fp = ~self.gt & pred & self.valid
        # padding with background makes the image border a boundary of the error regions
        fn_dt = cv2.distanceTransform(np.pad(fn, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
        fp_dt = cv2.distanceTransform(np.pad(fp, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
        fn_dt *= self.not_clicked
        fp_dt *= self.not_clicked
        fn_max, fp_max = float(fn_dt.max(initial=0)), float(fp_dt.max(initial=0))
        if fn_max <= 0 and fp_max <= 0:
            return None  # nothing left to correct (or only clicked pixels are wrong)
        positive = fn_max > fp_max
        ys, xs = np.nonzero((fn_dt if positive else fp_dt) == (fn_max if positive else fp_max))
        click = Click(int(xs[0]), int(ys[0]), positive)
        self.not_clicked[click.y, click.x] = False
        self.clicks.append(click)
        return click


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU over the pixels that are not IGNORE (RITM's get_iou)."""
    valid = gt != IGNORE
    obj = gt == OBJECT
    union = int((valid & (pred | obj)).sum())
    return int((valid & pred & obj).sum()) / union if union else 1.0


def noc(ious: Sequence[float], threshold: float, max_clicks: int) -> int:
    """Clicks until the IoU first reaches `threshold`; `max_clicks` when it never does."""
    for k, v in enumerate(ious, start=1):
        if v >= threshold:
            return k
    return max_clicks


# ---------------------------------------------------------------- ground truth


def objects_of(labels: np.ndarray, components: bool = False, min_area: int = 16) -> list[tuple[str, np.ndarray]]:
    """The objects one label image holds, each as an int8 map of OBJECT / 0 / IGNORE:

    - 0 / 128 / 255 (the GrabCut and Berkeley masks; any 8-bit mask with 128 and no value
      between 0 and 128): > 128 object, 128 the unsure band;
    - 0 and one other value (0/1, 0/255): the other is the object;
      with `components`, each of its 4-connected areas of min_area pixels or more (ISBI's cells);
    - more values: an instance-id map, one object per non-zero id (0 is background).
    """
    if labels.ndim == 3:
        if labels.shape[2] >= 3 and not (np.array_equal(labels[..., 0], labels[..., 1])
                                         and np.array_equal(labels[..., 1], labels[..., 2])):
            raise ValueError("a colour mask: give one channel of ids or 0/128/255 values")
        labels = labels[..., 0]
    if labels.ndim != 2 or labels.dtype.kind not in "ub":
        raise ValueError(f"a mask must be a 2-D map of unsigned integers, not {labels.dtype} {labels.shape}")
    values = np.unique(labels)
    out: list[tuple[str, np.ndarray]] = []
    if labels.dtype == np.uint8 and 128 in values and bool(np.all((values == 0) | (values >= 128))):
        gt = np.zeros(labels.shape, np.int8)
        gt[labels > 128] = OBJECT
        gt[labels == 128] = IGNORE
        return [("", gt)] if (gt == OBJECT).any() else []
    ids = [int(v) for v in values if v != 0]
    if len(ids) == 1 and components:
        n, lab, stats, _ = cv2.connectedComponentsWithStats((labels != 0).astype(np.uint8), connectivity=4)
        return [(f"#{k}", (lab == k).astype(np.int8)) for k in range(1, n)
                if stats[k, cv2.CC_STAT_AREA] >= min_area]
    if len(ids) == 1:
        return [("", (labels != 0).astype(np.int8))]
    for v in ids:
        out.append((f"#{v}", (labels == v).astype(np.int8)))
    return out


def sample_ids(name: str, n: int, k: int) -> list[int]:
    """The same k of n objects of an image in every run and scenario (a seed from its name)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist()) if n else []


def read_labels(path: Path) -> np.ndarray:
    """A mask file as an array, its size checked before its pixels are decoded."""
    from PIL import Image
    with Image.open(path) as im:
        if im.width * im.height > MAX_MASK_PIXELS:
            raise ValueError(f"{im.width}x{im.height} is larger than a mask can be here")
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.array(im)
            if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
                raise ValueError("mask ids outside 0..65535")
            return a.astype(np.uint16)
        if im.mode in ("F", "I;16S", "I;32"):
            raise ValueError(f"a {im.mode} mask: give 8- or 16-bit ids or 0/128/255 values")
        if im.mode not in ("1", "L", "P", "RGB", "RGBA", "LA"):
            raise ValueError(f"a {im.mode} mask: give 8- or 16-bit ids or 0/128/255 values")
        a = np.array(im)
        return a.astype(np.uint8) if a.dtype == bool else a


def pairs(images: Path, masks: Path, limit: int | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) by file stem, in name order; images with no mask are left out."""
    from segstudio.core.imageio import is_image_name
    by_stem = {p.stem: p for p in sorted(masks.iterdir()) if p.is_file() and is_image_name(p.name)}
    out = [(p, by_stem[p.stem]) for p in sorted(images.iterdir())
           if p.is_file() and is_image_name(p.name) and p.stem in by_stem]
    return out[:limit] if limit else out


# ---------------------------------------------------------------- the tools


class Session:
    """One object being clicked: `answer(clicks, previous)` returns the tool's mask after the
    last click (full image size, bool); `previous` is its last answer (the region in the window)."""

    def answer(self, clicks: list[Click], previous: np.ndarray) -> np.ndarray:
        raise NotImplementedError


Tool = Callable[[np.ndarray, str], Session]  # (image, image key) -> a session for one object


def paste(crop, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    if crop is None:
        return out
    m, x, y = crop
    out[y:y + m.shape[0], x:x + m.shape[1]] = m
    return out


def current_crop(mask: np.ndarray):
    from segstudio.core import maskops
    return maskops.crop_to_content(mask) if mask.any() else None


def seed_radius() -> int:
    """The window's Clicks tool seeds: half the brush radius, at least MIN_SEED_RADIUS."""
    from segstudio.editing.assist_tools import MIN_SEED_RADIUS
    from segstudio.editing.editor import DEFAULT_BRUSH_RADIUS
    return max(MIN_SEED_RADIUS, int(DEFAULT_BRUSH_RADIUS // 2))


class RefineSession(Session):
    """A classical refine function (image, current crop, positive, negative, radius) -> crop | None,
    called as the window's Clicks tool calls it: a None answer leaves the region as it was."""

    def __init__(self, image: np.ndarray, refine) -> None:
        self.image, self.refine = image, refine

    def answer(self, clicks: list[Click], previous: np.ndarray) -> np.ndarray:
        pos = [(float(c.x), float(c.y)) for c in clicks if c.positive]  # the window's p.x - 0.5
        neg = [(float(c.x), float(c.y)) for c in clicks if not c.positive]
        crop = self.refine(self.image, current_crop(previous), pos, neg, radius=seed_radius())
        return previous if crop is None else paste(crop, previous.shape)


CLASSICAL = ("grabcut", "watershed", "clicks")
_REFINE = {"grabcut": "grabcut_refine", "watershed": "watershed_clicks", "clicks": "click_segment"}


def classical_tool(name: str) -> Tool:
    """grabcut: Clicks → GrabCut as it was; watershed: the marker watershed from the clicks;
    clicks: the window's Clicks tool (editing.classical.click_segment)."""
    from segstudio.editing import classical
    refine = getattr(classical, _REFINE[name], None)
    if refine is None:
        raise SystemExit(f"{name}: editing.classical has no {_REFINE[name]} in this version")
    return lambda image, key: RefineSession(image, refine)


def best_classical() -> str:
    """The window's Clicks tool where this version has it, else GrabCut from clicks."""
    from segstudio.editing import classical
    return "clicks" if hasattr(classical, _REFINE["clicks"]) else "grabcut"


class PromptableSession(Session):
    """A click model through the Promptable protocol: every click so far as points, the first
    candidate (the one the window shows first)."""

    def __init__(self, model, emb, shape) -> None:
        self.model, self.emb, self.shape = model, emb, shape

    def answer(self, clicks: list[Click], previous: np.ndarray) -> np.ndarray:
        pts = [(c.x + 0.5, c.y + 0.5, c.positive) for c in clicks]  # pixel centres, as the window's
        cands = self.model.decode(self.emb, pts)
        return paste(cands.crop(0), self.shape) if len(cands) else np.zeros(self.shape, bool)


def promptable_tool(model) -> Tool:
    embeddings: dict[str, object] = {}

    def start(image: np.ndarray, key: str) -> Session:
        if key not in embeddings:
            embeddings.clear()  # one image at a time: its objects share the embedding
            embeddings[key] = model.embedding_for(image, None)
        return PromptableSession(model, embeddings[key], image.shape[:2])
    return start


class ModelThenSession(Session):
    """The pre-label model's click: the first click takes the model's instance or class area under
    it (the window's PromptTool.pick); later clicks refine that region with a click tool."""

    def __init__(self, candidates, then: Session, shape) -> None:
        self.candidates, self.then, self.shape = candidates, then, shape

    def answer(self, clicks: list[Click], previous: np.ndarray) -> np.ndarray:
        from segstudio.editing.assist_tools import PromptTool
        from segstudio.editing.tools import Pointer
        if len(clicks) == 1 and clicks[0].positive:
            c = clicks[0]
            det = PromptTool.pick(self.candidates, None, Pointer(c.x + 0.5, c.y + 0.5))
            if det is not None:
                return paste((det.mask, det.box[0], det.box[1]), self.shape)
        return self.then.answer(clicks, previous)


def model_tool(predict: Callable[[np.ndarray], list], then: Tool) -> Tool:
    """`predict(image)` -> the model's candidates (Prediction.candidates()), once per image."""
    cache: dict[str, list] = {}

    def start(image: np.ndarray, key: str) -> Session:
        if key not in cache:
            cache.clear()
            cache[key] = predict(image)
        return ModelThenSession(cache[key], then(image, key), image.shape[:2])
    return start


# ---------------------------------------------------------------- running


@dataclass
class Run:
    name: str
    tool: str
    ious: list[float] = field(default_factory=list)
    seconds: float = 0.0
    final: np.ndarray | None = field(default=None, repr=False)  # the tool's last answer
    strokes: int | None = None  # brush strokes left after the clicks (benchmarks/_actions.py)

    def clicks_to(self, threshold: float) -> int | None:
        """The click that first reached `threshold`; None when none did."""
        return next((k for k, v in enumerate(self.ious, start=1) if v >= threshold), None)


def run_object(tool: Tool, tool_name: str, image: np.ndarray, key: str, gt: np.ndarray, name: str,
               max_clicks: int = 20, target: float = 0.9, start: np.ndarray | None = None) -> Run:
    """Click one object until the target IoU or max_clicks; the previous answer is fed back.
    `start`: a mask already there (a pre-label's object) that the clicks correct."""
    t0 = time.perf_counter()
    session = tool(image, key)
    clicker = Clicker(gt)
    pred = start.copy() if start is not None else np.zeros(gt.shape, bool)
    run = Run(name, tool_name)
    for _ in range(max_clicks):
        click = clicker.next_click(pred)
        if click is None:
            break
        pred = session.answer(list(clicker.clicks), pred)
        run.ious.append(iou(gt, pred))
        if run.ious[-1] >= target:
            break
    run.seconds = time.perf_counter() - t0
    run.final = pred
    return run


def summarise(runs: list[Run], max_clicks: int) -> dict:
    """NoC@85, NoC@90, failures at 90 %, the mean IoU after each click (a run that stopped keeps
    its last IoU: the annotator stops clicking there) and seconds per click."""
    if not runs:
        return {"objects": 0, "noc85": None, "noc90": None, "failures90": None, "iou_per_click": [],
                "seconds_per_click": None}
    per_click = []
    for k in range(max_clicks):
        per_click.append(float(np.mean([r.ious[min(k, len(r.ious) - 1)] if r.ious else 0.0 for r in runs])))
    clicks = sum(len(r.ious) for r in runs)
    return {
        "objects": len(runs),
        "noc85": float(np.mean([noc(r.ious, 0.85, max_clicks) for r in runs])),
        "noc90": float(np.mean([noc(r.ious, 0.90, max_clicks) for r in runs])),
        "failures90": sum(1 for r in runs if not any(v >= 0.90 for v in r.ious)),
        "iou_per_click": per_click,
        "seconds_per_click": sum(r.seconds for r in runs) / max(clicks, 1),
    }
