"""Click models side by side: the image embedding and a point prompt's answer (median of 10
decodes, with the first full-size candidate made, as the window shows it) on a 1024x768 image,
for every click model that is installed: the default Segment Anything model (sam_hq_vit_tiny) and
SAM 2.1 Hiera-Tiny (transformers).

    python benchmarks/click_models.py [--device cpu] [--threads 2] [--embeds 3] [--decodes 10]

Wall time and process CPU time (all threads) are both shown. On a shared, busy machine use
--threads 1: with several threads the wall time mostly measures the other processes, and the CPU
time counts OpenMP's spin-waits.

RANDOM WEIGHTS: both models are built from their packages' own configurations with random
weights. The figures are compute cost only (the encoder and decoder do the same work whatever the
weights hold), never quality.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

W, H = 1024, 768


def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((H, W, 3)) * 60).astype(np.uint8)
    img[200:500, 300:700] += 150
    return img


def models(device: str) -> list[tuple[str, object]]:
    import torch
    out: list[tuple[str, object]] = []
    torch.manual_seed(0)
    try:
        from segstudio.inference.sam.model import load_sam
        out.append(("sam_hq_vit_tiny (segment-anything-hq)", load_sam("sam_hq_vit_tiny", None, device,
                                                                      random_weights=True)))
    except ImportError as e:
        print(f"sam_hq_vit_tiny: not installed ({e})")
    try:
        from segstudio.inference.sam2.model import load_sam2
        out.append(("sam2.1_hiera_tiny (transformers)", load_sam2(device=device, random_weights=True)))
    except ImportError as e:
        print(f"sam2.1_hiera_tiny: not installed ({e})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeds", type=int, default=3, help="embeddings timed per model (the median is shown)")
    ap.add_argument("--decodes", type=int, default=10)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    img = image()
    print(f"{W}x{H} image, device {a.device}, {a.threads} threads; RANDOM WEIGHTS: compute cost only, not quality")
    print(f"{'model':38s} {'params':>7s} {'embed s wall / cpu':>19s} {'decode ms wall / cpu':>21s} "
          f"{'decode ms max wall':>19s}   (medians)")
    for title, m in models(a.device):
        params = sum(p.numel() for p in m.net.parameters()) / 1e6  # type: ignore[attr-defined]
        embeds, embeds_cpu = [], []
        for _ in range(a.embeds):
            t0, c0 = time.perf_counter(), time.process_time()
            emb = m.embedding_for(img, None)  # type: ignore[attr-defined]
            embeds.append(time.perf_counter() - t0)
            embeds_cpu.append(time.process_time() - c0)
        m.decode(emb, [(500, 350, True)])  # type: ignore[attr-defined]  # warm-up
        dec, dec_cpu = [], []
        for k in range(a.decodes):
            t0, c0 = time.perf_counter(), time.process_time()
            c = m.decode(emb, [(480 + k, 340 + k, True)])  # type: ignore[attr-defined]
            c.crop(0)
            dec.append((time.perf_counter() - t0) * 1000)
            dec_cpu.append((time.process_time() - c0) * 1000)
        med = statistics.median
        print(f"{title:38s} {params:6.1f}M {med(embeds):9.2f} / {med(embeds_cpu):5.2f} "
              f"{med(dec):10.1f} / {med(dec_cpu):6.1f} {max(dec):19.1f}")


if __name__ == "__main__":
    main()
