"""Inference on this machine's CPU: `segstudio predict` end-to-end images/s as a fraction of
the raw model's (target >= 0.9), and click-selection latency with cached predictions
(target <= 20 ms).

    QT_QPA_PLATFORM=offscreen python benchmarks/cpu_infer.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import report, summary  # noqa: E402
from _infer import e2e_throughput, make_folder, maskrcnn_checkpoint, raw_throughput, unet_checkpoint  # noqa: E402


def ratio_case(name, arch, ck, folder, batch, iters, tmp, target):
    raw = raw_throughput(arch, ck, folder, "cpu", batch, iters)
    e2e = e2e_throughput(arch, ck, folder, "cpu", batch, tmp / f"{arch}.db")
    r = e2e["images_per_second"] / raw["images_per_second"]
    report(f"{name}: raw model", f"{raw['images_per_second']:.3f} img/s", "(reported)", None)
    report(f"{name}: segstudio predict end-to-end", f"{e2e['images_per_second']:.3f} img/s", "(reported)", None)
    report(f"{name}: end-to-end / raw", f"{r:.3f}", f">= {target}", r >= target)


def click_latency(tmp: Path) -> None:
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    from segstudio.gui.tools import Pointer
    from segstudio.inference.segmenter import Detection, Prediction
    from PySide6.QtCore import QSettings
    app = QApplication.instance() or QApplication([])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "qs"))
    d = tmp / "click"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((2160, 3840, 3)) * 255).astype(np.uint8)).save(d / "a.jpg")
    p = Project.open(d)
    win = MainWindow(p, app_settings())
    win.resize(1400, 900)
    win.show()
    win.open_first()
    while win.editor.doc is None:
        app.processEvents()
    # a cached Mask R-CNN answer with 100 proposals, as the model dock keeps it
    cands = []
    for k in range(100):
        s = int(rng.integers(40, 300))
        yy, xx = np.mgrid[0:s, 0:s]
        m = (xx - s / 2) ** 2 + (yy - s / 2) ** 2 <= (s / 2) ** 2
        cands.append(Detection(1, m, int(rng.integers(0, 3500)), int(rng.integers(0, 1800)), float(rng.random())))
    doc = win.editor.doc
    win.model_dock.info = {"arch": "maskrcnn", "name": "maskrcnn", "classes": ["thing"], "device": "cpu"}
    win.model_dock.cache[doc.image_id] = Prediction(3840, 2160, 0.1, _detections=[], _candidates=cands)
    win.set_tool("prompt")
    tool, vp = win.tools["prompt"], win.canvas.viewport()
    times = []
    for c in cands[:60]:
        cx, cy = c.x + c.mask.shape[1] / 2, c.y + c.mask.shape[0] / 2
        t = time.perf_counter()
        tool.press(Pointer(cx, cy))
        tool.release(Pointer(cx, cy))  # pick, map the class, add the region (one undo step), repaint
        vp.repaint()
        times.append(time.perf_counter() - t)
    assert len(doc.regions) > 0
    med, worst = statistics.median(times) * 1000, max(times) * 1000
    report("click -> model instance accepted and painted (median)", f"{med:.2f} ms", "<= 20 ms", med <= 20)
    report("click latency, worst of 60", f"{worst:.2f} ms", "(reported)", None)
    win.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    a = ap.parse_args()
    import torch
    print(f"segstudio CPU inference benchmark; torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        n_unet, n_mrc = (2, 2) if a.quick else (6, 4)
        uf = make_folder(tmp / "unet_imgs", n_unet, 1024, 1024)
        ratio_case("UNet 1024x1024 (default config)", "unet", unet_checkpoint(tmp / "u.pt"), uf, 1,
                   n_unet, tmp, 0.9)
        mf = make_folder(tmp / "mrc_imgs", n_mrc, 800, 1067)
        ck, note = maskrcnn_checkpoint(tmp / "m.pt")
        print(f"Mask R-CNN weights: {note}")
        ratio_case("Mask R-CNN v2 800x1067", "maskrcnn", ck, mf, 1, n_mrc, tmp, 0.9)
        click_latency(tmp)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
