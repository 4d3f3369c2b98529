"""Clicks to 85 % and 90 % IoU (NoC) for every click tool, with the field's standard protocol
(RITM's clicker: benchmarks/_clicks.py says how each click is placed).

    python benchmarks/click_bench.py --images DIR --masks DIR [--tools grabcut,...] [--max-clicks 20]
        [--limit N] [--json OUT] [--checkpoint FILE] [--sam-weights FILE | --random-weights]

    python benchmarks/click_bench.py --grabcut50      # ../shared/data/interactive-grabcut

Masks pair with images by file stem. A mask with values 0/128/255 is one object (> 128) with an
unsure band (128) left out of the IoU; a two-valued mask is one object (the non-zero value); a
mask with more values is an instance-id map and each instance runs on its own.

Tools (the window's own code):
  grabcut     Clicks → GrabCut (R): editing.classical.grabcut_refine with the window's seed radius
  watershed   the marker watershed from the clicks and the previous mask (editing.classical)
  clicks      the window's Clicks tool as it is now (editing.classical.click_segment)
  sam, sam2   a click model through the Promptable protocol (inference/promptable.py): --sam-weights
              FILE loads a user's file through the family's loader; --random-weights builds it
              with random weights (seconds per click are real, the IoU is meaningless)
  model       the pre-label model's click: --checkpoint FILE (a UNet or Mask R-CNN checkpoint); the
              first click takes the class area or instance under it, later clicks refine that
              region with the Clicks tool

A broken image or mask is reported and skipped; the run goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _clicks  # noqa: E402

GRABCUT50 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "interactive-grabcut"
CLASSICAL = _clicks.CLASSICAL
classical_tool = _clicks.classical_tool


def promptable(name: str, args) -> _clicks.Tool:
    import torch
    torch.manual_seed(0)
    if args.random_weights:
        if name == "sam":
            from segstudio.inference.sam.model import load_sam
            model = load_sam("sam_hq_vit_tiny", None, args.device, random_weights=True)
        else:
            from segstudio.inference.sam2.model import load_sam2
            model = load_sam2(device=args.device, random_weights=True)
    else:
        if not args.sam_weights:
            raise SystemExit(f"{name}: give --sam-weights FILE (or --random-weights to time it with random weights)")
        from segstudio.inference.runtime.engine import load_clicker
        from segstudio.inference.runtime.model_spec import ModelSpec
        model = load_clicker(ModelSpec(name, args.sam_weights, args.device, download=False))
    return _clicks.promptable_tool(model)


def model(args) -> _clicks.Tool:
    if not args.checkpoint:
        raise SystemExit("model: give --checkpoint FILE (a UNet or Mask R-CNN checkpoint)")
    then = classical_tool(args.then or _clicks.best_classical())
    from segstudio.inference import registry
    from segstudio.inference.runtime.engine import load_segmenter, read_checkpoint
    from segstudio.inference.runtime.model_spec import ModelSpec
    ck = read_checkpoint(args.checkpoint)
    fams = registry.of_checkpoint(ck.arch)
    seg = load_segmenter(ModelSpec(fams[0].key, args.checkpoint, args.device, score_threshold=0.05))
    return _clicks.model_tool(lambda image: seg.predict(image).candidates(), then)


def make_tool(name: str, args) -> _clicks.Tool:
    if name in CLASSICAL:
        return classical_tool(name)
    if name in ("sam", "sam2"):
        return promptable(name, args)
    if name == "model":
        return model(args)
    raise SystemExit(f"unknown tool {name!r}: choose from {', '.join(CLASSICAL + ('sam', 'sam2', 'model'))}")


def load_pair(image_path: Path, mask_path: Path, components: bool = False, sample: int | None = None):
    """(image, [(object name, gt)]) or a message saying why the pair is skipped. `sample`: that many
    of the objects, the same ones every run (a seed from the image's name)."""
    from segstudio.core.imageio import decode_image
    try:
        image = decode_image(image_path)
    except Exception as e:  # noqa: BLE001 - any broken file is reported and skipped
        return f"{image_path.name}: cannot read the image ({e})"
    try:
        labels = _clicks.read_labels(mask_path)
        objects = _clicks.objects_of(labels, components)
    except Exception as e:  # noqa: BLE001
        return f"{mask_path.name}: cannot read the mask ({e})"
    if labels.shape[:2] != image.shape[:2]:
        return (f"{mask_path.name}: the mask is {labels.shape[1]}x{labels.shape[0]}, "
                f"the image {image.shape[1]}x{image.shape[0]}")
    if not objects:
        return f"{mask_path.name}: no object in the mask"
    if sample:
        objects = [objects[k] for k in _clicks.sample_ids(image_path.name, len(objects), sample)]
    return image, objects


def bench(tools: dict[str, _clicks.Tool], pairs, max_clicks: int, target: float = 0.9,
          say=print, components: bool = False, sample: int | None = None) -> dict:
    """Every tool on every object of every pair; the JSON the script writes."""
    runs: dict[str, list[_clicks.Run]] = {t: [] for t in tools}
    images: list[dict] = []
    skipped: list[str] = []
    for image_path, mask_path in pairs:
        loaded = load_pair(image_path, mask_path, components, sample)
        if isinstance(loaded, str):
            skipped.append(loaded)
            say(f"skipped: {loaded}")
            continue
        image, objects = loaded
        for suffix, gt in objects:
            name = image_path.name + suffix
            for tname, tool in tools.items():
                try:
                    r = _clicks.run_object(tool, tname, image, str(image_path), gt, name, max_clicks, target)
                except Exception as e:  # noqa: BLE001 - a tool's failure on one image is a result
                    say(f"{tname} failed on {name}: {type(e).__name__}: {e}")
                    r = _clicks.Run(name, tname, [0.0])
                runs[tname].append(r)
                images.append({"name": name, "tool": tname, "clicks_to_85": r.clicks_to(0.85),
                               "clicks_to_90": r.clicks_to(0.90), "ious": [round(v, 4) for v in r.ious],
                               "seconds": round(r.seconds, 3)})
                say(f"{tname:10s} {name:24s} clicks to 90 %: {r.clicks_to(0.90) or '-':>3}  "
                    f"IoU {r.ious[-1] if r.ious else 0:.3f} after {len(r.ious)}")
    return {"max_clicks": max_clicks, "tools": {t: _clicks.summarise(rs, max_clicks) for t, rs in runs.items()},
            "images": images, "skipped": skipped}


def table(result: dict) -> str:
    rows = ["| tool | objects | NoC@85 | NoC@90 | never 90 % | IoU after 1 / 3 / 5 clicks | s per click |",
            "|---|---|---|---|---|---|---|"]
    for t, s in result["tools"].items():
        if not s.get("objects"):
            rows.append(f"| {t} | 0 | | | | | |")
            continue
        ipc = s["iou_per_click"]
        rows.append(f"| {t} | {s['objects']} | {s['noc85']:.2f} | {s['noc90']:.2f} | {s['failures90']} | "
                    f"{ipc[0]:.3f} / {ipc[min(2, len(ipc) - 1)]:.3f} / {ipc[min(4, len(ipc) - 1)]:.3f} | "
                    f"{s['seconds_per_click']:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path)
    ap.add_argument("--masks", type=Path)
    ap.add_argument("--grabcut50", action="store_true", help=f"the GrabCut-50 set in {GRABCUT50}")
    ap.add_argument("--tools", default="grabcut", help="comma-separated: " + ", ".join(CLASSICAL + ("sam", "sam2",
                                                                                                      "model")))
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--limit", type=int, help="the first N images (name order)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--components", action="store_true",
                    help="a two-valued mask's 4-connected areas are the objects (ISBI's cells)")
    ap.add_argument("--sample", type=int, help="click only this many objects per image (the same ones every run)")
    ap.add_argument("--checkpoint", help="the pre-label model for the 'model' tool")
    ap.add_argument("--then", choices=CLASSICAL, help="what refines the model's region (default: the Clicks tool)")
    ap.add_argument("--sam-weights", help="weights file for 'sam' / 'sam2'")
    ap.add_argument("--random-weights", action="store_true", help="sam / sam2 with random weights (timing only)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.grabcut50:
        a.images, a.masks = GRABCUT50 / "images", GRABCUT50 / "masks"
    if a.images is None or a.masks is None:
        ap.error("give --images and --masks (or --grabcut50)")
    for d in (a.images, a.masks):
        if not d.is_dir():
            ap.error(f"{d} is not a folder")
    if not 1 <= a.max_clicks <= 100:
        ap.error("--max-clicks must be 1..100")
    pairs = _clicks.pairs(a.images, a.masks, a.limit)
    if not pairs:
        ap.error(f"no image in {a.images} has a mask of the same name in {a.masks}")
    names = [t.strip() for t in a.tools.split(",") if t.strip()]
    tools = {n: make_tool(n, a) for n in names}
    t0 = time.perf_counter()
    if a.sample is not None and not 1 <= a.sample <= 100000:
        ap.error("--sample must be 1 or more")
    result = bench(tools, pairs, a.max_clicks, say=(lambda s: None) if a.quiet else print,
                   components=a.components, sample=a.sample)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"\n{len(pairs)} images from {a.images}, {a.max_clicks} clicks at most, "
          f"{result['seconds']} s; failures count {a.max_clicks}")
    print(table(result))
    for s in result["skipped"]:
        print(f"skipped: {s}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
