"""UNet prediction: normalise, run (in tiles when the image is larger than a tile), softmax,
class map + confidence + entropy. Regions are one per class per connected component (or one per
class), each scored by its mean confidence."""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence, cast

import numpy as np
import torch

from segstudio.inference.runtime.checkpoint import Checkpoint, CheckpointError
from segstudio.inference.runtime.device import DeviceInfo, autocast
from segstudio.inference.runtime.preprocess import Prepared, prepare, to_device
from segstudio.inference.runtime.segmenter import Prediction, Segmenter
from segstudio.inference.runtime.tiling import predict_tiled
from segstudio.inference.semantic.nets import SemanticNet, build_semantic_net
from segstudio.inference.semantic.unet import UNetConfig


def build_unet(ckpt: Checkpoint) -> SemanticNet:
    """The semantic network a "unet" checkpoint holds (the plain UNet, a ResNet-UNet, FCN or
    DeepLabV3, as `config["encoder"]` says), with the checkpoint's weights: nothing downloaded."""
    try:
        config = UNetConfig.from_dict(ckpt.config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path}: bad UNet settings: {e}") from None
    if config.num_classes != len(ckpt.classes) + 1:
        raise CheckpointError(f"{ckpt.path}: the model has {config.num_classes - 1} classes but the "
                              f"checkpoint lists {len(ckpt.classes)}")
    try:
        model = build_semantic_net(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path}: bad UNet settings: {e}") from None
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.path}: the weights do not fit this UNet ({str(e).splitlines()[0]})") from None
    return model


