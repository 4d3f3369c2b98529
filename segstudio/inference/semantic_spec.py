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
