"""Mask R-CNN from torchvision (ResNet-50 FPN, v2 by default, v1 available).

COCO weights come through torchvision's weights API: from the torch cache, or downloaded with
progress when there is a network. When neither works, the error names the file and the folder
to put it in. Any checkpoint file the user picks is used as is (segstudio checkpoints, or a
torchvision Mask R-CNN state dict).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection.roi_heads import expand_boxes
from torchvision.models.detection.transform import resize_boxes

from segstudio.inference.runtime.checkpoint import Checkpoint, CheckpointError
from segstudio.inference.runtime.device import DeviceInfo, autocast
from segstudio.inference.maskrcnn.instance_masks import LowResMasks
from segstudio.inference.maskrcnn.versions import COCO_CATEGORIES, VERSIONS, weights_file
from segstudio.inference.maskrcnn.versions import guess_version  # noqa: F401  (re-exported: callers find it here)
from segstudio.inference.runtime.pretrained import read_torchvision_weights
from segstudio.inference.runtime.preprocess import Prepared, prepare, to_device
from segstudio.inference.runtime.segmenter import Prediction, Segmenter


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
        keep_low_res_masks(self.model)
        self.norm = ckpt.normalization if ckpt.normalization.get("mode") != "unit" else None

    def prepare(self, image: np.ndarray) -> Prepared:
        return prepare(image, 3, self.norm, pin=self.device.type == "cuda")

    def forward(self, xs: list[torch.Tensor]) -> list[dict]:
        """The network and its box post-processing, masks left at their 28x28 (see instance_masks)."""
        with autocast(self.device):
            return self.model(xs)

    @torch.inference_mode()
    def predict_prepared(self, items: Sequence[Prepared], progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        outs = self.forward(to_device(list(items), self.device.device, 3))
        preds = self._finish(outs, [(p.width, p.height) for p in items])
        if progress is not None:
            progress(len(items), len(items))
        return preds

    def _finish(self, outs: list[dict], sizes: list[tuple[int, int]]) -> list[Prediction]:
        """The batch's small masks, expanded boxes, scores and labels cross to the host in two
        copies (on CUDA without blocking: this thread goes on to the next batch, the first reader
        of a prediction waits for its copy)."""
        masks, metas = [], []
        for o in outs:  # the model already dropped scores under candidate_threshold (box_score_thresh)
            m = o["masks"]  # (n, 1, M, M) probabilities
            eb = expand_boxes(o["boxes"].float(), (m.shape[-1] + 2) / m.shape[-1]).to(torch.int64)
            masks.append(F.pad(m[:, 0], (1, 1, 1, 1)))  # torchvision pads by one before pasting
            metas.append(torch.cat([eb.float(), o["scores"].float()[:, None], o["labels"][:, None].float()], 1))
        mask_t, meta_t = torch.cat(masks), torch.cat(metas)
        if self.device.type == "cuda":
            mask_t = mask_t.half()  # probabilities: half precision is plenty, and half the copy
            mask_h = torch.empty(mask_t.shape, dtype=torch.float16, pin_memory=True)
            mask_h.copy_(mask_t, non_blocking=True)
            meta_h = torch.empty(meta_t.shape, dtype=torch.float32, pin_memory=True)
            meta_h.copy_(meta_t, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            mask_h, meta_h, done = mask_t.float(), meta_t, None
        n_per = [int(x.shape[0]) for x in metas]  # shapes are known without a sync
        preds, at = [], 0
        for (w, h), n in zip(sizes, n_per, strict=True):
            p = Prediction(w, h, 0.0, score_threshold=self.score_threshold)
            finish = partial(self._arrive, masks=mask_h, meta=meta_h, at=at, n=n, done=done)
            if done is None:
                finish(p)
            else:
                p._pending = finish
            preds.append(p)
            at += n
        return preds

    def _arrive(self, p: Prediction, masks: torch.Tensor, meta: torch.Tensor, at: int, n: int,
                done: "torch.cuda.Event | None") -> None:
        if done is not None:
            done.synchronize()
        mt = meta[at:at + n].numpy()
        p.low_res = LowResMasks(masks[at:at + n].numpy(), mt[:, :4].astype(np.int64), mt[:, 5].astype(np.int64),
                                mt[:, 4].astype(np.float32), self.mask_threshold)
        p.uncertainty = float(np.mean([_binary_entropy(float(s)) for s in mt[:, 4]])) if n else 0.0


def keep_low_res_masks(model: torch.nn.Module) -> None:
    """In inference, the model's transform scales the boxes back to the image but leaves each
    mask at its 28x28: instance_masks pastes them where and when they are needed."""
    transform = model.transform
    assert isinstance(transform, torch.nn.Module)  # torchvision's GeneralizedRCNNTransform

    def postprocess(result, image_shapes, original_image_sizes):
        if transform.training:
            return result
        for pred, im_s, o_im_s in zip(result, image_shapes, original_image_sizes, strict=True):
            pred["boxes"] = resize_boxes(pred["boxes"], im_s, o_im_s)
        return result
    transform.__dict__["postprocess"] = postprocess  # an instance attribute: this model's alone


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def torchvision_version() -> str:
    return torchvision.__version__


def load(spec, device: DeviceInfo, project=None) -> MaskRCNNSegmenter:
    """The Mask R-CNN family's loader (`Family.load`; spec: an engine.ModelSpec): the spec's file,
    else torchvision's COCO weights of its variant (v2 by default)."""
    from segstudio.inference.maskrcnn.spec import ARCH, FAMILIES
    from segstudio.inference.maskrcnn.versions import from_state_dict
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    from segstudio.inference.runtime.model_spec import check_options, warm
    check_options(spec)
    version = spec.variant or FAMILIES[0].variants[0][0]
    if version not in VERSIONS:
        raise CheckpointError(f"Mask R-CNN version must be {' or '.join(VERSIONS)}, not {version!r}")
    ckpt = load_checkpoint(spec.weights, expect_arch=ARCH, plain=from_state_dict) if spec.weights else \
        coco_checkpoint(version, spec.download)
    return warm(MaskRCNNSegmenter(ckpt, device, spec.score_threshold, spec.mask_threshold))
