"""Propagation: from one done frame, how much work is left on the following frames, per method of
segstudio.editing.propagate.carry and against three baselines.

    python benchmarks/propagation.py --dataset stardist-3d            # ../shared/data/stacks/stardist-3d
    python benchmarks/propagation.py --dataset isbi --frames-count 4 --methods flow,flow+grabcut,flow+level \
        --actions 3 --live-budget 60                                  # ISBI 2012, cells linked by overlap
    python benchmarks/propagation.py --dataset synthetic              # a moving-object video made here
    python benchmarks/propagation.py --frames DIR-or-STACK --masks DIR-or-STACK [--from K]
        [--frames-count N] [--methods a,b] [--actions K] [--live-budget S] [--json OUT]

Frame K (default: the middle one) is done: its truth objects are carried forward to the last frame
and backward to the first (at most N frames each way), each step from the previous step's answer
("chain": nobody corrects on the way). Also "step": each frame carried from its neighbour's truth
(the annotator corrected every frame before propagating one more). Per frame:

- pixels to change: pixels whose object differs from the truth, predicted objects renamed to the
  truth object they are paired with (below: kept or redraw; a predicted object paired with none is
  a wrong one, all its pixels change);
- objects kept / redraw / add / delete at IoU 0.5, two ways: by track id (the carried object's id
  against the truth's id: what propagation promises) and by IoU (greedy, best pair first, which at
  IoU >= 0.5 is the Hungarian matching: no two objects of one map can both overlap a third by more
  than half). Kept: a pair at IoU >= 0.5; redraw: a truth object paired (same id / leftover
  overlapping pair) below 0.5; add: a truth object with no pair; delete: a predicted object with none;
- actions of the simulated annotator (benchmarks/_actions.py: one per deletion, clicks with the
  window's Clicks tool to IoU 0.9 or 20, a stroke per error blob left; K sampled objects a frame).

Baselines: no propagation (every object from nothing); copy (the done frame's masks unchanged;
in "step" the previous frame's truth unchanged); live (a UNet trained on the done frame alone by
the live learner, LiveLearner.update, for --live-budget seconds on the CPU, its class areas split
into 4-connected objects). With the live model, also the method "flow+live": the warped mask
replaced by the live model's object that overlaps it at IoU >= 0.5 (propagate_refine.EvidenceRefiner).
"run": as "chain", but an object below propagate.CONFIDENCE_STOP is dropped there, as the project's
propagation run drops it.

stardist-3d target (issue 26): with the middle slice done, >= 90 % of the nuclei present in it are
carried at IoU >= 0.5 (same track id) through every slice in which they appear.
Confidence: per carried object, how well it separates carries at IoU >= 0.5 from worse ones
(AUC), and the share of each below propagate.CONFIDENCE_STOP.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _propagation_data as data  # noqa: E402
from _common import ROOT, report, summary  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MATCH, GOOD = 0.5, 0.9
TARGET_CARRIED = 0.9
CANDIDATES = ("flow", "flow+grabcut", "flow+watershed", "flow+level", "refit")

Pred = list[tuple[int, np.ndarray, float]]  # (track, mask, confidence)


# ---------------------------------------------------------------- running the methods


def chain(frames, truths, k: int, order: list[int], method: str, stop: float = 0.0, refine=None) -> dict[int, Pred]:
    """Frame k's truth carried along `order` (frames after or before k, nearest first); with
    `stop`, an object below that confidence is dropped there, as the project's run drops it."""
    from segstudio.editing.propagate import carry
    objs = [(t, 1, m) for t, m in truths[k].items()]
    prev, out = k, {}
    for f in order:
        carried = [c for c in carry(frames[prev], frames[f], objs, refine, method=method) if c.confidence >= stop]
        out[f] = [(c.track, c.mask, c.confidence) for c in carried]
        objs = [(c.track, c.class_id, c.mask) for c in carried]
        prev = f
    return out


def step(frames, truths, k: int, order: list[int], method: str, refine=None) -> dict[int, Pred]:
    """Each frame carried from its neighbour toward k, that neighbour's truth given."""
    from segstudio.editing.propagate import carry
    out, prev = {}, k
    for f in order:
        objs = [(t, 1, m) for t, m in truths[prev].items()]
        carried = carry(frames[prev], frames[f], objs, refine, method=method)
        out[f] = [(c.track, c.mask, c.confidence) for c in carried]
        prev = f
    return out


