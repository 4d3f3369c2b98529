"""The simulated annotator: how much work the learning loop saves, image after image.

Replays annotating a folder in file-name order with the ground truth as the oracle, through the
code the window and `segstudio train --watch` use (the project store, `LiveLearner.update` to
train, `LiveLearner.repredict` / `segstudio predict`'s pipeline to pre-label):

  for image k: the current live model pre-labels it; effort = what must change to reach the
  ground truth; the image gets the ground truth and is marked done; the model updates on images
  1..k for --budget seconds (warm start from the previous version).

Effort per image: fraction of (non-ignore) pixels whose label must change, and error blobs of at
least 16 px (about one stroke each); with --instances also instances to add / delete / redraw
(IoU < 0.5). Baselines: no model (everything painted by hand) and "train once after N images"
(one update of N x budget seconds after N hand-made images, then predict the rest). With no
model the image starts filled with its most common class.

Effort in actions (--actions K, default 8): the simulated annotator fixes the pre-label object by
object with the window's Clicks tool under the standard click protocol (benchmarks/_actions.py):
one deletion per false object, a run of clicks to IoU 0.9 (at most 20) per wrong or missing
object, a brush stroke per error blob that clicks leave. K objects per image are clicked and
scaled to all. The live loop also reports the clicks to 85 / 90 % of the model click (the
pre-label's object under the first click, then the Clicks tool) beside GrabCut's, on the same
objects: the click model that learns the user's objects.

    python benchmarks/annotation_effort.py                      # ISBI 2012 from ../shared/data
    python benchmarks/annotation_effort.py --dataset coco128    # instances (Mask R-CNN), 20 photos
    python benchmarks/annotation_effort.py --folder IMAGES --labels LABEL_MAPS --classes FILE \\
        [--budget SECONDS] [--json OUT.json]

Targets (ISBI, 20 slices, CPU, 30 s): the slice after 5 done needs <= 10 % of its pixels changed;
the last 10 slices <= 7 % on average.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _actions  # noqa: E402
import _clicks  # noqa: E402
from _common import ROOT, report, summary  # noqa: E402
from plot import line_chart  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def prepare_isbi(tmp: Path, paint: str = "cell") -> tuple[Path, Path, Path, str]:
    """ISBI labels are 255 = cell interior, 0 = membrane. By default imported as class "cell" on a
    membrane background, as the U-Net paper and isbi_unet.py set the task up: the objects to click
    are the cells. `paint="membrane"`: the membrane is the class (the set-up before issue 25)."""
    from PIL import Image
    src = DATA / "isbi2012-membrane"
    if not (src / "image").is_dir():
        raise SystemExit(f"ISBI data not found at {src}")
    images, labels = tmp / "isbi-images", tmp / "isbi-labels"
    images.mkdir()
    labels.mkdir()
    for f in sorted((src / "image").glob("*.png")):
        shutil.copy(f, images / f.name)
        lab = np.array(Image.open(src / "label" / f.name))
        cls = lab >= 128 if paint == "cell" else lab < 128
        Image.fromarray(cls.astype(np.uint8)).save(labels / f.name)
    classes = tmp / "isbi-classes.txt"
    classes.write_text(f"_background_\n{paint}\n")
    return images, labels, classes, "labelmap"


def prepare_coco128(tmp: Path, limit: int) -> tuple[Path, Path, Path, str]:
    src = DATA / "coco128-seg"
    if not (src / "images").is_dir():
        raise SystemExit(f"coco128-seg not found at {src}")
    images, labels = tmp / "coco-images", tmp / "coco-labels"
    images.mkdir()
    labels.mkdir()
    for f in sorted((src / "images").iterdir())[:limit]:
        shutil.copy(f, images / f.name)
        lab = src / "labels" / (f.stem + ".txt")
        if lab.exists():
            shutil.copy(lab, labels / lab.name)
    return images, labels, src / "classes.txt", "yolo"


def majority_fill(truth_map: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """No model: the annotator first fills the image with its most common class (one action),
    then paints the rest by hand. With ISBI's cells on membranes that is all cell, and the
    membranes are painted, whichever class the project names."""
    counts = np.bincount(truth_map[~ignore].ravel()) if (~ignore).any() else np.zeros(1, np.int64)
    return np.full_like(truth_map, int(counts.argmax()))


class Annotator:
    """A project being annotated (a copy of the images) beside the ground-truth project."""

    def __init__(self, folder: Path, truth, instances: bool):
        from segstudio.core.project import Project
        self.project = Project.open(folder)
        self.truth = truth
        self.instances = instances
        store = self.project.store
        for c in truth.store.classes():  # the same classes, in the same order, before any image
            store.add_class(c.name, c.color, ignore=c.ignore)
        by_name = {c.name: c.id for c in store.classes()}
        self.class_of_truth = {c.id: by_name[c.name] for c in truth.store.classes()}
        real = [c for c in store.classes() if not c.ignore]
        self.value_of = {c.id: i for i, c in enumerate(real, start=1)}
        self.value_of.update({c.id: 255 for c in store.classes() if c.ignore})
        self.ids = {r.path: r.id for r in store.images()}
        self.truth_ids = {r.path: r.id for r in truth.store.images()}

    def names(self) -> list[str]:
        return sorted(self.ids)

    def maps(self, path: str):
        """(predicted semantic map, truth map, ignore mask, predicted regions, truth regions)."""
        from segstudio.core.labelmap import paint_label_map
        rec = self.truth.store.image(self.truth_ids[path])
        w, h = rec.width, rec.height
        if w is None or h is None:
            img = self.truth.load_image(rec)
            h, w = img.shape[:2]
        truth_regions = [replace(r, class_id=self.class_of_truth[r.class_id])
                         for r in self.truth.store.regions(rec.id)]
        pred_regions = self.project.store.regions(self.ids[path])
        truth_map = paint_label_map(truth_regions, w, h, self.value_of)
        pred_map = paint_label_map(pred_regions, w, h, self.value_of)
        ignore = truth_map == 255
        return pred_map, truth_map, ignore, pred_regions, truth_regions, (w, h)

    def effort(self, path: str, predicted: bool = True) -> dict:
        """What must change; `predicted` False: no model had pre-labelled it (the no-model start)."""
        from segstudio.core.effort import instance_effort, semantic_effort
        pred_map, truth_map, ignore, pred_regions, truth_regions, (w, h) = self.maps(path)
        none = semantic_effort(majority_fill(truth_map, ignore), truth_map, ignore)
        e = semantic_effort(pred_map, truth_map, ignore) if predicted else none
        out = {"name": path, "changed_fraction": e.changed_fraction, "error_blobs": e.error_blobs,
               "no_model_changed_fraction": none.changed_fraction, "no_model_error_blobs": none.error_blobs,
               "predicted_regions": len(pred_regions)}
        if self.instances:
            from segstudio.core.labelmap import paint_instance_map
            skip = {c.id for c in self.project.store.classes() if c.ignore}
            pm, pr = paint_instance_map(pred_regions, w, h, skip)
            tm, tr = paint_instance_map(truth_regions, w, h, skip)
            ie = instance_effort(pm, {i: r.class_id for i, r in enumerate(pr, 1)},
                                 tm, {i: r.class_id for i, r in enumerate(tr, 1)})
            out.update({"instances": ie.ground_truth, "add": ie.add, "delete": ie.delete, "redraw": ie.redraw,
                        "kept": ie.kept, "no_model_add": ie.ground_truth})
        return out

    def objects(self, path: str):
        """(image, truth objects, predicted objects, the model click's candidates, ignore mask)."""
        from segstudio.core import maskops
        from segstudio.inference.runtime.segmenter import Detection
        pred_map, truth_map, ignore, pred_regions, truth_regions, (w, h) = self.maps(path)
        image = self.truth.load_image(self.truth.store.image(self.truth_ids[path]))
        if self.instances:
            skip = {c.id for c in self.project.store.classes() if c.ignore}
            truth = [maskops.uncrop(r.mask, r.x, r.y, w, h) for r in truth_regions if r.class_id not in skip]
            dets = [Detection(1, r.mask, r.x, r.y, r.score if r.score is not None else 1.0)
                    for r in pred_regions if r.class_id not in skip]
        else:
            values = sorted(set(self.value_of.values()) - {255})
            truth = _actions.truth_objects(truth_map, values)
            dets = _actions.predicted_detections(np.where(pred_map == 255, 0, pred_map))
        if self.instances:
            pred = [_actions.detection_mask(d, (h, w)) for d in dets]
        else:  # matched as the truth's objects are made; the model click keeps the window's candidates
            pred = _actions.truth_objects(np.where(pred_map == 255, 0, pred_map), values)
        return image, truth, pred, dets, (ignore if ignore.any() else None)

    def actions(self, path: str, a, caches: dict, noc: bool) -> dict:
        """Actions to fix this image's pre-label with the click tool; with `noc` also the clicks to
        85 / 90 % of the model click (the pre-label's object under the first click, then the click
        tool), GrabCut from clicks and the click tool, all from nothing, on the same objects."""
        image, truth, pred, dets, ignore = self.objects(path)
        tool = a.tools[a.click_tool]
        act = _actions.image_actions(image, path, truth, pred, tool, a.actions, ignore,
                                     cache=caches.setdefault(a.click_tool, {}))
        out = {"objects": act.objects, "sampled": act.sampled, "actions": act.actions,
               "actions_per_object": act.per_object_mean, "deletes": act.deletes, "clicks": act.clicks,
               "strokes": act.strokes, "good": act.good}
        if noc:
            tools = dict(a.tools)
            tools["model click"] = _clicks.model_tool(lambda img: dets, tool)
            runs = _actions.from_nothing(tools, image, path, truth, a.actions, ignore, caches)
            out["noc"] = {t: {"noc85": float(np.mean([_clicks.noc(r.ious, 0.85, 20) for r in rs])),
                              "noc90": float(np.mean([_clicks.noc(r.ious, 0.90, 20) for r in rs])),
                              "objects": len(rs)} for t, rs in runs.items() if rs}
        return out

    def no_model_actions(self, path: str, a, caches: dict) -> dict:
        image, truth, _, _, ignore = self.objects(path)
        act = _actions.image_actions(image, path, truth, [], a.tools[a.click_tool], a.actions, ignore,
                                     cache=caches.setdefault(a.click_tool, {}))
        return {"no_model_actions": act.actions, "no_model_actions_per_object": act.per_object_mean}

    def correct(self, path: str) -> None:
        """The person's correction: the image's regions become the ground truth, and it is done."""
        from segstudio.core.records import DONE
        store = self.project.store
        iid = self.ids[path]
        truth = self.truth.store.regions(self.truth_ids[path])
        new_ids = store.reserve_region_ids(len(truth)) if truth else []
        ups = [replace(r, id=n, class_id=self.class_of_truth[r.class_id], source="manual")
               for r, n in zip(truth, new_ids, strict=True)]
        store.save_regions(iid, ups, [r.id for r in store.regions(iid)], status=DONE)


def run(a) -> dict:
    from segstudio.core.project import Project
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    import torch
    torch.set_num_threads(a.threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if a.folder is not None:
            images, labels, classes, fmt = a.folder, a.labels, a.classes, a.format
        elif a.dataset == "coco128":
            images, labels, classes, fmt = prepare_coco128(tmp, a.limit or 20)
        else:
            images, labels, classes, fmt = prepare_isbi(tmp, a.isbi_class)
        files = sorted(f for f in Path(images).iterdir() if f.suffix.lower() in IMAGE_EXT)
        if a.limit:
            files = files[:a.limit]
        folders = {}
        for kind in ("truth", "live", "once"):
            d = tmp / kind
            d.mkdir()
            for f in files:
                shutil.copy(f, d / f.name)  # the benchmark's projects never touch the source folder
            folders[kind] = d
        cmd = [sys.executable, "-m", "segstudio", "import", str(folders["truth"]), "--format", fmt, str(labels)]
        if classes is not None:
            cmd += ["--classes", str(classes)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit(f"import failed: {r.stderr or r.stdout}")
        print(r.stdout.strip().splitlines()[0] if r.stdout.strip() else "imported")
        truth = Project.open(folders["truth"])
        arch = "maskrcnn" if a.instances else "unet"
        trainer = json.loads(a.trainer) if a.trainer else {}
        if arch == "maskrcnn":
            trainer = {"min_size": a.min_size, "max_size": int(a.min_size * 4 / 3), "download": False, **trainer}
        cfg = LiveConfig(arch=arch, seconds=a.budget, device=a.device, trainer=trainer)
        caches: dict = {}  # the click runs from nothing, by tool: the same in every scenario
        if a.actions:
            a.tools = {"grabcut": _clicks.classical_tool("grabcut"),
                       a.click_tool: _clicks.classical_tool(a.click_tool)}

        # --- the live loop
        live = Annotator(folders["live"], truth, a.instances)
        learner = LiveLearner(live.project, cfg)
        rows = []
        for k, path in enumerate(live.names()):
            t0 = time.perf_counter()
            predicted = learner.start_checkpoint() is not None
            if predicted:
                learner.repredict([live.ids[path]])
            predict_s = time.perf_counter() - t0
            row = {"k": k + 1, **live.effort(path, predicted), "predict_seconds": predict_s}
            if a.actions:
                row.update(live.actions(path, a, caches, noc=True))
                row.update(live.no_model_actions(path, a, caches))
            live.correct(path)
            t0 = time.perf_counter()
            v = learner.update()
            row.update({"update_seconds": time.perf_counter() - t0, "version": v.version,
                        "val": v.metrics.get("mean_iou", v.metrics.get("mask_ap"))})
            rows.append(row)
            extra = f" add/del/redraw {row['add']}/{row['delete']}/{row['redraw']} of {row['instances']}" \
                if a.instances else ""
            if a.actions:
                nocs = " ".join(f"{t} {v['noc90']:.1f}" for t, v in row["noc"].items())
                extra += (f"  actions {row['actions']:.0f} ({row['actions_per_object']:.2f}/object; no model "
                          f"{row['no_model_actions']:.0f})  NoC@90 {nocs}")
            print(f"  {k + 1:3d} {path:<28} changed {row['changed_fraction']:7.2%}  blobs {row['error_blobs']:4d}"
                  f"{extra}  (no model {row['no_model_changed_fraction']:6.2%})  update {row['update_seconds']:.0f}s",
                  flush=True)

        # --- baseline: N images by hand, train once (N x budget), predict the rest
        once = Annotator(folders["once"], truth, a.instances)
        names = once.names()
        n = min(a.once_after, len(names) - 1)
        once_rows = []
        if n >= 1:
            for path in names[:n]:
                once_rows.append(once.effort(path, predicted=False))
                if a.actions:
                    once_rows[-1].update(once.no_model_actions(path, a, caches))
                    once_rows[-1]["actions"] = once_rows[-1]["no_model_actions"]
                    once_rows[-1]["actions_per_object"] = once_rows[-1]["no_model_actions_per_object"]
                once.correct(path)
            ol = LiveLearner(once.project, replace(cfg, seconds=a.budget * n))
            ol.update()
            ol.repredict([once.ids[p] for p in names[n:]])
            for p in names[n:]:
                once_rows.append(once.effort(p))
                if a.actions:
                    once_rows[-1].update(once.actions(p, a, caches, noc=False))
    return {"rows": rows, "once": once_rows, "once_after": n, "budget": a.budget, "arch": arch,
            "device": a.device, "instances": a.instances}


ACTION_KEYS = ("objects", "sampled", "actions", "actions_per_object", "deletes", "clicks", "strokes", "good",
               "no_model_actions", "no_model_actions_per_object", "noc")


def actions_table(rows: list[dict], once: list[dict], after: int) -> list[str]:
    tools = list(rows[0].get("noc", {}))
    lines = ["| # | image | objects (clicked) | live: actions (per object) | no model | "
             + (f"once after {after} | " if once else "") + " | ".join(f"NoC@90 {t}" for t in tools) + " |",
             "|---|---|---|---|---|" + ("---|" if once else "") + "---|" * len(tools)]
    for i, r in enumerate(rows):
        line = (f"| {r['k']} | {r['name']} | {r['objects']} ({r['sampled']}) | {r['actions']:.0f} "
                f"({r['actions_per_object']:.2f}) | {r['no_model_actions']:.0f} "
                f"({r['no_model_actions_per_object']:.2f}) |")
        if once:
            line += f" {once[i]['actions']:.0f} ({once[i]['actions_per_object']:.2f}) |"
        line += "".join(f" {r['noc'][t]['noc90']:.2f} |" for t in tools)
        lines.append(line)
    return lines


def noc_after(rows: list[dict], done: int) -> dict[str, dict[str, float]]:
    """Clicks to 85 / 90 % per tool over the images after `done` done ones, object-weighted."""
    later = [r for r in rows if r["k"] > done and "noc" in r]
    out: dict[str, dict[str, float]] = {}
    for t in (later[0]["noc"] if later else {}):
        n = sum(r["noc"][t]["objects"] for r in later)
        out[t] = {m: sum(r["noc"][t][m] * r["noc"][t]["objects"] for r in later) / max(n, 1)
                  for m in ("noc85", "noc90")} | {"objects": n}
    return out


def write_outputs(res: dict, a) -> None:
    rows, once = res["rows"], res["once"]
    out_dir = a.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = a.tag or ("effort_instances" if res["instances"] else "effort")
    ks = [r["k"] for r in rows]
    series = {"live loop: % pixels changed": (ks, [100 * r["changed_fraction"] for r in rows]),
              "no model": (ks, [100 * r["no_model_changed_fraction"] for r in rows])}
    if once:
        series[f"train once after {res['once_after']}"] = (ks, [100 * r["changed_fraction"] for r in once])
    line_chart(out_dir / f"{tag}.png", series, f"annotation effort: % of pixels to change, {res['arch']}, "
               f"{res['budget']:g} s updates ({res['device']})", "images annotated (file-name order)",
               shared_y=True, ylabel="% pixels")
    lines = ["| # | image | live: changed | live: blobs | no model: changed | no model: blobs |"
             + (f" once after {res['once_after']}: changed |" if once else "")
             + (" add / delete / redraw (of GT) |" if res["instances"] else "") + " update s |",
             "|---|---|---|---|---|---|" + ("---|" if once else "") + ("---|" if res["instances"] else "") + "---|"]
    for i, r in enumerate(rows):
        line = (f"| {r['k']} | {r['name']} | {r['changed_fraction']:.2%} | {r['error_blobs']} | "
                f"{r['no_model_changed_fraction']:.2%} | {r['no_model_error_blobs']} |")
        if once:
            line += f" {once[i]['changed_fraction']:.2%} |"
        if res["instances"]:
            line += f" {r['add']} / {r['delete']} / {r['redraw']} (of {r['instances']}) |"
        line += f" {r['update_seconds']:.0f} |"
        lines.append(line)
    cum = sum(r["changed_fraction"] for r in rows)
    cum_none = sum(r["no_model_changed_fraction"] for r in rows)
    lines.append(f"\nCumulative pixels changed (sum of fractions over {len(rows)} images): live {cum:.3f}, "
                 f"no model {cum_none:.3f}" + (f", train once {sum(r['changed_fraction'] for r in once):.3f}"
                                              if once else ""))
    if "actions" in rows[0]:
        lines += ["", *actions_table(rows, once, res["once_after"])]
        aseries = {"live loop: actions": (ks, [r["actions"] for r in rows]),
                   "no model": (ks, [r["no_model_actions"] for r in rows])}
        if once and "actions" in once[0]:
            aseries[f"train once after {res['once_after']}"] = (ks, [r["actions"] for r in once])
        line_chart(out_dir / f"{tag}_actions.png", aseries, f"actions per image (clicks + deletions + strokes), "
                   f"{res['arch']}, {res['budget']:g} s updates ({res['device']})",
                   "images annotated (file-name order)", shared_y=True, ylabel="actions")
    (out_dir / f"{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    doc = {"images": [{"name": r["name"], "changed_fraction": r["changed_fraction"], "error_blobs": r["error_blobs"],
                       **({k: r[k] for k in ("add", "delete", "redraw", "instances")} if res["instances"] else {}),
                       "no_model_changed_fraction": r["no_model_changed_fraction"],
                       **{k: r[k] for k in ACTION_KEYS if k in r},
                       "update_seconds": r["update_seconds"]} for r in rows],
           "train_once": {"after": res["once_after"],
                          "images": [{"name": r["name"], "changed_fraction": r["changed_fraction"],
                                      "error_blobs": r["error_blobs"],
                                      **{k: r[k] for k in ACTION_KEYS if k in r}} for r in once]},
           "budget_seconds": res["budget"], "arch": res["arch"], "device": res["device"]}
    (out_dir / f"{tag}.json").write_text(json.dumps(doc, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=2))
    print(f"table: {out_dir / (tag + '.md')}   plot: {out_dir / (tag + '.png')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=("isbi", "coco128"), default="isbi")
    ap.add_argument("--folder", type=Path, help="images (annotated in file-name order)")
    ap.add_argument("--isbi-class", choices=("cell", "membrane"), default="cell",
                    help="ISBI: the class the project paints (default cell: the cells are the objects)")
    ap.add_argument("--labels", type=Path, help="ground truth, as `segstudio import --format FORMAT` reads it")
    ap.add_argument("--classes", type=Path, help="class list for the labels (label maps, YOLO)")
    ap.add_argument("--format", default="labelmap", help="the labels' format (default labelmap)")
    ap.add_argument("--instances", action="store_true", help="instance data: Mask R-CNN, instance effort")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of training per update (default 30)")
    ap.add_argument("--once-after", type=int, default=5, help="the train-once baseline's N (default 5)")
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--min-size", type=int, default=512, help="Mask R-CNN's shorter image side (default 512)")
    ap.add_argument("--trainer", help="trainer settings for an ablation, as JSON (UNetTrainConfig / "
                    "MaskRCNNTrainConfig fields), e.g. '{\"dice_weight\": 0}'")
    ap.add_argument("--json", help="also write the per-image figures here")
    ap.add_argument("--actions", type=int, default=8, metavar="K",
                    help="effort in actions: click K sampled objects per image with the click tool and scale "
                         "to all (default 8; 0 leaves actions out)")
    ap.add_argument("--click-tool", choices=_clicks.CLASSICAL, help="the click tool the simulated annotator "
                    "uses (default: the window's Clicks tool)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--tag", help="output file names (default effort / effort_instances)")
    a = ap.parse_args()
    if a.folder is not None and a.labels is None:
        ap.error("--folder needs --labels")
    if a.dataset == "coco128" and a.folder is None:
        a.instances = True
    if not 0 <= a.actions <= 1000:
        ap.error("--actions must be 0..1000")
    a.click_tool = a.click_tool or _clicks.best_classical()
    res = run(a)
    write_outputs(res, a)
    rows = res["rows"]
    if a.folder is None and a.dataset == "isbi" and len(rows) >= 6:
        report("ISBI: slice 6 (after 5 done), pixels to change", f"{rows[5]['changed_fraction']:.2%}", "<= 10%",
               rows[5]["changed_fraction"] <= 0.10)
        last = [r["changed_fraction"] for r in rows[-10:]]
        report("ISBI: last 10 slices, mean pixels to change", f"{np.mean(last):.2%}", "<= 7%",
               bool(np.mean(last) <= 0.07))
        nocs = noc_after(rows, 5)
        if "model click" in nocs and "grabcut" in nocs:
            m, g = nocs["model click"], nocs["grabcut"]
            for thr in ("noc85", "noc90"):
                report(f"ISBI after 5 done slices, {thr}: model click vs GrabCut ({m['objects']} cells)",
                       f"{m[thr]:.2f} vs {g[thr]:.2f}", "<= half", m[thr] <= 0.5 * g[thr])
            print("clicks to 85 / 90 % after 5 done slices: " + ", ".join(
                f"{t} {v['noc85']:.2f} / {v['noc90']:.2f}" for t, v in nocs.items()))
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
