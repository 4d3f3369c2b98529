"""Shared by cpu_infer.py and gpu_check.py: a folder of generated images, raw model throughput,
and `segstudio predict` end-to-end throughput over that folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, h: int, w: int, distinct: int = 8) -> Path:
    """n JPEGs of h x w: `distinct` generated pictures (blobs on texture), copied to fill n files
    (each file is still decoded on its own)."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    for k in range(distinct):
        img = (rng.random((h // 8, w // 8, 3)) * 80).astype(np.uint8)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(12):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(img, c, (int(rng.integers(20, w // 6)), int(rng.integers(20, h // 6))),
                        float(rng.integers(0, 180)), 0, 360, [int(v) for v in rng.integers(100, 255, 3)], -1)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        blobs.append(buf.tobytes())
    for i in range(n):
        (folder / f"img{i:05d}.jpg").write_bytes(blobs[i % distinct])
    return folder


def unet_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch

    from segstudio.inference.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.unet import UNet, UNetConfig
    torch.manual_seed(seed)
    cfg = UNetConfig()  # the default: depth 4, width 32, RGB, 2 classes
    return save_checkpoint(Checkpoint("unet", cfg.to_dict(), ["foreground"], UNet(cfg).state_dict()), path)


def maskrcnn_checkpoint(path: Path, seed: int = 0) -> Path:
    """COCO weights when torchvision has them cached; otherwise random weights (same compute)."""
    import torch

    from segstudio.inference.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.maskrcnn import COCO_CATEGORIES, build_maskrcnn, coco_state_dict
    from segstudio.inference.pretrained import WeightsUnavailable
    try:
        sd, note = coco_state_dict("v2", download=False), "COCO weights"
    except WeightsUnavailable:
        torch.manual_seed(seed)
        sd, note = build_maskrcnn("v2", len(COCO_CATEGORIES)).state_dict(), "random weights (COCO file not cached)"
    save_checkpoint(Checkpoint("maskrcnn", {"version": "v2", "num_classes": len(COCO_CATEGORIES)},
                               COCO_CATEGORIES[1:], sd, {"mode": "unit"}, {"source": note}), path)
    return path, note


def raw_throughput(arch: str, weights: Path, folder: Path, device: str, batch: int, iters: int,
                   amp: bool | None = None) -> dict:
    """Images/s of the model alone: inputs already on the device, forward (+ softmax / the
    detector's own post-processing) and a device sync per batch."""
    import torch

    from segstudio.core.imageio import decode_image
    from segstudio.inference.engine import ModelSpec, load_segmenter
    seg = load_segmenter(ModelSpec(arch, str(weights), device, amp=amp))
    files = sorted(folder.glob("*.jpg"))[:batch]
    items = [seg.prepare(decode_image(f)) for f in files]
    from segstudio.inference.preprocess import to_device
    xs = to_device(items, seg.device.device, 3)
    sync = torch.cuda.synchronize if seg.device.type == "cuda" else (lambda: None)

    @torch.inference_mode()
    def step():
        if arch == "unet":
            seg.forward(torch.stack(xs))
        else:
            from segstudio.inference.device import autocast
            with autocast(seg.device):
                seg.model(xs)
        sync()
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    dt = time.perf_counter() - t
    on_cuda = next(seg.model.parameters()).is_cuda
    return {"images_per_second": iters * batch / dt, "device": seg.device.describe(), "on_cuda": on_cuda}


def e2e_throughput(arch: str, weights: Path, folder: Path, device: str, batch: int, db: Path,
                   extra: list[str] = ()) -> dict:
    """`segstudio predict` over the folder, as a user runs it (a fresh process)."""
    if db.exists():
        db.unlink()
    cmd = [sys.executable, "-m", "segstudio", "predict", str(folder), "--model", arch, "--weights", str(weights),
           "--device", device, "--batch", str(batch), "--status", "new", "--json", "--project", str(db), *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"segstudio predict failed: {r.stderr[-1500:]}")
    d = json.loads(r.stdout)
    d["wall_seconds"] = wall
    return d


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
