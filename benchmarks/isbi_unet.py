"""ISBI 2012 membranes: import the labels, train a UNet with a fixed time budget, report pixel
accuracy and foreground (membrane) IoU on slices it never saw, and the training curve as PNG.

    python benchmarks/isbi_unet.py --minutes 10 --device cpu          (target pixel accuracy >= 0.93)
    python benchmarks/isbi_unet.py --minutes 1 --device cuda          (target >= 0.94)

The U-Net paper reports 0.939 pixel accuracy (1 - pixel error 0.0611) on the challenge's test set.
Labels in the data: 255 cell interior, 0 membrane; imported as class "cell" on a membrane
background, as the U-Net paper sets it up (its border weight map separates touching cells).
5 of the 20 slices are held out (seeded); training uses the other 15 the way `segstudio train
--minutes` does (the same config from the same settings): a fit on 12 validated on 3 for the first
80 % of the time, then a final fit on all 15 for the rest (`--final-fit`, `--val-fraction`).

Besides the app's own prediction, the held-out slices are also scored with inference-time
variants of the same checkpoint: overlap-tile (the image mirrored by a margin so border pixels
see context, as the paper's overlap-tile strategy gives them), flips averaged, and the
cell/membrane decision threshold chosen on the validation slices instead of argmax.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, report, summary  # noqa: E402
from plot import line_chart  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "isbi2012-membrane"


CONTEXT = 32  # overlap-tile margin, pixels mirrored on each side


def inference_variants(project, seg, val_ids: list[int], test_ids: list[int]) -> dict:
    """Held-out pixel accuracy of the checkpoint under inference-time variants: plain argmax,
    overlap-tile (mirrored margin), flips averaged, both; each also with the probability
    threshold for "cell" that scores best on the validation slices."""
    import torch
    import torch.nn.functional as F

    from segstudio.inference.training.evaluate import project_classes
    from segstudio.inference.training.unet import load_items
    real, _ = project_classes(project)
    value_of = {c.id: i for i, c in enumerate(real, start=1)}
    dev = seg.device.device

    def probs(x, context: bool, flips: bool) -> np.ndarray:
        m = CONTEXT if context else 0
        xx = F.pad(x, (m, m, m, m), mode="reflect") if m else x
        seg.tta = flips
        try:
            with torch.inference_mode():
                pr = seg.forward(xx)
        finally:
            seg.tta = False
        h, w = x.shape[-2:]
        return pr[0, 1, m:m + h, m:m + w].float().cpu().numpy()  # P(cell)

    def maps(ids):
        out = []
        for it in load_items(project, ids, value_of, seg.in_channels):
            x = torch.from_numpy(it.image.transpose(2, 0, 1).copy())[None].to(dev)
            out.append(({(c, f): probs(x, c, f) for c in (False, True) for f in (False, True)}, it.label))
        return out
    val, test = maps(val_ids), maps(test_ids)

    def accuracy(items, key, t: float) -> float:
        right = sum(int(((pm[key] > t) == (lab == 1)).sum()) for pm, lab in items)
        return right / sum(lab.size for _, lab in items)
    result = {}
    for (c, f) in [(False, False), (True, False), (False, True), (True, True)]:
        name = {(False, False): "argmax", (True, False): f"overlap-tile ({CONTEXT} px mirrored)",
                (False, True): "flips", (True, True): "overlap-tile + flips"}[(c, f)]
        result[name] = {"pixel_accuracy": accuracy(test, (c, f), 0.5), "threshold": 0.5}
        if val_ids:
            grid = np.round(np.arange(0.2, 0.81, 0.02), 2)
            best = max(grid, key=lambda t: accuracy(val, (c, f), float(t)))
            result[name + ", threshold from validation"] = {"pixel_accuracy": accuracy(test, (c, f), float(best)),
                                                            "threshold": float(best)}
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test", type=int, default=5)
    ap.add_argument("--width", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--val-fraction", type=float, default=0.2, help="as segstudio train (default 0.2)")
    ap.add_argument("--final-fit", type=float, default=0.2, help="as segstudio train (default 0.2)")
    ap.add_argument("--trainer", help="ablation: UNetTrainConfig fields as JSON, e.g. '{\"dice_weight\": 0}' "
                    "(\"unet\" merges into the network settings)")
    ap.add_argument("--tag", help="output file names (default isbi_cpu_10min etc.)")
    a = ap.parse_args()
    if not (a.data / "image").is_dir():
        print(f"ISBI data not found at {a.data}")
        return 2
    from PIL import Image

    from segstudio.core.project import Project
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
    from segstudio.inference.training.evaluate import evaluate_project
    from segstudio.inference import registry
    from segstudio.inference.training.recipes import train_config
    from segstudio.inference.training.unet import train_unet
    import torch
    a.out_dir.mkdir(parents=True, exist_ok=True)
    gpu = a.device.startswith("cuda")
    tag = a.tag or f"isbi_{'gpu' if gpu else 'cpu'}_{a.minutes:g}min"
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        folder, labels = tmp / "images", tmp / "labels"
        folder.mkdir()
        labels.mkdir()
        for f in sorted((a.data / "image").glob("*.png")):
            shutil.copy(f, folder / f.name)
            lab = np.array(Image.open(a.data / "label" / f.name))
            Image.fromarray((lab >= 128).astype(np.uint8)).save(labels / f.name)  # cell -> 1
        (labels / "class_names.txt").write_text("_background_\ncell\n")
        r = subprocess.run([sys.executable, "-m", "segstudio", "import", str(folder), "--format", "labelmap",
                            str(labels)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        print(r.stdout.strip())
        p = Project.open(folder)
        ids = p.store.image_ids()
        rng = np.random.default_rng(a.seed)
        test_ids = sorted(rng.permutation(ids)[:a.test].tolist())
        p.store.set_status(test_ids, "skipped")  # training learns from 'done' images only
        # the settings `segstudio train --minutes M` gives (cli/train.py), through the same recipe
        cfg = train_config(registry.family("unet"), {"minutes": a.minutes, "device": a.device, "seed": a.seed,
                                                     "val_fraction": a.val_fraction, "final_fit": a.final_fit})
        cfg.batch = a.batch or (8 if gpu else cfg.batch)
        cfg.unet = {**cfg.unet, "width": a.width or (32 if gpu else cfg.unet["width"])}
        if a.trainer:
            from dataclasses import replace
            over = json.loads(a.trainer)
            cfg = replace(cfg, **{k: v for k, v in over.items() if k != "unet"},
                          unet={**cfg.unet, **over.get("unet", {})})
            print(f"ablation: {over}")
        curve = {"t": [], "loss": [], "val_t": [], "val_miou": []}
        stages: list[str] = []

        def progress(p):  # a TrainProgress
            if p.note and (not stages or stages[-1] != p.note):
                stages.append(p.note)
                print(f"{p.stage}: {p.note} ({p.elapsed:.0f}s)", flush=True)
            if p.phase == "train":
                curve["t"].append(p.elapsed)
                curve["loss"].append(p.loss)
            else:
                miou = p.val["val_mean_iou"]
                if miou is not None:  # None: no validation slices (--val-fraction 0)
                    curve["val_t"].append(p.elapsed)
                    curve["val_miou"].append(miou)
                print(f"  epoch {p.epoch} step {p.step} loss {p.loss:.4f} "
                      f"val mIoU {'-' if miou is None else f'{miou:.4f}'} "
                      f"({p.elapsed:.0f}s)", flush=True)
        t0 = time.perf_counter()
        res = train_unet(p, tmp / "isbi.pt", cfg, progress=progress)
        train_s = time.perf_counter() - t0
        seg = load_segmenter(ModelSpec("unet", res.best_path, a.device))
        m = evaluate_project(p, seg, image_ids=test_ids).metrics
        seg.tta = True  # the same checkpoint, predictions averaged over flips
        m_tta = evaluate_project(p, seg, image_ids=test_ids).metrics
        seg.tta = False
        by_path = {p.store.image(i).path: i for i in ids}
        variants = inference_variants(p, seg, [by_path[v] for v in res.validated_on], test_ids)
        # smooth the per-step loss for the chart
        k = max(1, len(curve["loss"]) // 100)
        sm = np.convolve(curve["loss"], np.ones(k) / k, mode="valid").tolist() if curve["loss"] else []
        line_chart(a.out_dir / f"{tag}_curve.png",
                   {"train loss": (curve["t"][k - 1:], sm), "validation mean IoU": (curve["val_t"], curve["val_miou"])},
                   f"ISBI 2012 UNet, {a.minutes:g} min on {res.device[:40]}", "seconds")
        out = {"device": res.device, "minutes": a.minutes, "train_seconds": train_s, "epochs": len(res.history),
               "steps": res.history[-1]["step"] if res.history else 0, "test_images": len(test_ids),
               "stopped": res.stopped, "stages": stages, "train_images": len(res.train_images),
               "validated_on": len(res.validated_on),
               "final_fit": ({**res.final_fit, "images": len(res.final_fit["images"])} if res.final_fit else None),
               "validation_before_final_fit": res.best_metrics.get("mean_iou"),
               "pixel_accuracy": m["pixel_accuracy"], "membrane_iou": m["per_class_iou"].get("background"),
               "cell_iou": m["per_class_iou"].get("cell"), "mean_iou": m["mean_iou"],
               "tta_pixel_accuracy": m_tta["pixel_accuracy"],
               "tta_membrane_iou": m_tta["per_class_iou"].get("background"),
               "inference_variants": variants, "trainer": json.loads(a.trainer or "{}"),
               "unet": cfg.unet, "torch": torch.__version__}
        (a.out_dir / f"{tag}.json").write_text(json.dumps(out, indent=2))
    target = 0.94 if gpu else 0.93
    report(f"ISBI held-out pixel accuracy ({a.minutes:g} min, {a.device})", f"{out['pixel_accuracy']:.4f}",
           f">= {target}", out["pixel_accuracy"] >= target)
    report("  same, predictions averaged over flips (--tta)", f"{out['tta_pixel_accuracy']:.4f}", f">= {target}",
           out["tta_pixel_accuracy"] >= target)
    report("ISBI held-out membrane (foreground) IoU", f"{out['membrane_iou']:.4f}", "(reported)", None)
    report("  same, with --tta", f"{out['tta_membrane_iou']:.4f}", "(reported)", None)
    report("ISBI held-out cell-interior IoU", f"{out['cell_iou']:.4f}", "(reported)", None)
    for name, v in variants.items():
        report(f"  inference variant: {name}", f"{v['pixel_accuracy']:.4f}", f">= {target}",
               v["pixel_accuracy"] >= target)
    report("epochs / steps in the budget", f"{out['epochs']} / {out['steps']}", "(reported)", None)
    ff = out["final_fit"]
    if ff:
        report("  of which the final fit on every visible slice", f"{ff['epochs']} / {ff['steps']} on {ff['images']}",
               "(reported)", None)
    report("stopped by", out["stopped"], "(reported)", None)
    print(f"curve: {a.out_dir / (tag + '_curve.png')}")
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