def live_predictions(frames, truths, k: int, wanted: list[int], budget: float) -> dict[int, Pred]:
    """The live learner's UNet trained on frame k alone, predicting the wanted frames."""
    from dataclasses import replace

    from segstudio.core import maskops
    from segstudio.core.project import Project
    from segstudio.core.records import DONE
    from segstudio.core.region import Region
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    from PIL import Image
    import torch
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as t:
        folder = Path(t) / "frames"
        folder.mkdir()
        for i, fr in enumerate(frames):
            Image.fromarray(fr).save(folder / f"{i:04d}.png")
        project = Project.open(folder)
        store = project.store
        cid = store.add_class("object").id
        by_path = {r.path: r.id for r in store.images()}
        iid = by_path[f"{k:04d}.png"]
        regions = []
        ids = store.reserve_region_ids(len(truths[k])) if truths[k] else []
        for rid, (track, m) in zip(ids, truths[k].items(), strict=True):
            crop = maskops.crop_to_content(m)
            if crop is not None:
                regions.append(replace(Region(rid, cid, crop[0], crop[1], crop[2]), track=track))
        store.save_regions(iid, regions, [], status=DONE)
        learner = LiveLearner(project, LiveConfig(arch="unet", seconds=budget, device="cpu"))
        learner.update()
        targets = {by_path[f"{i:04d}.png"]: i for i in wanted}
        learner.repredict(list(targets))
        out: dict[int, Pred] = {}
        h, w = frames[0].shape[:2]
        for image_id, i in targets.items():
            fg = np.zeros((h, w), bool)
            for r in store.regions(image_id):
                if r.class_id == cid and r.mask.size:
                    fg |= maskops.uncrop(r.mask, r.x, r.y, w, h)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=4)
            out[i] = [(-j, lab == j, 1.0) for j in range(1, n) if stats[j, cv2.CC_STAT_AREA] >= data.MIN_CELL]
        project.close()
    return out


# ---------------------------------------------------------------- measuring


def iou_matrix(truth: dict[int, np.ndarray], pred: Pred, shape) -> tuple[np.ndarray, list[int]]:
    """IoU of every truth object (rows, in `ids` order) with every predicted one (columns)."""
    ids = list(truth)
    tmap = np.zeros(shape, np.int32)
    for j, t in enumerate(ids, start=1):
        tmap[truth[t]] = j
    t_area = np.bincount(tmap.ravel(), minlength=len(ids) + 1)
    out = np.zeros((len(ids), len(pred)))
    for c, (_, m, _) in enumerate(pred):
        inter = np.bincount(tmap[m], minlength=len(ids) + 1)[1:]
        union = t_area[1:] + int(m.sum()) - inter
        out[:, c] = inter / np.maximum(union, 1)
    return out, ids


def compare(truth: dict[int, np.ndarray], pred: Pred, shape) -> dict:
    """Pixels to change and objects kept / good / redraw / add / delete (by IoU and by track)."""
    ious, ids = iou_matrix(truth, pred, shape)
    pairs = data.greedy_pairs(ious, MATCH)
    kept_t = {r for r, _ in pairs}
    kept_p = {c for _, c in pairs}
    left = ious.copy()
    left[list(kept_t), :] = 0
    left[:, list(kept_p)] = 0
    redraw = data.greedy_pairs(left, 1e-9)
    by_iou = {"kept": len(pairs), "good": sum(ious[r, c] >= GOOD for r, c in pairs), "redraw": len(redraw),
              "add": len(ids) - len(pairs) - len(redraw), "delete": len(pred) - len(pairs) - len(redraw)}
    col = {track: c for c, (track, _, _) in enumerate(pred)}
    kept = sum(1 for r, t in enumerate(ids) if t in col and ious[r, col[t]] >= MATCH)
    same = sum(1 for t in ids if t in col)
    by_track = {"kept": kept, "redraw": same - kept, "add": len(ids) - same, "delete": len(pred) - same}
    tmap = np.zeros(shape, np.int64)
    for t, m in truth.items():
        tmap[m] = t
    pmap = np.zeros(shape, np.int64)
    renamed = {c: ids[r] for r, c in pairs + redraw}  # a redrawn object keeps its pixels that are right
    for c, (_, m, _) in enumerate(pred):
        pmap[m] = renamed.get(c, -(c + 1))
    changed = int(np.count_nonzero(pmap != tmap))
    return {"truth_objects": len(ids), "predicted": len(pred), "pixels": changed,
            "pixel_fraction": changed / tmap.size, "by_iou": by_iou, "by_track": by_track}


