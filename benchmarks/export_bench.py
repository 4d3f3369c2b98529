"""What durable exports cost: folder and file exports with every file and folder flushed
(fsync) before the final rename, against the same export with flushing switched off.

    python benchmarks/export_bench.py [--images 300]

No target: the figures are reported so the price of "an export is on disk when it says done"
stays known. Each export covers N generated 640x480 JPEGs with 8 regions each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    from PIL import Image

    from segstudio.core.project import Project
    from segstudio.core.region import Region
    from segstudio.io import export_target
    from segstudio.io.registry import run_export
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "imgs"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.images):
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg",
                                                                                      quality=90)
        p = Project.open(folder)
        cls = p.store.add_class("thing")
        for rec in p.store.images():
            regs = [Region(0, cls.id, np.ones((40, 50), bool), 10 + 60 * k, 20) for k in range(8)]
            for r, i in zip(regs, p.store.reserve_region_ids(len(regs))):
                r.id = i
            p.store.save_regions(rec.id, regs, status="done")
        real = export_target._fsync_path
        n = args.images
        for fmt in ("yolo", "labelmap", "coco"):
            times = {}
            for flush in (True, False):
                export_target._fsync_path = real if flush else (lambda *a, **k: None)
                out = tmp / f"{fmt}-{flush}" / ("c.json" if fmt == "coco" else "")
                times[flush] = median_time(lambda: run_export(fmt, p, out), repeat=3)
            export_target._fsync_path = real
            report(f"{fmt} export, {n} images, {8 * n} regions: flushed / not",
                   f"{times[True]:.2f} / {times[False]:.2f} s", "(reported)", None)
        p.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
