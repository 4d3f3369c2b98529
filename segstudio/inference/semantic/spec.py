"""The semantic (class-per-pixel) networks by name, without importing torch: the command line
and the window offer these choices, `UNetConfig.encoder` holds one of the network names, and
`semantic_nets` builds them.

Every semantic network is a "unet" checkpoint (one format, one segmenter, one trainer); the
checkpoint's `config["encoder"]` says which network it is:

- "plain": the UNet of `unet.py` (every checkpoint written before the encoder setting existed);
- "resnet18" / "resnet34" / "resnet50": a UNet whose encoder is a torchvision ResNet, started
  from ImageNet weights;
- "fcn_resnet50" / "deeplabv3_resnet50" / "deeplabv3_mobilenet_v3_large": torchvision's FCN
  and DeepLabV3, which pre-label the 21 COCO-VOC classes with no training and fine-tune on the
  project's classes.
"""

from __future__ import annotations

from typing import Callable

from segstudio.inference.hub import hub_dir
from segstudio.inference.family import CLICK, LEARN_LIVE, PRELABEL_CLASSES, TRAIN, Family, WeightsFile

KIND = "unet"  # the checkpoint kind of every semantic network (Checkpoint.arch, the store's model kind)
PLAIN = "plain"
RESNET_ENCODERS = ("resnet18", "resnet34", "resnet50")
TORCHVISION_NETS = ("fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large")
ENCODERS = (PLAIN, *RESNET_ENCODERS, *TORCHVISION_NETS)

# model choices besides "unet" (--model, the Model panel's kind) and the network each one is
MODEL_NETS = {"fcn": "fcn_resnet50", "deeplabv3": "deeplabv3_resnet50",
              "deeplabv3_mobilenet": "deeplabv3_mobilenet_v3_large"}
SEMANTIC_MODELS = ("unet", *MODEL_NETS)


# the UNet a fresh training run builds: transposed-convolution upsampling and no dropout held out
# 0.003 more pixel accuracy on ISBI than bilinear upsampling with the paper's dropout, and ran
# 15 % more steps in the same time (benchmarks/README.md, the ISBI ablation)
DEFAULT_UNET = {"depth": 4, "width": 16, "up_mode": "transpose", "dropout": 0.0}


def is_semantic(model: str) -> bool:
    """Whether a model choice is a class-per-pixel network (a "unet" checkpoint)."""
    return model in SEMANTIC_MODELS


def model_name(encoder: str) -> str:
    """The model choice a network belongs to: "fcn", "deeplabv3", "deeplabv3_mobilenet" or "unet"
    (the plain and ResNet UNets)."""
    for name, net in MODEL_NETS.items():
        if net == encoder:
            return name
    return "unet"


# ----------------------------------------------------------------------------- the families
# torchvision's COCO-VOC files by network (their names in the torch hub cache; a test checks them
# against torchvision's weights enums)
VOC_FILES = {"fcn_resnet50": "fcn_resnet50_coco-1167a1af.pth",
             "deeplabv3_resnet50": "deeplabv3_resnet50_coco-cd0a2569.pth",
             "deeplabv3_mobilenet_v3_large": "deeplabv3_mobilenet_v3_large-fc3c493d.pth"}


def _voc_weights(net: str) -> Callable[[], list[WeightsFile]]:
    def needed() -> list[WeightsFile]:
        path = hub_dir() / "checkpoints" / VOC_FILES[net]
        return [WeightsFile(path.name, str(path), path.exists(), "COCO-VOC weights (torchvision), or a checkpoint")]
    return needed


def unet_weights() -> list[WeightsFile]:
    return [WeightsFile("a trained checkpoint", None, False, "train one (segstudio train, the Train panel)")]


_TRAINABLE = frozenset({CLICK, PRELABEL_CLASSES, TRAIN, LEARN_LIVE})
_OPTIONS = ("per_component", "tta")
_LOAD = "segstudio.inference.semantic.segmenter:load"
# what the command line, the trainers and the weights catalogue read
_TRAIN = "segstudio.inference.training.unet"
_RUN = {"cluster": True, "train": f"{_TRAIN}:train_unet", "train_config": f"{_TRAIN}:UNetTrainConfig",
        "catalog": "segstudio.inference.semantic.nets:catalog"}
FAMILIES = (
    Family("unet", "UNet (class per pixel)", "segstudio.inference.semantic", _TRAINABLE, load=_LOAD,
           checkpoint_kind=KIND, weights="segstudio.inference.semantic.spec:unet_weights", options=_OPTIONS,
           **_RUN,  # type: ignore[arg-type]
           note="trained on the project's done images; its click answer is the class area under the click"),
    *(Family(key, title, "segstudio.inference.semantic", _TRAINABLE, load=_LOAD, checkpoint_kind=KIND,
             trainer={"unet": {"encoder": MODEL_NETS[key]}}, weights=f"segstudio.inference.semantic.spec:{key}_weights",
             **_RUN,  # type: ignore[arg-type]
             options=_OPTIONS, pretrained="COCO-VOC weights, 20 classes (torchvision)",
             note="pre-labels the 20 VOC classes with no training; fine-tuned on the project's classes")
      for key, title in (("fcn", "FCN ResNet-50 (class per pixel)"),
                         ("deeplabv3", "DeepLabV3 ResNet-50 (class per pixel)"),
                         ("deeplabv3_mobilenet", "DeepLabV3 MobileNetV3 (class per pixel, light)"))),
)
fcn_weights = _voc_weights(MODEL_NETS["fcn"])
deeplabv3_weights = _voc_weights(MODEL_NETS["deeplabv3"])
deeplabv3_mobilenet_weights = _voc_weights(MODEL_NETS["deeplabv3_mobilenet"])