def carried_through(truths, k: int, chains: dict[int, Pred], span: list[int],
                    use_track: bool = True) -> tuple[int, int]:
    """(nuclei of frame k carried at IoU >= 0.5 through every frame of `span` they appear in, of all)."""
    ok = 0
    for t in truths[k]:
        good = True
        for f in span:
            if t not in truths[f]:
                continue
            pred = chains.get(f, [])
            if use_track:
                m = next((m for tr, m, _ in pred if tr == t), None)
                good = m is not None and data_iou(m, truths[f][t]) >= MATCH
            else:
                good = any(data_iou(m, truths[f][t]) >= MATCH for _, m, _ in pred)
            if not good:
                break
        ok += good
    return ok, len(truths[k])


def data_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / u if u else 1.0


def confidence_split(truths, preds: dict[int, Pred], stop: float) -> dict:
    """AUC of confidence for carries at IoU >= 0.5 against worse ones, and the share of each below stop."""
    good, bad = [], []
    for f, pred in preds.items():
        for t, m, c in pred:
            (good if t in truths[f] and data_iou(m, truths[f][t]) >= MATCH else bad).append(c)
    g, b = np.array(good), np.array(bad)
    auc = (float(((g[:, None] > b[None, :]).sum() + 0.5 * (g[:, None] == b[None, :]).sum()) / (len(g) * len(b)))
           if len(g) and len(b) else None)
    return {"good": len(g), "bad": len(b), "auc": auc,
            "good_below_stop": float((g < stop).mean()) if len(g) else None,
            "bad_below_stop": float((b < stop).mean()) if len(b) else None}


def actions(frames, truths, f: int, pred: Pred, tool, sample: int, cache: dict) -> float:
    import _actions
    a = _actions.image_actions(frames[f], f"frame{f}", list(truths[f].values()), [m for _, m, _ in pred],
                               tool, sample, cache=cache)
    return a.actions


# ---------------------------------------------------------------- the run


def load(a) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    if a.frames is not None:
        if a.masks is None:
            raise SystemExit("--frames needs --masks (instance-id label maps)")
        frames, labels = data.read_sequence(a.frames), data.read_sequence(a.masks, masks=True)
        if a.binary_masks:
            labels = data.link_instances([lab > 0 for lab in labels])
        return frames, labels, str(a.frames)
    if a.dataset == "stardist-3d":
        import tifffile
        src = DATA / "stacks" / "stardist-3d"
        if not (src / "img3d.tif").is_file():
            raise SystemExit(f"stardist-3d not found at {src}")
        return list(tifffile.imread(src / "img3d.tif")), list(tifffile.imread(src / "mask3d.tif")), "stardist-3d"
    if a.dataset == "isbi":
        frames, labels = data.isbi(DATA / "isbi2012-membrane")
        return frames, labels, "isbi2012 (cells linked by overlap)"
    frames, labels = data.synthetic(a.synthetic_frames)
    return frames, labels, "synthetic video"


