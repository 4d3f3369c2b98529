"""Mask R-CNN from torchvision (ResNet-50 FPN, v2 by default, v1 available).

COCO weights come through torchvision's weights API: from the torch cache, or downloaded with
progress when there is a network. When neither works, the error names the file and the folder
to put it in. Any checkpoint file the user picks is used as is (segstudio checkpoints, or a
torchvision Mask R-CNN state dict).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torchvision

from segstudio.core.errors import UserError
from segstudio.inference.checkpoint import Checkpoint, CheckpointError
from segstudio.inference.device import DeviceInfo, autocast
from segstudio.inference.maskrcnn_spec import COCO_CATEGORIES, VERSIONS, weights_file
from segstudio.inference.maskrcnn_spec import guess_version  # noqa: F401  (re-exported: callers find it here)
from segstudio.inference.preprocess import Prepared, prepare, to_device
from segstudio.inference.segmenter import Detection, Prediction, Segmenter


class WeightsUnavailable(UserError):
    """Pretrained weights are neither cached nor downloadable; the message says what to do."""


def build_maskrcnn(version: str = "v2", num_classes: int = 91, **kw) -> torch.nn.Module:
    if version not in VERSIONS:
        raise ValueError(f"Mask R-CNN version must be v1 or v2, not {version!r}")
    fn, _ = VERSIONS[version]
    return fn(weights=None, weights_backbone=None, num_classes=num_classes, **kw)


def coco_state_dict(version: str = "v2", download: bool = True, progress: bool = True) -> dict:
    """The COCO state dict, read with `weights_only=True` like every checkpoint: a cached file
    that holds anything but tensors and plain containers (a pickle that would run code) is
    refused with a CheckpointError that names it, never executed."""
    weights = VERSIONS[version][1]
    path = weights_file(version)
    if not path.exists() and not download:
        raise WeightsUnavailable(_missing(version))
    try:
        # torchvision's load_state_dict_from_url defaults to weights_only=False: say it
        sd = weights.get_state_dict(progress=progress, check_hash=True, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        blocked = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if blocked:
            raise CheckpointError(
                f"refused to load {path}: it holds Python objects besides tensors ({blocked[0][:160]}), and "
                "loading it could run code. segstudio reads weights with weights_only=True. Delete the file "
                "to download the COCO weights again, or choose a checkpoint file") from None
        raise WeightsUnavailable(_unreadable(path, e)) from None
    except Exception as e:  # a failed download or a bad file, whatever raised it: WeightsUnavailable  # noqa: BLE001
        if path.exists():
            raise WeightsUnavailable(_unreadable(path, e)) from None
        raise WeightsUnavailable(_missing(version) + f" (download failed: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors): delete it to "
                              "download the COCO weights again, or choose a checkpoint file")
    return sd


def _unreadable(path: Path, e: BaseException) -> str:
    # torch's messages wrap the reason in advice about weights_only=False: keep just the reason
    noise = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith(noise)]
    reason = lines[0][:120] if lines else type(e).__name__
    return (f"{path} cannot be read as weights (corrupt or truncated? {reason}): "
            "delete it to download it again, or choose a checkpoint file")


def _missing(version: str) -> str:
    p = weights_file(version)
    return (f"COCO weights for Mask R-CNN {version} are not available: put {p.name} in {p.parent} "
            f"(from {VERSIONS[version][1].url}), or choose a checkpoint file")


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
