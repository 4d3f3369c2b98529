"""GPU check, made for one short call on a lent H100/H200: asserts the models really run on
CUDA, then for Mask R-CNN at 800x1067 and UNet at 1024x1024 prints raw model images/s and
`segstudio predict` end-to-end images/s over a folder of generated images, and their ratio
(targets: >= 0.95 Mask R-CNN, >= 0.90 UNet).

    python benchmarks/gpu_check.py [--out results.json] [--images-mrc 160] [--images-unet 320]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, summary  # noqa: E402
from _infer import e2e_throughput, make_folder, maskrcnn_checkpoint, raw_throughput, unet_checkpoint  # noqa: E402


def case(results, name, *args, **kw):
    try:
        _case(results, name, *args, **kw)
    except Exception as e:  # one failed case is reported; the others still run
        report(name, "FAILED", str(e).splitlines()[-1][:80] if str(e) else type(e).__name__, False)
        results[name] = {"error": str(e)[-2000:]}


def _case(results, name, arch, ck, folder, batch, iters, tmp, target, amp=None):
    raw = raw_throughput(arch, ck, folder, "cuda", batch, iters, amp=amp)
    assert raw["on_cuda"], f"{name}: the model is not on the GPU"
    e2e = e2e_throughput(arch, ck, folder, "cuda", batch, tmp / f"{arch}.db",
                         [] if amp is not False else ["--no-amp"])
    assert "cuda" in e2e["device"], f"{name}: segstudio predict did not run on CUDA ({e2e['device']})"
    r = e2e["images_per_second"] / raw["images_per_second"]
    report(f"{name}: raw model (batch {batch})", f"{raw['images_per_second']:.1f} img/s", "(reported)", None)
    report(f"{name}: segstudio predict end-to-end", f"{e2e['images_per_second']:.1f} img/s", "(reported)", None)
    report(f"{name}: end-to-end / raw", f"{r:.3f}", f">= {target}", r >= target)
    report(f"{name}: predict wall time incl. start-up ({e2e['images']} images)", f"{e2e['wall_seconds']:.1f} s",
           "(reported)", None)
    results[name] = {"raw": raw, "e2e": e2e, "ratio": r, "target": target}


def check_cuda_matches_cpu(tmp: Path, results: dict) -> None:
    """The GPU path (AMP, asynchronous copies back) gives the CPU's answer, pixel for pixel but
    for half-precision rounding."""
    import numpy as np

    from segstudio.core.imageio import decode_image
    from segstudio.inference.engine import ModelSpec, load_segmenter
    ck = unet_checkpoint(tmp / "check.pt", seed=3)
    folder = make_folder(tmp / "check", 4, 512, 512)
    imgs = [decode_image(f) for f in sorted(folder.glob("*.jpg"))]
    gpu = load_segmenter(ModelSpec("unet", str(ck), "cuda"))
    cpu = load_segmenter(ModelSpec("unet", str(ck), "cpu"))
    a = [p.wait().class_map.copy() for p in gpu.predict_batch(imgs)]
    b = [p.class_map for p in cpu.predict_batch(imgs)]
    agree = float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))
    results["cuda_vs_cpu_agreement"] = agree
    report("UNet class maps, CUDA (AMP) vs CPU agreement", f"{agree:.5f}", ">= 0.99", agree >= 0.99)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--images-mrc", type=int, default=240)
    ap.add_argument("--images-unet", type=int, default=960)
    a = ap.parse_args()
    import torch
    import torchvision
    assert torch.cuda.is_available(), "no CUDA device visible to torch"
    print(f"GPU check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    results: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        try:
            check_cuda_matches_cpu(tmp, results)
        except Exception as e:
            report("UNet CUDA vs CPU check", "FAILED", str(e)[:80], False)
        ck, note = maskrcnn_checkpoint(tmp / "m.pt")
        results["maskrcnn_weights"] = note
        print(f"Mask R-CNN weights: {note}")
        mf = make_folder(tmp / "mrc", a.images_mrc, 800, 1067)
        case(results, "Mask R-CNN v2 800x1067 (AMP)", "maskrcnn", ck, mf, 4, 30, tmp, 0.95)
        uf = make_folder(tmp / "unet", a.images_unet, 1024, 1024)
        uck = unet_checkpoint(tmp / "u.pt")
        case(results, "UNet 1024x1024 (AMP)", "unet", uck, uf, 8, 40, tmp, 0.90)
        case(results, "UNet 1024x1024 (fp32)", "unet", uck, uf, 8, 30, tmp, 0.90, amp=False)
    results["seconds"] = time.time() - t0
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