def run(a) -> dict:
    from segstudio.editing.propagate import CONFIDENCE_STOP
    stop = CONFIDENCE_STOP if a.stop is None else a.stop
    frames, labels, what = load(a)
    if len(frames) != len(labels):
        raise SystemExit(f"{len(frames)} frames but {len(labels)} masks")
    for i, (fr, lab) in enumerate(zip(frames, labels, strict=True)):
        if fr.shape[:2] != lab.shape:
            raise SystemExit(f"frame {i} is {fr.shape[:2]} but its mask is {lab.shape}")
    n = len(frames)
    k = n // 2 if a.from_frame is None else a.from_frame
    if not 0 <= k < n:
        raise SystemExit(f"--from {k}: the sequence has frames 0..{n - 1}")
    span = a.frames_count or n
    forward = list(range(k + 1, min(n, k + 1 + span)))
    backward = list(range(k - 1, max(-1, k - 1 - span), -1))
    truths = [data.objects_of(lab) for lab in labels]
    shape = labels[0].shape
    print(f"{what}: {n} frames of {shape[1]}x{shape[0]}, frame {k} done ({len(truths[k])} objects), "
          f"{len(forward)} frames forward, {len(backward)} backward; objects in all frames: "
          f"{sum(len(t) for t in truths)}", flush=True)
    methods = a.methods.split(",") if a.methods else list(CANDIDATES)
    wanted = forward + backward
    scen: dict[str, dict[str, dict[int, Pred]]] = {"chain": {}, "run": {}, "step": {}}
    seconds: dict[str, float] = {}
    scen["chain"]["none"] = {f: [] for f in wanted}
    scen["chain"]["copy"] = {f: [(t, m, 1.0) for t, m in truths[k].items()] for f in wanted}
    scen["step"]["copy"] = {f: [(t, m, 1.0) for t, m in truths[f - 1 if f > k else f + 1].items()] for f in wanted}
    if a.live_budget > 0:
        t0 = time.perf_counter()
        scen["chain"]["live"] = live_predictions(frames, truths, k, wanted, a.live_budget)
        seconds["live"] = time.perf_counter() - t0
    refines = {}
    if "live" in scen["chain"]:  # the live model's objects as evidence: the method "flow+live"
        from segstudio.inference.propagate_refine import EvidenceRefiner, frame_key
        by_key = {frame_key(frames[f]): [m for _, m, _ in scen["chain"]["live"][f]] for f in wanted}
        refines["flow+live"] = EvidenceRefiner(lambda image: by_key.get(frame_key(image), []))
        methods.append("flow+live")
    for name in methods:
        m, r = ("flow+refine", refines[name]) if name in refines else (name, None)
        t0 = time.perf_counter()
        scen["chain"][name] = {**chain(frames, truths, k, forward, m, refine=r),
                               **chain(frames, truths, k, backward, m, refine=r)}
        seconds[name] = (time.perf_counter() - t0) / max(len(wanted), 1)
        scen["run"][name] = {**chain(frames, truths, k, forward, m, stop, r),
                             **chain(frames, truths, k, backward, m, stop, r)}
        scen["step"][name] = {**step(frames, truths, k, forward, m, r), **step(frames, truths, k, backward, m, r)}
    tool, cache = None, {}
    if a.actions:
        import _clicks
        tool = _clicks.classical_tool(_clicks.best_classical())
    results: dict = {"data": what, "frames": n, "from": k, "forward": forward, "backward": backward,
                     "methods": methods, "live_budget_s": a.live_budget, "per_frame": {}, "totals": {},
                     "seconds_per_frame": seconds, "confidence_stop": stop}
    for mode, by in scen.items():
        for name, preds in by.items():
            rows = []
            for f in wanted:
                row = {"frame": f, **compare(truths[f], preds[f], shape)}
                if tool is not None:
                    row["actions"] = actions(frames, truths, f, preds[f], tool, a.actions, cache)
                rows.append(row)
            results["per_frame"][f"{mode}/{name}"] = rows
            results["totals"][f"{mode}/{name}"] = totals(rows, truths, k, preds, forward, backward,
                                                         name != "live", stop if name in methods else None)
    print_table(results)
    if a.dataset == "stardist-3d" or a.target:
        for name, tot in results["totals"].items():
            if name.startswith("chain/") and "carried" in tot:
                ok, of = tot["carried"]
                report(f"{name[6:]}: nuclei of slice {k} carried through", f"{ok}/{of} = {ok / max(of, 1):.0%}",
                       f">= {TARGET_CARRIED:.0%}",
                       bool(ok / max(of, 1) >= TARGET_CARRIED) if name[6:] in methods else None)
    return results


