"""Shared by cpu_infer.py and gpu_check.py: folders of images, models that find something in
them (a UNet trained for a fixed number of steps on ISBI membranes, cached), raw model
throughput, `segstudio predict` end-to-end throughput over a folder, and ratios repeated in one
process with a machine-speed probe beside each run."""

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


ISBI = ROOT.parent / "shared" / "data" / "isbi2012-membrane"


def isbi_dir() -> Path | None:
    """The ISBI 2012 slices: ../shared/data, or a copy beside the checkout (the GPU machine's)."""
    for d in (Path(os.environ.get("SEGSTUDIO_ISBI", "")), ISBI, ROOT / "bench-data" / "isbi2012-membrane"):
        if str(d) not in ("", ".") and (d / "image").is_dir() and (d / "label").is_dir():
            return d
    return None


def _isbi_slices(data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from PIL import Image
    names = sorted((data / "image").glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    imgs = [np.asarray(Image.open(p).convert("L")) for p in names]
    labs = [np.asarray(Image.open(data / "label" / p.name).convert("L")) > 127 for p in names]  # cell interior
    return imgs, labs


def make_isbi_folder(folder: Path, n: int, size: int = 1024, distinct: int = 8) -> Path:
    """n JPEGs of size x size, each a mosaic of ISBI slices (512 px; cropped when size is not a
    multiple), so a membrane model finds hundreds of cells per image. `distinct` mosaics are
    copied to fill the folder (each file is still decoded on its own)."""
    import cv2
    data = isbi_dir()
    assert data is not None, "ISBI data not found"
    imgs, _ = _isbi_slices(data)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    k = -(-size // 512)
    for _ in range(distinct):
        rows = [np.concatenate([imgs[int(rng.integers(len(imgs)))] for _ in range(k)], 1) for _ in range(k)]
        mosaic = np.concatenate(rows, 0)[:size, :size]
        ok, buf = cv2.imencode(".jpg", mosaic, [cv2.IMWRITE_JPEG_QUALITY, 92])
        blobs.append(buf.tobytes())
    for i in range(n):
        (folder / f"img{i:05d}.jpg").write_bytes(blobs[i % distinct])
    return folder


def trained_unet(cache: Path, steps: int = 150, device: str = "cpu", seed: int = 0) -> tuple[Path, str]:
    """The default UNet (depth 4, width 32, RGB, 2 classes) trained for a fixed number of steps
    on ISBI membranes (class "cell"), cached: a model whose output is real regions (hundreds of
    cells per 1024 px mosaic), not an untrained model's all-background map. Plain cross-entropy,
    Adam, batch 4 of 256 px crops with flips; the weights do not depend on where they were made
    beyond floating-point rounding."""
    import torch
    import torch.nn.functional as F

    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.semantic.unet import UNet, UNetConfig
    data = isbi_dir()
    assert data is not None, "ISBI data not found"
    path = cache / f"unet_isbi_{steps}steps_seed{seed}.pt"
    note = f"default UNet trained {steps} steps on ISBI (cached: {path})"
    if path.exists():
        return path, note
    cache.mkdir(parents=True, exist_ok=True)
    imgs, labs = _isbi_slices(data)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = UNetConfig()
    dev = torch.device(device)
    model = UNet(cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    t = time.perf_counter()
    for _ in range(steps):
        xs, ys = [], []
        for _ in range(4):
            i = int(rng.integers(len(imgs)))
            y0, x0 = (int(v) for v in rng.integers(0, 512 - 256, 2))
            im, lb = imgs[i][y0:y0 + 256, x0:x0 + 256], labs[i][y0:y0 + 256, x0:x0 + 256]
            if rng.random() < 0.5:
                im, lb = im[:, ::-1], lb[:, ::-1]
            if rng.random() < 0.5:
                im, lb = im[::-1], lb[::-1]
            xs.append(np.repeat(im[None], 3, 0))
            ys.append(lb)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs))).float().div_(255).to(dev)
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys))).long().to(dev)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained the benchmark UNet: {steps} steps in {time.perf_counter() - t:.0f} s on {device}, "
          f"last loss {float(loss):.3f}", flush=True)
    model = model.cpu().eval()
    tmp = path.with_suffix(".part")
    save_checkpoint(Checkpoint("unet", cfg.to_dict(), ["cell"], model.state_dict()), tmp)
    os.replace(tmp, path)
    return path, note


