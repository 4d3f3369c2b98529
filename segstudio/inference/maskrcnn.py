"""Mask R-CNN from torchvision (ResNet-50 FPN, v2 by default, v1 available).

COCO weights come through torchvision's weights API: from the torch cache, or downloaded with
progress when there is a network. When neither works, the error names the file and the folder
to put it in. Any checkpoint file the user picks is used as is (segstudio checkpoints, or a
torchvision Mask R-CNN state dict).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torchvision

from segstudio.inference.checkpoint import Checkpoint, CheckpointError
from segstudio.inference.device import DeviceInfo, autocast
from segstudio.inference.maskrcnn_spec import COCO_CATEGORIES, VERSIONS, weights_file
from segstudio.inference.maskrcnn_spec import guess_version  # noqa: F401  (re-exported: callers find it here)
from segstudio.inference.pretrained import read_torchvision_weights
from segstudio.inference.preprocess import Prepared, prepare, to_device
from segstudio.inference.segmenter import Detection, Prediction, Segmenter


def build_maskrcnn(version: str = "v2", num_classes: int = 91, **kw) -> torch.nn.Module:
    if version not in VERSIONS:
        raise ValueError(f"Mask R-CNN version must be v1 or v2, not {version!r}")
    fn, _ = VERSIONS[version]
    return fn(weights=None, weights_backbone=None, num_classes=num_classes, **kw)


def coco_state_dict(version: str = "v2", download: bool = True, progress: bool = True) -> dict:
    """The COCO state dict, read with `weights_only=True` like every checkpoint: a cached file
    that holds anything but tensors and plain containers (a pickle that would run code) is
    refused with a CheckpointError that names it, never executed."""
    return read_torchvision_weights(VERSIONS[version][1], weights_file(version), _missing(version),
                                    "Delete it to download the COCO weights again, or choose a checkpoint file",
                                    download, progress)


def _missing(version: str) -> str:
    p = weights_file(version)
    return (f"COCO weights for Mask R-CNN {version} are not available: put {p.name} in {p.parent} "
            f"(from {VERSIONS[version][1].url}; offline: `segstudio weights add FILE` with a copy from elsewhere), "
            "or choose a checkpoint file")


def coco_checkpoint(version: str = "v2", download: bool = True) -> Checkpoint:
    sd = coco_state_dict(version, download)
    return Checkpoint("maskrcnn", {"version": version, "num_classes": len(COCO_CATEGORIES)}, COCO_CATEGORIES[1:],
                      sd, {"mode": "unit"}, {"source": f"torchvision COCO weights ({weights_file(version).name})"},
                      path=str(weights_file(version)))


def model_from_checkpoint(ckpt: Checkpoint, **kw) -> torch.nn.Module:
    version = ckpt.config.get("version", "v2")
    n = int(ckpt.config.get("num_classes", len(ckpt.classes) + 1))
    if n != len(ckpt.classes) + 1:
        raise CheckpointError(f"{ckpt.path}: {n - 1} classes in the model, {len(ckpt.classes)} listed")
    model = build_maskrcnn(version, n, **kw)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.path}: the weights do not fit a Mask R-CNN {version} with {n - 1} classes "
                              f"({str(e).splitlines()[0][:160]})") from None
    return model


class MaskRCNNSegmenter(Segmenter):
    arch = name = "maskrcnn"

    def __init__(self, ckpt: Checkpoint, device: DeviceInfo, score_threshold: float = 0.5,
                 mask_threshold: float = 0.5, candidate_threshold: float = 0.05, max_detections: int = 100):
        self.ckpt = ckpt
        self.classes = list(ckpt.classes)
        self.device = device
        self.score_threshold, self.mask_threshold = score_threshold, mask_threshold
        self.candidate_threshold = candidate_threshold
        self.model = model_from_checkpoint(ckpt, box_score_thresh=candidate_threshold,
                                           box_detections_per_img=max_detections).to(device.device).eval()
        self.norm = ckpt.normalization if ckpt.normalization.get("mode") != "unit" else None

    def prepare(self, image: np.ndarray) -> Prepared:
        return prepare(image, 3, self.norm, pin=self.device.type == "cuda")

    @torch.inference_mode()
    def predict_prepared(self, items: Sequence[Prepared], progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        xs = to_device(list(items), self.device.device, 3)
        with autocast(self.device):
            outs = self.model(xs)
        preds = [self._finish(o, p.width, p.height) for o, p in zip(outs, items, strict=True)]
        if progress is not None:
            progress(len(items), len(items))
        return preds

    def _finish(self, out: dict, width: int, height: int) -> Prediction:
        scores = out["scores"].float()
        keep = scores >= self.candidate_threshold
        masks = out["masks"][keep, 0] > self.mask_threshold  # thresholded on the device
        # boxes, scores and labels cross to the CPU in one copy
        meta_t = torch.cat([out["boxes"][keep].float(), scores[keep, None], out["labels"][keep, None].float()], 1)
        meta = meta_t.cpu().numpy()
        boxes = np.round(meta[:, :4]).astype(np.int64)
        found: list[tuple[int, int, int, int, int] | None] = []
        for k in range(len(meta)):
            x0, y0 = max(0, int(boxes[k, 0])), max(0, int(boxes[k, 1]))
            x1, y1 = min(width, int(boxes[k, 2]) + 1), min(height, int(boxes[k, 3]) + 1)
            found.append((k, x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None)
        spans = [sp for sp in found if sp is not None]
        # each mask cropped to its box on the device, all crops in one copy to the CPU
        if spans:
            flat = torch.cat([masks[k, y0:y1, x0:x1].reshape(-1) for k, x0, y0, x1, y1 in spans]).cpu().numpy()
        dets, at = [], 0
        for k, x0, y0, x1, y1 in spans:
            n = (y1 - y0) * (x1 - x0)
            crop = flat[at:at + n].reshape(y1 - y0, x1 - x0)
            at += n
            if crop.any():
                dets.append(Detection(int(meta[k, 5]), crop, x0, y0, float(meta[k, 4])))
        unc = float(np.mean([_binary_entropy(d.score) for d in dets])) if dets else 0.0
        kept = [d for d in dets if d.score >= self.score_threshold]
        return Prediction(width, height, unc, _detections=kept, _candidates=dets,
                          score_threshold=self.score_threshold)


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def torchvision_version() -> str:
    return torchvision.__version__
