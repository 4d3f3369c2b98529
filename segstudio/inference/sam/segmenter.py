"""`segstudio predict --model sam`: `SamSegmenter`, the headless `Segmenter` over a `sam.SamModel`:
the package's own automatic mask generator ("everything"), or each existing region's box as a
prompt ("boxes"). No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from segstudio.core import maskops
from segstudio.core.errors import BadValue
from segstudio.inference.runtime.device import DeviceInfo
from segstudio.inference.sam.model import SamModel, check_rgb, load_click
from segstudio.inference.sam.spec import OBJECT_CLASS, OPTIONS, PROMPT_MODES, to_sam_rgb
from segstudio.inference.runtime.segmenter import Detection, Prediction, Segmenter

@dataclass
class SamInput:
    """An image made ready on a decoder thread, with its box prompts in "boxes" mode."""
    rgb: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (N, 4) x0, y0, x1, y1
    labels: list[int] = field(default_factory=list)  # the model class (1-based) of each box

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def default_points_per_side(device: DeviceInfo) -> int:
    """32 (the package's default, 1024 prompts) on a GPU; 16 (256 prompts) elsewhere. Every grid
    point is one decoder pass plus the generator's full-resolution work on its 3 masks, so on a
    CPU the grid, not the embedding (~2.3 s), sets the time per image, growing with the square of
    points per side: TinyViT, 1024x768, 1 thread, every mask kept (random weights, thresholds 0):
    8 -> 28 s, 16 -> 100 s; 32 would be ~400 s for masks that are mostly duplicates (NMS drops
    them). Real weights with the default thresholds drop most masks early and cost less. 16 still
    finds medium-sized objects; use --points-per-side 8 for a quick pass."""
    return 32 if device.type == "cuda" else 16


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


class SamSegmenter(Segmenter):
    """`segstudio predict --model sam`: a Segmenter over a SamModel.

    mode "everything": the package's automatic mask generator (a grid of point prompts, then its
    own quality filters and NMS); class-less instances, all of one class "object" that the user
    renames. mode "boxes": each region already on the image (say, boxes imported from a
    detection dataset) is prompted with its bounding box and answered with a mask of the same
    class; regions this segmenter made itself are not prompts (a rerun replaces them)."""

    arch = "sam"

    def __init__(self, model: SamModel, mode: str = "everything", points_per_side: int | None = None,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95, box_nms_thresh: float = 0.7,
                 points_per_batch: int = 64, min_area: int = 4, classes: Sequence[tuple[int, str]] = ()):
        if mode not in PROMPT_MODES:
            raise BadValue(f"unknown prompt mode {mode!r}; use {' or '.join(PROMPT_MODES)}")
        self.model, self.mode, self.device = model, mode, model.device
        self.min_area = int(min_area)
        if mode == "everything":
            self.name = "sam"
            self.classes = [OBJECT_CLASS]
            pps = default_points_per_side(model.device) if points_per_side is None else int(points_per_side)
            if not 1 <= pps <= 128:
                raise BadValue(f"points per side (--points-per-side) must be 1 to 128, not {pps}")
            if not (0.0 <= pred_iou_thresh <= 1.0 and 0.0 <= stability_score_thresh <= 1.0):
                raise BadValue("the IoU and stability thresholds are between 0 and 1")
            self.points_per_side = pps
            self.generator = model.mask_generator(pps, points_per_batch, pred_iou_thresh, stability_score_thresh,
                                                  box_nms_thresh)
        else:
            self.name = "sam_boxes"
            # the project's classes, in order: a box of class id c becomes model label k + 1
            self.classes = [name for _, name in classes]
            self.label_of = {int(cid): k + 1 for k, (cid, _) in enumerate(classes)}

    def prepare(self, image: np.ndarray) -> SamInput:
        """Headless: through the window the display picks by default (imageio.auto_window)."""
        return SamInput(check_rgb(to_sam_rgb(image)))

    def prepare_record(self, image: np.ndarray, project, record) -> SamInput:
        item = self.prepare(image)
        if self.mode != "boxes":
            return item
        boxes, labels = [], []
        for row in project.store.region_rows(record.id):  # raw rows: no mask is decoded
            _rid, cid, x, y, w, h, _rle, _z, source = row[:9]
            label = self.label_of.get(int(cid))
            if source == self.name or label is None:
                continue
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(item.width, int(x) + int(w)), min(item.height, int(y) + int(h))
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                boxes.append((x0, y0, x1, y1))
                labels.append(label)
        item.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        item.labels = labels
        return item

    def predict_prepared(self, items: Sequence[SamInput], progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        preds = []
        for k, item in enumerate(items):
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            dets = self._everything(item, cancel) if self.mode == "everything" else self._boxes(item, cancel)
            dets = [d for d in dets if int(d.mask.sum()) >= self.min_area]
            dets.sort(key=lambda d: -d.mask.size)  # large first: smaller objects end up drawn above them
            unc = float(np.mean([_binary_entropy(d.score) for d in dets])) if dets else 0.0
            preds.append(Prediction(item.width, item.height, unc, _detections=dets, _candidates=dets,
                                    score_threshold=0.0))
            if progress is not None:
                progress(k + 1, len(items))
        return preds

    def _boxes(self, item: SamInput, cancel: Callable[[], bool] | None) -> list[Detection]:
        if not len(item.boxes):
            return []  # nothing to prompt with: no embedding needed
        emb = self.model.embed(item.rgb, cancel)
        found = self.model.decode_boxes(emb, item.boxes)
        return [Detection(label, m, x, y, min(max(s, 0.0), 1.0))
                for label, f in zip(item.labels, found, strict=True) if f is not None for m, x, y, s in [f]]

    def _everything(self, item: SamInput, cancel: Callable[[], bool] | None) -> list[Detection]:
        from pycocotools import mask as mask_utils
        gen = self.generator
        run = type(gen.predictor).predict_torch

        def predict_torch(*a, **kw):  # the generator's batches are where a cancel can stop it
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            return run(gen.predictor, *a, **kw)
        gen.predictor.predict_torch = predict_torch
        # the generator sets each crop's image itself: through SamModel.embed (precision, layout, cancel)
        gen.predictor.set_image = lambda image, image_format="RGB": self.model.set_image(gen.predictor, image, cancel)
        try:
            with self.model.lock, torch.no_grad():  # not priority.decoding(): it embeds, too
                anns = gen.generate(item.rgb)
        finally:
            del gen.predictor.predict_torch, gen.predictor.set_image
        dets = []
        for a in anns:
            seg = a["segmentation"]
            counts = seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]
            m = mask_utils.decode({"size": list(seg["size"]), "counts": counts}).astype(bool)
            c = maskops.crop_to_content(m)
            if c is not None:
                dets.append(Detection(1, c[0], c[1], c[2], min(max(float(a["predicted_iou"]), 0.0), 1.0)))
        return dets


def load(spec, device: DeviceInfo, project=None) -> SamSegmenter:
    """The Segment Anything family's headless loader (`Family.load`; spec: an engine.ModelSpec,
    its options: sam_spec.OPTIONS): the package's automatic generator ("everything"), or the
    project's regions' boxes as prompts ("boxes")."""
    from segstudio.inference.runtime.model_spec import check_options
    opts = check_options(spec, OPTIONS)
    mode = opts.get("prompts") or "everything"
    if mode not in PROMPT_MODES:
        raise BadValue(f"unknown prompt mode {mode!r}; use {' or '.join(PROMPT_MODES)}")
    pps = opts.get("points_per_side")
    if pps is not None and mode != "everything":
        raise BadValue("points per side are for the everything prompts (a grid of points), not for box prompts")
    classes: list[tuple[int, str]] = []
    if mode == "boxes":
        if project is None:
            raise BadValue("box prompts come from a project's regions: open a project")
        classes = [(c.id, c.name) for c in project.store.classes()]
    iou, stability = _number(opts, "pred_iou_thresh", 0.88), _number(opts, "stability_score_thresh", 0.95)
    if pps is not None and (isinstance(pps, bool) or not isinstance(pps, int)):
        raise BadValue(f"points per side is a whole number, not {pps!r}")
    if pps is not None and not 1 <= pps <= 128:
        raise BadValue(f"points per side (--points-per-side) must be 1 to 128, not {pps}")
    model = load_click(spec, device)
    return SamSegmenter(model, mode, pps, iou, stability, classes=classes)


def _number(opts: dict, key: str, default: float) -> float:
    v = opts.get(key, default)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise BadValue(f"{key} is a number from 0 to 1, not {v!r}") from None

