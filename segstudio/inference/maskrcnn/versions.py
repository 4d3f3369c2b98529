"""What both the Mask R-CNN model code and the checkpoint reader need to know about Mask R-CNN:
the versions torchvision offers, their COCO weights (categories, file names in the torch cache),
and how to tell the versions apart from a state dict.

A module of its own so that `checkpoint` (which reads torchvision state dicts) and `maskrcnn`
(which loads checkpoints) both import it and neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models.detection import (MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights,
                                          maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2)

COCO_CATEGORIES: list[str] = list(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])
VERSIONS = {"v2": (maskrcnn_resnet50_fpn_v2, MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
            "v1": (maskrcnn_resnet50_fpn, MaskRCNN_ResNet50_FPN_Weights.COCO_V1)}


def guess_version(state_dict: dict) -> str:
    # v2 has a 4-conv box head with batch norm (box_head.0.0.weight); v1 has fc6/fc7
    return "v2" if any(k.startswith("roi_heads.box_head.0.") for k in state_dict) else "v1"


def weights_file(version: str = "v2") -> Path:
    """Where torchvision keeps (or would keep) the COCO weights of this version."""
    url = VERSIONS[version][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def from_state_dict(sd: dict, path: Path):
    """A plain torchvision Mask R-CNN state dict (the COCO file, a torchvision fine-tune) as a
    Checkpoint; None when it is not one (`Family.reads_state_dict`, asked by runtime.checkpoint)."""
    from segstudio.inference.maskrcnn.spec import ARCH
    from segstudio.inference.runtime.checkpoint import Checkpoint
    if not (any(k.startswith("roi_heads.mask_predictor") for k in sd) and any(k.startswith("backbone.body")
                                                                             for k in sd)):
        return None
    n = sd["roi_heads.box_predictor.cls_score.weight"].shape[0]
    classes = list(COCO_CATEGORIES[1:]) if n == len(COCO_CATEGORIES) else [f"class_{k}" for k in range(1, n)]
    return Checkpoint(ARCH, {"version": guess_version(sd), "num_classes": n}, classes, sd,
                      {"mode": "unit"}, {"source": f"torchvision state dict {path.name}"})


def catalog() -> list:
    """The COCO files of both versions, for the weights catalogue (`Family.catalog`)."""
    from segstudio.inference.runtime.weights_offer import torchvision_offer
    return [torchvision_offer(f"maskrcnn_{version}_coco", f"Mask R-CNN {version} ResNet-50 FPN, COCO", w,
                              f"Mask R-CNN {version}: COCO weights (pre-labelling, start of fine-tuning)")
            for version, (_, w) in VERSIONS.items()]
