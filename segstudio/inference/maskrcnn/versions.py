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
