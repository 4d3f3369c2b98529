import numpy as np
import torch

from segstudio.inference.checkpoint import Checkpoint, save_checkpoint
from segstudio.inference.unet import UNet, UNetConfig


def tiny_unet_checkpoint(path, classes=("fg",), in_channels=3, up_mode="bilinear", depth=2, width=4, seed=0):
    torch.manual_seed(seed)
    cfg = UNetConfig(in_channels=in_channels, num_classes=len(classes) + 1, depth=depth, width=width, up_mode=up_mode)
    model = UNet(cfg)
    return save_checkpoint(Checkpoint("unet", cfg.to_dict(), list(classes), model.state_dict()), path)


def tiny_maskrcnn_checkpoint(path, classes=("thing", "other"), version="v2", seed=0):
    from segstudio.inference.maskrcnn import build_maskrcnn
    torch.manual_seed(seed)
    model = build_maskrcnn(version, len(classes) + 1, min_size=64, max_size=96)
    return save_checkpoint(Checkpoint("maskrcnn", {"version": version, "num_classes": len(classes) + 1},
                                      list(classes), model.state_dict(), {"mode": "unit"}), path)


def blob_image(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    img[10:30, 15:45] += 150
    return img
