"""GPU check, made for one short call on a lent H100/H200: asserts the models really run on
CUDA, then for Mask R-CNN at 800x1067 and UNet at 1024x1024 prints raw model images/s and
`segstudio predict` end-to-end images/s, and their ratio, each measured --runs times (median and
spread), with the regions per image predict wrote (targets: >= 0.95 Mask R-CNN, >= 0.90 UNet).

The UNet is trained for 150 steps on ISBI membranes on the GPU first (seconds; needs
bench-data/isbi2012-membrane or ../shared/data) and runs over 1024 px ISBI mosaics, so each
image gives hundreds of cell regions. Mask R-CNN: COCO weights when cached, else random weights
with a score threshold of 0.05 (100 instances written per image).

    python benchmarks/gpu_check.py [--out results.json] [--runs 3] [--images-mrc 240] [--images-unet 480]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, report, summary  # noqa: E402
from _infer import (isbi_dir, make_folder, make_isbi_folder, maskrcnn_checkpoint, repeated_ratio,  # noqa: E402
                    spread, trained_unet, unet_checkpoint)


def case(results, name, *args, **kw):
    try:
        _case(results, name, *args, **kw)
    except Exception as e:  # one failed case is reported; the others still run
        report(name, "FAILED", str(e).splitlines()[-1][:80] if str(e) else type(e).__name__, False)
        results[name] = {"error": str(e)[-2000:]}


def _case(results, name, arch, ck, folder, batch, iters, tmp, target, amp=None, runs=3, extra=()):
    extra = [*extra, *([] if amp is not False else ["--no-amp"])]
    rows = repeated_ratio(arch, ck, folder, "cuda", batch, iters, tmp / f"{arch}.db", runs, amp, extra)["runs"]
    assert all(r["on_cuda"] for r in rows), f"{name}: the model is not on the GPU"
    assert all("cuda" in r["e2e_device"] for r in rows), f"{name}: segstudio predict did not run on CUDA"
    for i, r in enumerate(rows):
        print(f"  run {i + 1}: raw {r['raw']:.1f} img/s (unpasted {r['raw_unpasted']:.1f}), predict {r['e2e']:.1f} "
              f"img/s, ratio {r['ratio']:.3f}, {r['regions_per_image']:.1f} regions/image; timing {r['timing']}",
              flush=True)
    ratios = [r["ratio"] for r in rows]
    med = statistics.median(ratios)
    report(f"{name}: raw model (batch {batch}), img/s", spread([r["raw"] for r in rows], "{:.1f}"), "(reported)", None)
    if arch == "maskrcnn":
        report(f"{name}: raw, masks left at 28x28", spread([r["raw_unpasted"] for r in rows], "{:.1f}"),
               "(reported)", None)
        report(f"{name}: end-to-end / that", spread([r["ratio_unpasted"] for r in rows]), "(reported)", None)
    report(f"{name}: segstudio predict, img/s", spread([r["e2e"] for r in rows], "{:.1f}"), "(reported)", None)
    report(f"{name}: regions per image", f"{statistics.mean(r['regions_per_image'] for r in rows):.1f}",
           "(reported)", None)
    report(f"{name}: end-to-end / raw, median of {len(rows)}", spread(ratios), f">= {target}", med >= target)
    results[name] = {"runs": rows, "median_ratio": med, "target": target}


def check_cuda_matches_cpu(tmp: Path, results: dict) -> None:
    """The GPU path (AMP, asynchronous copies back) gives the CPU's answer, pixel for pixel but
    for half-precision rounding."""
    import numpy as np

    from segstudio.core.imageio import decode_image
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
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
    ap.add_argument("--images-unet", type=int, default=480)
    ap.add_argument("--runs", type=int, default=3)
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
        extra = ["--score", "0.05"] if "random" in note else []
        case(results, "Mask R-CNN v2 800x1067 (AMP)", "maskrcnn", ck, mf, 4, 30, tmp, 0.95, runs=a.runs, extra=extra)
        if isbi_dir() is not None:
            uck, unote = trained_unet(CACHE, device="cuda")
            uf = make_isbi_folder(tmp / "unet", a.images_unet, 1024)
        else:  # no data: an untrained model (writes nothing; said beside the figures)
            uck, unote = unet_checkpoint(tmp / "u.pt"), "UNTRAINED UNet (no ISBI data): no regions"
            uf = make_folder(tmp / "unet", a.images_unet, 1024, 1024)
        results["unet_weights"] = unote
        print(f"UNet: {unote}")
        case(results, "UNet 1024x1024 (AMP)", "unet", uck, uf, 8, 40, tmp, 0.90, runs=a.runs)
        case(results, "UNet 1024x1024 (fp32)", "unet", uck, uf, 8, 30, tmp, 0.90, amp=False, runs=a.runs)
    results["seconds"] = time.time() - t0
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
