"""Evaluation: semantic (per-class IoU, mean IoU, pixel accuracy, from a confusion matrix) and
instances (mask AP through pycocotools COCOeval), on the done images or a given split."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from segstudio.core.classes import BACKGROUND_NAMES
from segstudio.core.labelmap import paint_label_map
from segstudio.core.project import Project
from segstudio.core.records import DONE


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int | None = None) -> np.ndarray:
    """(K, K) counts, rows = ground truth, columns = prediction; `ignore` pixels left out."""
    valid = (gt < num_classes) & (gt >= 0)
    if ignore is not None:
        valid &= gt != ignore
    idx = gt[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def semantic_metrics(conf: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """Per-class IoU (NaN for a class absent from both), mean IoU over classes present, pixel accuracy."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = conf.sum()
    names = list(names) if names is not None else [str(k) for k in range(len(tp))]
    per = {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)}
    present = iou[~np.isnan(iou)]
    fg = iou[1:][~np.isnan(iou[1:])]
    return {"pixel_accuracy": float(tp.sum() / total) if total else None,
            "mean_iou": float(present.mean()) if present.size else None,
            "foreground_iou": float(fg.mean()) if fg.size else None,
            "per_class_iou": per, "pixels": int(total)}


def instance_metrics(gt_by_image: dict, dt_by_image: dict, num_classes: int) -> dict:
    """Mask AP with pycocotools.

    gt: {image: [(label, full_mask, iscrowd)]}; dt: {image: [(label, full_mask, score)]}."""
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for k, key in enumerate(gt_by_image, start=1):
        h, w = None, None
        for label, m, crowd in gt_by_image[key]:
            h, w = m.shape
            rle = mu.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": int(label), "segmentation": rle,
                         "area": int(m.sum()), "bbox": [float(b) for b in mu.toBbox(rle)], "iscrowd": int(crowd)})
        for label, m, score in dt_by_image.get(key, []):
            h, w = m.shape
            rle = mu.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            dets.append({"image_id": k, "category_id": int(label), "segmentation": rle, "score": float(score),
                         "bbox": [float(b) for b in mu.toBbox(rle)], "area": int(m.sum())})
        images.append({"id": k, "width": w or 1, "height": h or 1})
    if not anns:
        return {"mask_AP": None, "mask_AP50": None, "mask_AP75": None, "instances": 0, "note": "no ground truth"}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c, "name": str(c)} for c in range(1, num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return {"mask_AP": 0.0, "mask_AP50": 0.0, "mask_AP75": 0.0, "instances": len(anns), "detections": 0}
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"mask_AP": float(s[0]), "mask_AP50": float(s[1]), "mask_AP75": float(s[2]),
            "instances": len(anns), "detections": len(dets)}


@dataclass
class EvalReport:
    kind: str  # semantic | instances
    metrics: dict
    images: int
    errors: list = field(default_factory=list)


def project_classes(project: Project):
    """Training and evaluation classes: the project's non-ignore classes in order (label k+1)."""
    classes = project.store.classes()
    return [c for c in classes if not c.ignore], {c.id for c in classes if c.ignore}


def evaluate_project(project: Project, segmenter, statuses: Sequence[str] | None = (DONE,),
                     image_ids: Sequence[int] | None = None, progress: Callable | None = None,
                     cancel: Callable[[], bool] | None = None) -> EvalReport:
    """Compare a model's predictions with the annotations of the given images.

    The model's classes are matched to project classes by name; a UNet is scored per pixel,
    Mask R-CNN per instance (mask AP). A project class named background (BACKGROUND_NAMES) is
    how background is painted, as training with sparse labels takes it: its pixels count as
    background and it is no class of its own in the scores or their mean.
    """
    store = project.store
    ids = list(image_ids) if image_ids is not None else store.image_ids(statuses=statuses)
    real, ignore_ids = project_classes(project)
    background_ids = {c.id for c in real if c.name.strip().lower() in BACKGROUND_NAMES}
    real = [c for c in real if c.id not in background_ids]
    names = [c.name for c in real]
    value_of = {c.id: i for i, c in enumerate(real, start=1)}
    value_of.update({cid: 0 for cid in background_ids})
    value_of.update({cid: 255 for cid in ignore_ids})
    model_to_eval = np.zeros(len(segmenter.classes) + 1, np.int64)
    for k, n in enumerate(segmenter.classes, start=1):
        model_to_eval[k] = names.index(n) + 1 if n in names else 0
    K = len(real) + 1
    conf = np.zeros((K, K), np.int64)
    gt_inst: dict[int, list[tuple[int, np.ndarray, Any]]] = {}
    dt_inst: dict[int, list[tuple[int, np.ndarray, float]]] = {}
    errors = []
    # class-per-pixel models are scored by pixels, instance ones by mask AP
    semantic = bool(getattr(segmenter, "semantic", False))
    for n, image_id in enumerate(ids):
        if cancel is not None and cancel():
            break
        rec = store.image(image_id)
        try:
            img = project.load_image(rec)
        except Exception as e:  # an unreadable image is listed in the report; the rest is evaluated  # noqa: BLE001
            errors.append((rec.path, str(e)))
            continue
        h, w = img.shape[:2]
        regions = store.regions(image_id)
        pred = segmenter.predict(img).wait()
        if semantic:
            gt = paint_label_map(regions, w, h, value_of, np.uint8)
            conf += confusion(model_to_eval[pred.class_map.astype(np.int64)], gt, K, ignore=255)
        else:
            gt_inst[image_id] = [(value_of[r.class_id], r.full_mask(w, h), r.iscrowd) for r in regions
                                 if value_of.get(r.class_id, 0) not in (0, 255)]
            dt_inst[image_id] = []
            for d in pred.candidates():
                lab = int(model_to_eval[d.label]) if d.label < len(model_to_eval) else 0
                if lab:
                    m = np.zeros((h, w), bool)
                    m[d.y:d.y + d.mask.shape[0], d.x:d.x + d.mask.shape[1]] = d.mask
                    dt_inst[image_id].append((lab, m, d.score))
        if progress is not None:
            progress(n + 1, len(ids), rec.path)
    if semantic:
        metrics = semantic_metrics(conf, ["background"] + names)
        return EvalReport("semantic", metrics, len(ids) - len(errors), errors)
    return EvalReport("instances", instance_metrics(gt_inst, dt_inst, K), len(ids) - len(errors), errors)
