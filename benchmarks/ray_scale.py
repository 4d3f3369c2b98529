"""Ray against local predict: images/s of `segstudio predict` locally, and on a local Ray runtime
with 1 and 2 CPU workers, on the same images and model; the overhead ratio Ray-1-worker / local
(target >= 0.85 on CPU); and the driver's commit rate (target >= 2,000 regions/s), measured on
its own with the regions a real run produced.

    python benchmarks/ray_scale.py [--images 240] [--size 512] [--json OUT]

The model is a UNet trained for a few seconds on the generated images (their blobs), so every
image gives real regions; the regions per image are printed beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import report, summary  # noqa: E402


def make_images(folder: Path, n: int, size: int) -> None:
    from PIL import Image
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((size, size, 3)) * 50).astype(np.uint8)
        for _ in range(12):  # bright discs: the objects
            cx, cy, r = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(5, 14))]
            yy, xx = np.ogrid[:size, :size]
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.integers(170, 255, 3)
        Image.fromarray(img).save(folder / f"{i:04d}.png")


def train_model(folder: Path, out: Path) -> Path:
    """A UNet that finds the discs: labels by threshold on a few images, a short training run."""
    import torch

    from segstudio.core.project import Project
    from segstudio.core.records import DONE
    from segstudio.core.region import Region
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    torch.manual_seed(0)
    p = Project.open(folder)
    cls = p.store.ensure_class("disc")
    for rec in p.store.images()[:6]:
        img = p.load_image(rec)
        m = img.max(axis=2) > 150
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, m, 0, 0)])
        p.store.set_status(rec.id, DONE)
    cfg = UNetTrainConfig(epochs=20, steps_per_epoch=8, batch=4, crop=128, val_fraction=0.0, device="cpu",
                          pretrained=False, download=False, unet={"depth": 3, "width": 8})
    res = train_unet(p, out, cfg, val_ids=[])
    p.close()
    return Path(res.best_path)


def fresh_project(src: Path, dst: Path):
    import shutil

    from segstudio.core.project import Project
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".segstudio"))
    return Project.open(dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import ray

    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, predict_project
    from segstudio.inference.cluster.predict import predict_on_ray
    figures: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        make_images(tmp / "src", a.images, a.size)
        ck = train_model(tmp / "src", tmp / "unet.pt")
        spec = ModelSpec("unet", str(ck), "cpu")
        print(f"{a.images} images of {a.size}x{a.size}; {os.cpu_count()} CPUs; ray {ray.__version__}")

        # local: the same thread budget as one Ray worker (1 torch thread), then the whole machine
        import torch
        local = {}
        for threads in (1, os.cpu_count() or 1):
            torch.set_num_threads(threads)
            p = fresh_project(tmp / "src", tmp / f"local{threads}")
            rep = predict_project(p, load_segmenter(spec, p), ("new",), batch=4)
            local[threads] = rep
            report(f"local predict, {threads} torch thread(s)", f"{rep.images_per_second:.2f} img/s",
                   f"({rep.regions / max(1, rep.images):.1f} regions/image)", None)
            p.close()
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
        try:
            ray_reps = {}
            for workers in (1, 2):
                p = fresh_project(tmp / "src", tmp / f"ray{workers}")
                t = time.perf_counter()
                rep = predict_on_ray(p, spec, ("new",), None, workers=workers, batch=4)
                wall = time.perf_counter() - t
                start = rep.timing.get("startup", 0.0)
                # like local predict's figure (the model is loaded before it starts): from the first
                # answer on, the actors being up and their models loaded (the first batch is not counted)
                rep.seconds, rep.images = rep.seconds - start, rep.images - 4
                ray_reps[workers] = rep
                report(f"Ray, {workers} CPU worker(s), after start-up", f"{rep.images_per_second:.2f} img/s",
                       f"({rep.regions / max(1, rep.images + 4):.1f} regions/image; start-up {start:.1f} s, "
                       f"{wall:.1f} s in all)", None)
                p.close()
        finally:
            ray.shutdown()
        r1 = ray_reps[1].images_per_second / local[1].images_per_second
        report("Ray 1 worker / local (1 thread each)", f"{r1:.3f}", ">= 0.85", r1 >= 0.85)
        r2 = ray_reps[2].images_per_second / ray_reps[1].images_per_second
        report("Ray 2 workers / 1 worker", f"{r2:.2f}x", "(reported)", None)

        # the driver's commit rate, alone: the regions of the 2-worker run, committed again
        from segstudio.core.project import Project
        from segstudio.inference.runtime.classmap import ClassMapper
        from segstudio.inference.runtime.engine import prediction_entry
        src = Project.open(tmp / "ray2")
        seg = load_segmenter(spec, src)
        p = fresh_project(tmp / "src", tmp / "commit")
        mapper = ClassMapper(p, seg.classes, True)
        entries_in = []
        from segstudio.inference.cluster.predict import _Prediction
        from segstudio.core import rle
        for rec in src.store.images():
            enc = [(1, r.x, r.y, r.mask.shape[1], r.mask.shape[0], rle.encode(r.mask), int(r.mask.sum()),
                    r.score or 0.0) for r in src.store.regions(rec.id)]
            entries_in.append((p.store.image_by_path(rec.path), enc, _Prediction(rec.width or a.size,
                                                                                  rec.height or a.size, 0.0)))
        reps = 20  # the same entries, committed 20 times (each time replacing the last)
        n = 0
        t = time.perf_counter()
        for _ in range(reps):
            batch = []
            for rec, enc, pr in entries_in:
                batch.append(prediction_entry(p, rec, pr, enc, mapper, seg.name))
                n += len(enc)
                if len(batch) >= 64:
                    p.store.replace_source_regions_many(batch)
                    batch = []
            if batch:
                p.store.replace_source_regions_many(batch)
        rate = n / (time.perf_counter() - t)
        report(f"driver commit rate ({n} regions, batches of 64 images)", f"{rate:,.0f} regions/s", ">= 2,000",
               rate >= 2000)
        figures.update(local={k: v.images_per_second for k, v in local.items()},
                       ray={k: v.images_per_second for k, v in ray_reps.items()}, ratio_1=r1, scale_2=r2,
                       commit_rate=rate, regions_per_image=ray_reps[2].regions / max(1, ray_reps[2].images),
                       images=a.images, size=a.size)
    code = summary()
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