def totals(rows, truths, k, preds, forward, backward, tracked: bool, stop: float | None) -> dict:
    out = {"truth_objects": sum(r["truth_objects"] for r in rows), "pixels": sum(r["pixels"] for r in rows),
           "pixel_fraction": float(np.mean([r["pixel_fraction"] for r in rows])) if rows else 0.0}
    for how in ("by_iou", "by_track"):
        out[how] = {key: int(sum(r[how][key] for r in rows)) for key in rows[0][how]} if rows else {}
    if rows and "actions" in rows[0]:
        out["actions"] = float(sum(r["actions"] for r in rows))
    ok_f, of = carried_through(truths, k, preds, forward, tracked)
    ok_b, _ = carried_through(truths, k, preds, backward, tracked)
    both = carried_through(truths, k, preds, forward + backward, tracked)
    out["carried"], out["carried_forward"], out["carried_backward"] = both, (ok_f, of), (ok_b, of)
    if stop is not None:
        out["confidence"] = confidence_split(truths, preds, stop)
        # where the project's run stops: the first frame each way with no object left
        out["empty_from"] = [next((f for f in order if not preds[f]), None) for order in (forward, backward)]
    return out


def print_table(res: dict) -> None:
    print(f"\nframe {res['from']} done; figures summed over {len(res['forward']) + len(res['backward'])} frames "
          f"(both directions); objects to fix at IoU 0.5, by IoU matching (by track id)")
    head = ("| mode/method | truth objects | pixels to change (mean % of frame) | kept (>=0.9) | redraw | add "
            "| delete | by track: kept / redraw / add / delete | actions | carried through "
            "| conf AUC, good/bad below stop | s/frame |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, t in res["totals"].items():
        i, tr = t["by_iou"], t["by_track"]
        conf = t.get("confidence")
        cs = "-" if not conf else (("-" if conf["auc"] is None else f"{conf['auc']:.2f}") + ", "
                                   + "/".join("-" if conf[key] is None else f"{conf[key]:.0%}"
                                              for key in ("good_below_stop", "bad_below_stop")))
        ok, of = t["carried"]
        sec = res["seconds_per_frame"].get(name.split("/", 1)[1])
        print(f"| {name} | {t['truth_objects']} | {t['pixels']} ({t['pixel_fraction']:.1%}) "
              f"| {i['kept']} ({i['good']}) | {i['redraw']} | {i['add']} | {i['delete']} "
              f"| {tr['kept']} / {tr['redraw']} / {tr['add']} / {tr['delete']} "
              f"| {t.get('actions', float('nan')):.0f} | {ok}/{of} | {cs} | "
              f"{'-' if sec is None or name.startswith('step') else f'{sec:.2f}'} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("stardist-3d", "isbi", "synthetic"), default="stardist-3d")
    p.add_argument("--frames", type=Path, help="a folder of numbered frames or a multi-page TIFF")
    p.add_argument("--masks", type=Path, help="instance-id label maps: a folder of numbered PNGs or a TIFF stack")
    p.add_argument("--binary-masks", action="store_true",
                   help="the masks are object/background: objects are their 4-connected areas, linked by overlap")
    p.add_argument("--from", dest="from_frame", type=int, default=None, help="the done frame (default: the middle)")
    p.add_argument("--frames-count", type=int, default=None, help="frames to propagate each way (default: all)")
    p.add_argument("--methods", default=None, help=f"carry methods to measure (default: {','.join(CANDIDATES)})")
    p.add_argument("--actions", type=int, default=4, help="objects clicked per frame for the action count (0: none)")
    p.add_argument("--live-budget", type=float, default=30.0,
                   help="seconds of UNet training on the done frame (0: no live baseline)")
    p.add_argument("--synthetic-frames", type=int, default=12)
    p.add_argument("--stop", type=float, default=None,
                   help="the confidence below which \"run\" drops an object (default: propagate.CONFIDENCE_STOP)")
    p.add_argument("--target", action="store_true", help="print the carried-through figure beside the 90 %% target")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a)
    res["wall_seconds"] = time.perf_counter() - t0
    print(f"\n{res['wall_seconds']:.0f} s in all (2 CPU cores shared with other work)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=_plain))
    return summary()


def _plain(o):
    if isinstance(o, (np.integer, np.bool_)):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(type(o))


if __name__ == "__main__":
    raise SystemExit(main())
