"""The semantic networks besides the plain UNet, and their pretrained weights.

- **ResNet-UNet** (`encoder` "resnet18" / "resnet34" / "resnet50"): a torchvision ResNet as the
  encoder (stem at 1/2, layer1 at 1/4 … layer4 at 1/32) and a UNet decoder that goes back up to
  full resolution, taking the stem and layer1-3 features as skip connections. It starts from
  ImageNet weights when they are in the torch cache or downloadable, else from random weights
  with a note that says which file to put where.
- **FCN / DeepLabV3** from torchvision (ResNet-50, or the light MobileNetV3 DeepLabV3): with no
  checkpoint they pre-label the 21 COCO-VOC classes from torchvision's weights; fine-tuned, the
  classifier head is replaced for the project's classes and the rest starts from those weights
  (else from the ImageNet backbone, else random, said in the note). The auxiliary head is left
  out: training has one output and one loss.

Every network takes the project's input (roughly [0, 1], see preprocess.normalize) and holds the
ImageNet mean/std as buffers, so preprocessing is the same for every model. Each returns logits
the size of its input, whatever that size. All are "unet" checkpoints: `config["encoder"]` says
which network to build, and the checkpoint's state dict carries all of its weights, so building
from a checkpoint never looks for pretrained files.

Pretrained weights are read like Mask R-CNN's COCO weights: torchvision's weights API with
`weights_only=True` (a cached file that would run code is refused, never executed).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models import segmentation as tvs

from segstudio.core.errors import BadValue
from segstudio.inference.runtime.checkpoint import Checkpoint
from segstudio.inference.runtime.pretrained import WeightsUnavailable, read_torchvision_weights
from segstudio.inference.runtime.preprocess import DEFAULT_NORMALIZATION
from segstudio.inference.semantic.spec import RESNET_ENCODERS, TORCHVISION_NETS
from segstudio.inference.semantic.unet import UNet, UNetConfig, Up

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ResNet(NamedTuple):
    build: Callable[..., nn.Module]
    imagenet: Any  # a torchvision WeightsEnum member
    channels: tuple[int, int, int, int, int]  # stem, layer1 … layer4


RESNETS = {
    "resnet18": _ResNet(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, (64, 64, 128, 256, 512)),
    "resnet34": _ResNet(tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1, (64, 64, 128, 256, 512)),
    "resnet50": _ResNet(tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, (64, 256, 512, 1024, 2048)),
}


class _TorchvisionNet(NamedTuple):
    build: Callable[..., nn.Module]
    voc: Any  # COCO weights with the 20 VOC classes (+ background)
    backbone: Any  # ImageNet weights of the backbone
    title: str


TV_NETS = {
    "fcn_resnet50": _TorchvisionNet(tvs.fcn_resnet50, tvs.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
                                    tvm.ResNet50_Weights.IMAGENET1K_V1, "FCN ResNet-50"),
    "deeplabv3_resnet50": _TorchvisionNet(tvs.deeplabv3_resnet50,
                                          tvs.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
                                          tvm.ResNet50_Weights.IMAGENET1K_V1, "DeepLabV3 ResNet-50"),
    "deeplabv3_mobilenet_v3_large": _TorchvisionNet(
        tvs.deeplabv3_mobilenet_v3_large, tvs.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1, "DeepLabV3 MobileNetV3-Large"),
}
assert set(RESNETS) == set(RESNET_ENCODERS) and set(TV_NETS) == set(TORCHVISION_NETS)

HEAD = "classifier.4."  # FCNHead's and DeepLabHead's last 1x1 convolution: one output per class


class ImageNetNorm(nn.Module):
    """(x - mean) / std with ImageNet's statistics, as buffers (moved with the model, not saved:
    they are constants). One channel gets the mean of the three."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int):
        super().__init__()
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if channels != 3:
            mean, std = mean.mean().repeat(channels), std.mean().repeat(channels)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResNetUNet(nn.Module):
    """UNet with a torchvision ResNet encoder. Decoder widths: 16, 8, 4, 2 and 1 x `width`
    (width 16, the trainer's default, gives the usual 256-128-64-32-16)."""

    multiple = 32  # the ResNet halves the resolution five times

    def __init__(self, config: UNetConfig):
        super().__init__()
        if config.encoder not in RESNETS:
            raise BadValue(f"not a ResNet encoder: {config.encoder!r}")
        self.config = c = config
        spec = RESNETS[c.encoder]
        enc = spec.build(weights=None)
        if c.in_channels != 3:
            # grey (or other) input: a first convolution for that many channels; pretrained
            # weights are summed over RGB into it (see load_imagenet_encoder)
            enc.conv1 = nn.Conv2d(c.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        del enc.fc, enc.avgpool  # the classifier: not used, not saved
        self.norm = ImageNetNorm(c.in_channels)
        self.encoder = enc
        self.dropout = nn.Dropout2d(c.dropout) if c.dropout else nn.Identity()
        s0, s1, s2, s3, s4 = spec.channels
        d = [c.width * m for m in (16, 8, 4, 2, 1)]
        self.ups = nn.ModuleList([Up(s4, s3, d[0], c.up_mode),  # 1/32 -> 1/16, with layer3
                                  Up(d[0], s2, d[1], c.up_mode),  # -> 1/8, layer2
                                  Up(d[1], s1, d[2], c.up_mode),  # -> 1/4, layer1
                                  Up(d[2], s0, d[3], c.up_mode),  # -> 1/2, the stem
                                  Up(d[3], 0, d[4], c.up_mode)])  # -> full resolution
        self.head = nn.Conv2d(d[4], c.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # as UNet.forward: pad up to a multiple of 32, crop the output back
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        e: Any = self.encoder  # the ResNet's layers, called one by one
        x = self.norm(x)
        s0 = e.relu(e.bn1(e.conv1(x)))  # 1/2
        s1 = e.layer1(e.maxpool(s0))  # 1/4
        s2 = e.layer2(s1)  # 1/8
        s3 = e.layer3(s2)  # 1/16
        y = self.dropout(e.layer4(s3))  # 1/32
        for up, skip in zip(self.ups, (s3, s2, s1, s0, None), strict=True):
            y = up(y, skip)
        return self.head(y)[..., :h, :w]


class TorchvisionSegNet(nn.Module):
    """torchvision's FCN / DeepLabV3 (no auxiliary head), returning the "out" logits, which
    torchvision already resizes to the input size.

    Grey input is repeated to three channels here rather than the first convolution's weights
    summed: torchvision's layers stay exactly as they are, so its weight files load unchanged."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        if config.encoder not in TV_NETS:
            raise BadValue(f"not a torchvision segmentation network: {config.encoder!r}")
        if config.in_channels not in (1, 3):
            raise BadValue(f"{config.encoder} takes 1 or 3 channels, not {config.in_channels}")
        self.config = config
        self.norm = ImageNetNorm(3)
        self.net = TV_NETS[config.encoder].build(weights=None, weights_backbone=None,
                                                 num_classes=config.num_classes, aux_loss=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(self.norm(x))["out"]


SemanticNet = Union[UNet, ResNetUNet, TorchvisionSegNet]


def build_semantic_net(config: UNetConfig) -> SemanticNet:
    """The network `config.encoder` names, with random weights (nothing is downloaded)."""
    if config.encoder in RESNETS:
        return ResNetUNet(config)
    if config.encoder in TV_NETS:
        return TorchvisionSegNet(config)
    return UNet(config)


# ---------------------------------------------------------------------------- pretrained weights
def weights_file(weights: Any) -> Path:
    """Where torchvision keeps (or would keep) these weights: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _missing(weights: Any, what: str) -> str:
    p = weights_file(weights)
    return (f"{what} not available: put {p.name} in {p.parent} (from {weights.url}; offline: "
            "`segstudio weights add FILE` with a copy from elsewhere)")


def pretrained_state_dict(weights: Any, what: str, download: bool = True) -> dict:
    """torchvision weights from the cache, else downloaded (`download`), read with
    `weights_only=True`. WeightsUnavailable (the message names the file and the folder) when
    they are neither; CheckpointError for a cached file that holds more than tensors."""
    return read_torchvision_weights(weights, weights_file(weights), _missing(weights, what),
                                    "Delete it to download it again", download, progress=False)


def _load_strict(module: nn.Module, sd: dict, path: Path) -> None:
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise WeightsUnavailable(f"{path} does not hold the expected weights ({str(e).splitlines()[0][:160]}): "
                                 "delete it to download it again") from None


def load_imagenet_encoder(model: ResNetUNet, sd: dict, path: Path = Path("?")) -> None:
    """ImageNet ResNet weights into the encoder (the classifier dropped). For other than three
    input channels the first convolution's RGB weights are averaged and scaled by 3/C: for grey
    input (C = 1) this is their sum, the standard trick, which answers a grey image as the RGB
    network answers that grey repeated three times."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    c = model.config.in_channels
    if c != 3 and "conv1.weight" in sd:
        w = sd["conv1.weight"]
        sd["conv1.weight"] = w.mean(dim=1, keepdim=True).repeat(1, c, 1, 1) * (3.0 / c)
    _load_strict(model.encoder, sd, path)


def _load_voc(model: TorchvisionSegNet, sd: dict, path: Path) -> None:
    """COCO-VOC weights into a network with a new head: all but the auxiliary head and the class
    layer of the head."""
    sd = {k: v for k, v in sd.items() if not k.startswith(("aux_classifier.", HEAD))}
    try:
        missing, unexpected = model.net.load_state_dict(sd, strict=False)
    except RuntimeError as e:
        raise WeightsUnavailable(f"{path} does not hold the expected weights ({str(e).splitlines()[0][:160]})") \
            from None
    if unexpected or any(not k.startswith(HEAD) for k in missing):
        raise WeightsUnavailable(f"{path} does not hold the expected weights "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def _load_backbone(model: TorchvisionSegNet, sd: dict, path: Path) -> None:
    """ImageNet classification weights into the backbone (torchvision keeps a ResNet's layers by
    their names, a MobileNet's `features` by their index)."""
    if model.config.encoder.startswith("deeplabv3_mobilenet"):
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    else:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    backbone = model.net.backbone
    assert isinstance(backbone, nn.Module)
    _load_strict(backbone, sd, path)


def init_pretrained(model: nn.Module, download: bool = True) -> str:
    """Start a freshly built network from the best pretrained weights there are; returns the
    note for the training summary (where the weights came from, or why they are random)."""
    if isinstance(model, ResNetUNet):
        enc = model.config.encoder
        weights = RESNETS[enc].imagenet
        try:
            load_imagenet_encoder(model, pretrained_state_dict(weights, f"ImageNet weights for {enc}", download),
                                  weights_file(weights))
        except WeightsUnavailable as e:
            log.warning("%s; the encoder starts from random weights", e)
            return f"random initialisation ({e})"
        return f"ImageNet weights ({enc} encoder)"
    if isinstance(model, TorchvisionSegNet):
        spec = TV_NETS[model.config.encoder]
        try:
            _load_voc(model, pretrained_state_dict(spec.voc, f"COCO-VOC weights for {spec.title}", download),
                      weights_file(spec.voc))
            return f"COCO-VOC weights ({spec.title}; new {model.config.num_classes - 1}-class head)"
        except WeightsUnavailable as e1:
            first = str(e1)
        try:
            _load_backbone(model, pretrained_state_dict(spec.backbone, f"ImageNet weights for the {spec.title} "
                                                                       "backbone", download),
                           weights_file(spec.backbone))
            log.warning("%s; starting from the ImageNet backbone", first)
            return f"ImageNet backbone ({first})"
        except WeightsUnavailable as e2:
            log.warning("%s; %s; the network starts from random weights", first, e2)
            return f"random initialisation ({first}; {e2})"
    return "random initialisation"


def voc_checkpoint(encoder: str, download: bool = True) -> Checkpoint:
    """A checkpoint of torchvision's COCO-VOC weights for FCN / DeepLabV3: pre-labelling with no
    training. No random fallback: a network that never learnt would predict noise. Raises
    WeightsUnavailable (which file, which folder) when the weights are neither cached nor
    downloadable."""
    if encoder not in TV_NETS:
        raise BadValue(f"no COCO-VOC weights for {encoder!r}; choose one of {', '.join(TV_NETS)}")
    spec = TV_NETS[encoder]
    path = weights_file(spec.voc)
    try:
        sd = pretrained_state_dict(spec.voc, f"COCO-VOC weights for {spec.title}", download)
    except WeightsUnavailable as e:
        raise WeightsUnavailable(f"{e}, or choose a checkpoint file") from None
    categories = list(spec.voc.meta["categories"])
    classes = [c for c in categories if c != "__background__"]
    config = UNetConfig(in_channels=3, num_classes=len(classes) + 1, encoder=encoder)
    state = {f"net.{k}": v for k, v in sd.items() if not k.startswith("aux_classifier.")}
    return Checkpoint("unet", config.to_dict(), classes, state, dict(DEFAULT_NORMALIZATION),
                      {"source": f"torchvision COCO-VOC weights ({path.name})"}, path=str(path))


def catalog() -> list:
    """The files the semantic networks load, for the weights catalogue (`Family.catalog`): the
    COCO-VOC weights of FCN / DeepLabV3, the ResNet-UNet's ImageNet encoders, and the FCN /
    DeepLabV3 backbones used when their COCO-VOC file is missing."""
    import os

    from segstudio.inference.runtime.weights_offer import HASH_REGEX, torchvision_offer
    from segstudio.inference.semantic.spec import model_name
    out = [torchvision_offer(f"{model_name(net)}_voc", f"{spec.title}, COCO-VOC", spec.voc,
                             f"{spec.title}: COCO-VOC weights (pre-labelling, start of fine-tuning)")
           for net, spec in TV_NETS.items()]
    out += [torchvision_offer(f"{enc}_imagenet", f"{enc} ImageNet", r.imagenet, f"ResNet-UNet: {enc} encoder")
            for enc, r in RESNETS.items()]
    for spec in TV_NETS.values():
        stem = HASH_REGEX.split(os.path.basename(spec.backbone.url))[0]
        out.append(torchvision_offer(f"{stem}_imagenet", f"{stem} ImageNet", spec.backbone,
                                     f"{spec.title}: backbone when its COCO-VOC file is missing"))
    return out
