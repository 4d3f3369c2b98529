import numpy as np
import torch

from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
from segstudio.inference.semantic.unet import UNet, UNetConfig


def tiny_unet_checkpoint(path, classes=("fg",), in_channels=3, up_mode="bilinear", depth=2, width=4, seed=0):
    torch.manual_seed(seed)
    cfg = UNetConfig(in_channels=in_channels, num_classes=len(classes) + 1, depth=depth, width=width, up_mode=up_mode)
    model = UNet(cfg)
    return save_checkpoint(Checkpoint("unet", cfg.to_dict(), list(classes), model.state_dict()), path)


def tiny_maskrcnn_checkpoint(path, classes=("thing", "other"), version="v2", seed=0):
    from segstudio.inference.maskrcnn.model import build_maskrcnn
    torch.manual_seed(seed)
    model = build_maskrcnn(version, len(classes) + 1, min_size=64, max_size=96)
    return save_checkpoint(Checkpoint("maskrcnn", {"version": version, "num_classes": len(classes) + 1},
                                      list(classes), model.state_dict(), {"mode": "unit"}), path)


def blob_image(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    img[10:30, 15:45] += 150
    return img


def discs_image(h, w, seed=0, n=None):
    """Bright discs on a dark, noisy background, and their true mask: objects everywhere, so any
    line through the image (a tile border) crosses some of them."""
    import cv2
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    truth = np.zeros((h, w), np.uint8)
    for _ in range(n or max(4, h * w // 700)):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(truth, c, int(rng.integers(4, 14)), 1, -1)
    img[truth > 0] = np.clip(img[truth > 0].astype(int) + 140, 0, 255).astype(np.uint8)
    return img, truth.astype(bool)


def trained_disc_unet(path, steps=120, seed=0):
    """A tiny UNet trained for a fixed number of steps to find the discs of `discs_image`: a model
    whose class map has real structure (most pixels right, region borders where the discs are),
    made in a few seconds on a CPU."""
    torch.manual_seed(seed)
    cfg = UNetConfig(in_channels=3, num_classes=2, depth=2, width=8, up_mode="transpose")
    model = UNet(cfg)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        pairs = [discs_image(64, 64, seed=int(rng.integers(1 << 30))) for _ in range(4)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float() / 255.0
        y = torch.from_numpy(np.stack([p[1] for p in pairs])).long()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return save_checkpoint(Checkpoint("unet", cfg.to_dict(), ["disc"], model.state_dict()), path)