def disc_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images of bright discs on dark noise, (n, size, size, 3) uint8, and their masks."""
    import cv2
    rng = np.random.default_rng(seed)
    imgs = (rng.random((n, size, size, 3)) * 60).astype(np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(max(3, size * size // 1500)):
            c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            cv2.circle(masks[i], c, int(rng.integers(4, 12)), 1, -1)
    imgs[masks > 0] = np.clip(imgs[masks > 0].astype(int) + 150, 0, 255).astype(np.uint8)
    return imgs, masks.astype(bool)


def small_disc_unet(cache: Path, steps: int = 200) -> Path:
    """A small UNet (depth 2, width 8) trained to find the discs of disc_images, cached: fast
    enough to predict 10,000 images in a minute or two, and it writes real regions."""
    import torch
    import torch.nn.functional as F

    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.semantic.unet import UNet, UNetConfig
    path = cache / f"unet_discs_{steps}steps.pt"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = UNetConfig(depth=2, width=8, up_mode="transpose")
    model = UNet(cfg).train()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for k in range(steps):
        imgs, masks = disc_images(4, 96, seed=1000 + k)
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
        loss = F.cross_entropy(model(x), torch.from_numpy(masks).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    tmp = path.with_suffix(".part")
    save_checkpoint(Checkpoint("unet", cfg.to_dict(), ["disc"], model.eval().state_dict()), tmp)
    os.replace(tmp, path)
    return path


def unet_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch

    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.semantic.unet import UNet, UNetConfig
    torch.manual_seed(seed)
    cfg = UNetConfig()  # the default: depth 4, width 32, RGB, 2 classes
    return save_checkpoint(Checkpoint("unet", cfg.to_dict(), ["foreground"], UNet(cfg).state_dict()), path)


def maskrcnn_checkpoint(path: Path, seed: int = 0) -> Path:
    """COCO weights when torchvision has them cached; otherwise random weights (same compute)."""
    import torch

    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.maskrcnn.model import COCO_CATEGORIES, build_maskrcnn, coco_state_dict
    from segstudio.inference.runtime.pretrained import WeightsUnavailable
    try:
        sd, note = coco_state_dict("v2", download=False), "COCO weights"
    except WeightsUnavailable:
        torch.manual_seed(seed)
        sd, note = build_maskrcnn("v2", len(COCO_CATEGORIES)).state_dict(), "random weights (COCO file not cached)"
    save_checkpoint(Checkpoint("maskrcnn", {"version": "v2", "num_classes": len(COCO_CATEGORIES)},
                               COCO_CATEGORIES[1:], sd, {"mode": "unit"}, {"source": note}), path)
    return path, note


def raw_throughput(arch: str, weights: Path, folder: Path, device: str, batch: int, iters: int,
                   amp: bool | None = None, stock: bool = True) -> dict:
    """Images/s of the model alone: inputs already on the device, forward (+ softmax / the
    detector's own post-processing) and a device sync per batch. Mask R-CNN: `stock` is
    torchvision's model as shipped, whose post-processing pastes every mask into a full-size
    image; otherwise the network as segstudio runs it, which leaves the masks at 28x28 (they
    are pasted later, by the pipeline's workers)."""
    import torch

    from segstudio.core.imageio import decode_image
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
    seg = load_segmenter(ModelSpec(arch, str(weights), device, amp=amp))
    files = sorted(folder.glob("*.jpg"))[:batch]
    items = [seg.prepare(decode_image(f)) for f in files]
    from segstudio.inference.runtime.preprocess import to_device
    xs = to_device(items, seg.device.device, 3)
    sync = torch.cuda.synchronize if seg.device.type == "cuda" else (lambda: None)
    model = seg.model
    if arch == "maskrcnn" and stock:
        from segstudio.inference.maskrcnn.model import model_from_checkpoint
        model = model_from_checkpoint(seg.ckpt, box_score_thresh=seg.candidate_threshold,
                                      box_detections_per_img=100).to(seg.device.device).eval()

    @torch.inference_mode()
    def step():
        if arch == "unet":
            seg.forward(torch.stack(xs))
        else:
            from segstudio.inference.runtime.device import autocast
            with autocast(seg.device):
                model(xs)
        sync()
    for _ in range(2):
        step()
    import resource
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    s0 = cpu_steal()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    dt = time.perf_counter() - t
    s1 = cpu_steal()
    minflt = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / iters
    on_cuda = next(seg.model.parameters()).is_cuda
    return {"images_per_second": iters * batch / dt, "device": seg.device.describe(), "on_cuda": on_cuda,
            "minflt_per_batch": minflt, "steal": (s1[0] - s0[0]) / max(1, s1[1] - s0[1])}


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


def cpu_steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot (/proc/stat): time the hypervisor gave this
    VM's virtual CPUs to someone else."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (f[7] if len(f) > 7 else 0), sum(f)


def speed_probe(seconds: float = 1.0) -> float:
    """GFLOP/s of a fixed float32 matmul on all of torch's threads: the machine's speed at that
    moment (a shared VM's neighbours and clocks move it), measured beside each raw run."""
    import torch
    a, b, c = torch.randn(512, 512), torch.randn(512, 512), torch.empty(512, 512)
    torch.mm(a, b, out=c)  # into one buffer: the allocator stays out of the figure
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        torch.mm(a, b, out=c)
        n += 1
    return n * 2 * 512 ** 3 / (time.perf_counter() - t) / 1e9


def repeated_ratio(arch: str, weights: Path, folder: Path, device: str, batch: int, iters: int, db: Path,
                   runs: int, amp: bool | None = None, extra: list[str] = ()) -> dict:
    """`runs` times, alternating: the machine's speed, raw images/s, end-to-end images/s. The
    ratio of each run pairs the raw and end-to-end figures measured back to back."""
    rows = []
    for _ in range(runs):
        probe = speed_probe()
        raw = raw_throughput(arch, weights, folder, device, batch, iters, amp)
        lean = raw_throughput(arch, weights, folder, device, batch, iters, amp, stock=False) \
            if arch == "maskrcnn" else raw
        e2e = e2e_throughput(arch, weights, folder, device, batch, db, extra)
        rows.append({"probe_gflops": probe, "raw": raw["images_per_second"], "e2e": e2e["images_per_second"],
                     "raw_unpasted": lean["images_per_second"],
                     "ratio_unpasted": e2e["images_per_second"] / lean["images_per_second"],
                     "ratio": e2e["images_per_second"] / raw["images_per_second"],
                     "regions_per_image": e2e["regions"] / max(1, e2e["images"]), "images": e2e["images"],
                     "device": raw["device"], "on_cuda": raw["on_cuda"], "e2e_device": e2e["device"],
                     "timing": e2e.get("timing", {}), "raw_minflt": raw.get("minflt_per_batch"),
                     "raw_steal": raw.get("steal"), "e2e_model_seconds_per_image":
                     e2e.get("model_seconds", 0) / max(1, e2e["images"])})
    return {"runs": rows}


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """median (min–max) of the runs."""
    import statistics
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
