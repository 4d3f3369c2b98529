"""UNet prediction: normalise, run (in tiles when the image is larger than a tile), softmax,
class map + confidence + entropy. Regions are one per class per connected component (or one per
class), each scored by its mean confidence."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from segstudio.inference.checkpoint import Checkpoint, CheckpointError
from segstudio.inference.device import DeviceInfo, autocast
from segstudio.inference.preprocess import to_chw
from segstudio.inference.segmenter import Prediction, Segmenter
from segstudio.inference.tiling import predict_tiled
from segstudio.inference.unet import UNet, UNetConfig


def build_unet(ckpt: Checkpoint) -> UNet:
    try:
        config = UNetConfig.from_dict(ckpt.config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path}: bad UNet settings: {e}") from None
    if config.num_classes != len(ckpt.classes) + 1:
        raise CheckpointError(f"{ckpt.path}: the model has {config.num_classes - 1} classes but the "
                              f"checkpoint lists {len(ckpt.classes)}")
    model = UNet(config)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.path}: the weights do not fit this UNet ({str(e).splitlines()[0]})") from None
    return model


class UNetSegmenter(Segmenter):
    arch = name = "unet"

    def __init__(self, ckpt: Checkpoint, device: DeviceInfo, tile: int | None = None, overlap: int = 64,
                 per_component: bool = True, min_area: int = 4, score_threshold: float = 0.0):
        self.ckpt = ckpt
        self.classes = list(ckpt.classes)
        self.device = device
        self.model = build_unet(ckpt).to(device.device).eval()
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.norm = ckpt.normalization or None
        self.tile = tile or (1024 if device.type == "cuda" else 512)
        self.overlap = overlap
        self.per_component, self.min_area, self.score_threshold = per_component, min_area, score_threshold
        self.in_channels = self.model.config.in_channels
        self.num_classes = self.model.config.num_classes

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device):
            return torch.softmax(self.model(x).float(), dim=1)

    def input_tensor(self, image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(to_chw(image, self.in_channels, self.norm))
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device.device, non_blocking=True)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[np.ndarray], progress: Callable | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        out: list[Prediction | None] = [None] * len(images)
        # images of one size that fit in a tile go through the model together
        groups: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            h, w = im.shape[:2]
            key = (h, w) if h <= self.tile and w <= self.tile else ("big", i)
            groups.setdefault(key, []).append(i)
        done = 0
        for key, idx in groups.items():
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            xs = [self.input_tensor(images[i]) for i in idx]
            if key[0] == "big":
                probs = predict_tiled(xs[0], self._forward, self.num_classes, self.tile, self.overlap,
                                      cancel=cancel)[None]
            else:
                probs = self._forward(torch.stack(xs))
            for j, i in enumerate(idx):
                out[i] = self._finish(probs[j])
            done += len(idx)
            if progress is not None:
                progress(done, len(images))
        return out

    def _finish(self, probs: torch.Tensor) -> Prediction:
        k = probs.shape[0]
        conf, cls = probs.max(dim=0)
        ent = -(probs * torch.log(probs.clamp_min(1e-8))).sum(dim=0).mean() / math.log(k)
        dtype = torch.uint8 if k <= 255 else torch.int32
        class_map = cls.to(dtype).cpu().numpy()
        return Prediction(class_map.shape[1], class_map.shape[0], float(ent), class_map=class_map,
                          confidence=conf.half().cpu().numpy(), per_component=self.per_component,
                          min_area=self.min_area, score_threshold=self.score_threshold)