class UNetSegmenter(Segmenter):
    arch = name = "unet"
    project_checkpoint: str | None = None  # the project's model it was loaded from when no file was given
    semantic = True  # a class for every pixel (training/evaluate.py scores it by pixels)

    def __init__(self, ckpt: Checkpoint, device: DeviceInfo, tile: int | None = None, overlap: int = 64,
                 per_component: bool = True, min_area: int = 4, score_threshold: float = 0.0, tta: bool = False):
        self.ckpt = ckpt
        self.classes = list(ckpt.classes)
        self.device = device
        self.model = build_unet(ckpt).to(device.device).eval()
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.norm = ckpt.normalization or None
        self.tile = tile or 1024  # one pass for images up to 1024 px; larger ones in tiles
        self.overlap = overlap
        self.per_component, self.min_area, self.score_threshold = per_component, min_area, score_threshold
        self.tta = tta  # average over the four flips: a little more accurate, four times the work
        self.in_channels = self.model.config.in_channels
        self.num_classes = self.model.config.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's softmax output for a batch (averaged over the four flips with tta)."""
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.tta:
            return self._forward_once(x)
        out = self._forward_once(x)
        for dims in ((3,), (2,), (2, 3)):
            out += self._forward_once(x.flip(dims)).flip(dims)
        return out / 4

    def _forward_once(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device):
            return torch.softmax(self.model(x).float(), dim=1)

    def prepare(self, image: np.ndarray) -> Prepared:
        """CPU part of the input (thread-safe): the prediction pipeline runs it on decoder threads."""
        return prepare(image, self.in_channels, self.norm, pin=self.device.type == "cuda")

    @torch.inference_mode()
    def predict_prepared(self, items: Sequence[Prepared], progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        out: list[Prediction | None] = [None] * len(items)
        # images of one size that fit in a tile go through the model together
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(items):
            key = (p.height, p.width) if p.height <= self.tile and p.width <= self.tile else ("big", i)
            groups.setdefault(key, []).append(i)
        done = 0
        for key, idx in groups.items():
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            xs = to_device([items[i] for i in idx], self.device.device, self.in_channels)
            if key[0] == "big":
                probs = predict_tiled(xs[0], self._forward, self.num_classes, self.tile, self.overlap,
                                      cancel=cancel)[None]
            else:
                probs = self._forward(torch.stack(xs))
            finished = self._finish_batch(probs)
            for j, i in enumerate(idx):
                out[i] = finished[j]
            done += len(idx)
            if progress is not None:
                progress(done, len(items))
        return cast("list[Prediction]", out)  # the groups cover every index

    def _finish_batch(self, probs: torch.Tensor) -> list[Prediction]:
        """(N, K, H, W) probabilities -> class maps, confidences and entropies, one copy each to
        the CPU for the whole batch."""
        k = probs.shape[1]
        conf, cls = probs.max(dim=1)
        ent = (-(probs * torch.log(probs.clamp_min(1e-8))).sum(dim=1).mean(dim=(1, 2)) / math.log(k))
        if k <= 255:
            both = torch.stack([cls.to(torch.uint8), (conf * 255).round().to(torch.uint8)], dim=1)
        else:  # more classes than a byte holds: 16-bit class map, confidence widened alongside
            both = torch.stack([cls.to(torch.int16), (conf * 255).round().to(torch.int16)], dim=1)
        n = both.shape[0]
        if self.device.type == "cuda":
            # class map and confidence (quantised to 1/255) cross to pinned memory without blocking
            # this thread: it goes on to the next batch while the copy runs; the first reader waits
            host = torch.empty(both.shape, dtype=both.dtype, pin_memory=True)
            host.copy_(both, non_blocking=True)
            ent_host = torch.empty(ent.shape, dtype=torch.float32, pin_memory=True)
            ent_host.copy_(ent.float(), non_blocking=True)
            done = torch.cuda.Event()
            done.record()

            def finish(p: Prediction, j: int, done: torch.cuda.Event = done, ent_host: torch.Tensor = ent_host) -> None:
                done.synchronize()
                p.uncertainty = float(ent_host[j])
            arr = host.numpy()
            pending: list[Callable[[Prediction], None] | None] = [partial(finish, j=j) for j in range(n)]
            ents = [0.0] * n
        else:
            arr = both.cpu().numpy()
            pending = [None] * n
            ents = ent.float().cpu().numpy().tolist()
        class_maps, confs = arr[:, 0], arr[:, 1]  # views: nothing is read before the copy ends
        return [Prediction(class_maps.shape[2], class_maps.shape[1], float(ents[j]), class_map=class_maps[j],
                           confidence=confs[j], per_component=self.per_component, min_area=self.min_area,
                           _pending=pending[j],
                           score_threshold=self.score_threshold) for j in range(len(class_maps))]


def load(spec, device: DeviceInfo, project=None) -> UNetSegmenter:
    """The semantic families' loader (`Family.load`; spec: an engine.ModelSpec). Every
    class-per-pixel network is a "unet" checkpoint; with no file, FCN and DeepLabV3 pre-label the
    COCO-VOC classes with torchvision's weights and a UNet takes the project's latest trained one."""
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    from segstudio.inference.runtime.model_spec import check_options, latest_model, warm
    from segstudio.inference.semantic.spec import KIND, MODEL_NETS, model_name
    check_options(spec)
    from_project = None
    if spec.weights:
        ckpt = load_checkpoint(spec.weights, expect_arch=KIND)
    elif spec.arch in MODEL_NETS:
        from segstudio.inference.semantic.nets import voc_checkpoint
        ckpt = voc_checkpoint(MODEL_NETS[spec.arch], spec.download)
    else:
        from_project = latest_model(project, KIND) if project is not None else None
        if from_project is None:
            raise CheckpointError("a UNet needs a checkpoint: train one first (segstudio train FOLDER --model "
                                  "unet --out FILE, or Train in the Model panel) or give --weights FILE")
        ckpt = load_checkpoint(from_project, expect_arch=KIND)
    seg = UNetSegmenter(ckpt, device, per_component=spec.per_component, score_threshold=0.0, tta=spec.tta)
    seg.name = model_name(str(ckpt.config.get("encoder", "plain")))  # the regions' source
    seg.project_checkpoint = from_project  # the file a worker without the project loads (cluster/predict.py)
    return warm(seg)
