"""predict: segment images with a model. torch is imported only when it runs."""

from __future__ import annotations

import json
import sys

from segstudio.cli.common import CliError, add_command, add_common, open_project, progress_printer
from segstudio.core.records import NEW
from segstudio.inference import registry
from segstudio.inference.family import resolve

# the flags that are one family's own settings, dest -> flag (added by the families: Family.cli_args)
FAMILY_FLAGS: dict[str, str] = {}


def model_help(keys: list[str]) -> str:
    """The --model help: each family's key and what it is (argparse help text: % doubled)."""
    return "; ".join(f"{k}: {registry.family(k).title}" + (f", {registry.family(k).note}" if registry.family(k).note
                                                           else "") for k in keys).replace("%", "%%")


def predict_models() -> list[str]:
    """The families `segstudio predict` can load: those with a headless loader."""
    return [k for k, f in registry.FAMILIES.items() if f.load is not None]


def variants() -> list[str]:
    return list(dict.fromkeys(v for f in registry.FAMILIES.values() for v, _ in f.variants))


def add_parsers(sub) -> None:
    s = add_command(sub, "predict", cmd_predict, help="segment images with a model (pre-labelling)")
    s.add_argument("--model", required=True, choices=predict_models(), metavar="MODEL",
                   help=f"{model_help(predict_models())} (segstudio models lists what each needs)")
    s.add_argument("--weights", metavar="FILE", help="checkpoint (default: Mask R-CNN COCO weights, FCN / "
                                                    "DeepLabV3 COCO-VOC weights; UNet: the project's latest "
                                                    "trained model; SAM: the model's official file in the "
                                                    "torch hub cache, downloaded when missing)")
    for ref in dict.fromkeys(f.cli_args for f in registry.FAMILIES.values() if f.cli_args):
        FAMILY_FLAGS.update(resolve(ref)(s))  # each family adds its own flags
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    s.add_argument("--score", type=float, default=0.5, help="Mask R-CNN score threshold (default 0.5)")
    s.add_argument("--mask-threshold", type=float, default=0.5)
    s.add_argument("--status", default=NEW, help="images with these statuses (default new)")
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--no-amp", action="store_true",
                   help="full precision (default: float16 on CUDA; Segment Anything: bfloat16 where native)")
    s.add_argument("--maskrcnn-version", choices=variants(), default=None, dest="variant",
                   help="torchvision Mask R-CNN R50-FPN version for COCO weights (default v2)")
    s.add_argument("--no-create-classes", action="store_true",
                   help="drop detections of classes the project does not have")
    s.add_argument("--per-class", action="store_true", help="UNet: one region per class, not per component")
    s.add_argument("--tta", action="store_true", help="UNet: average over flipped copies (4x slower)")
    s.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="predict on a Ray cluster (pip install -e \".[cluster]\"): no ADDRESS starts a local "
                        "runtime; auto joins the cluster of this machine; ray://host:port through Ray Client. "
                        "The images must be on a path every worker sees")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="--ray: model workers, each loading the model once (default: 1 per CPU of a local runtime)")
    s.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="--ray: GPUs per worker (0: CPU; 0.5: two workers share a GPU)")
    s.add_argument("--json", action="store_true")
    add_common(s)


def cmd_predict(args) -> int:
    from segstudio.core.records import parse_statuses
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, predict_project
    statuses = parse_statuses(args.status)
    if args.batch < 1:
        raise CliError("--batch must be 1 or more")
    fam = registry.family(args.model)
    options = {k: getattr(args, k) for k in FAMILY_FLAGS if getattr(args, k, None) is not None}
    for k in options:
        if k not in fam.cli_options:
            owners = [key for key, f in registry.FAMILIES.items() if k in f.cli_options]
            raise CliError(f"{FAMILY_FLAGS[k]}: only with --model {' or '.join(owners)}")
    if args.variant is not None and args.variant not in dict(fam.variants):
        owners = [key for key, f in registry.FAMILIES.items() if args.variant in dict(f.variants)]
        raise CliError(f"--maskrcnn-version: only with --model {' or '.join(owners)}")
    if args.ray is None and (args.workers is not None or args.gpus_per_worker):
        raise CliError("--workers and --gpus-per-worker: only with --ray")
    if args.ray is not None and not fam.cluster:
        raise CliError(f"--ray: not for {fam.title} yet (use "
                       f"{', '.join(k for k, f in registry.FAMILIES.items() if f.cluster)})")
    project = open_project(args)
    spec = ModelSpec(args.model, args.weights, args.device, args.score, args.mask_threshold,
                     per_component=not args.per_class, amp=False if args.no_amp else None, tta=args.tta,
                     variant=args.variant, options=options)
    prog = progress_printer("predict")
    if args.ray is not None:
        import os

        from segstudio.inference.cluster.predict import predict_on_ray
        workers = args.workers or (os.cpu_count() or 1)
        try:
            rep = predict_on_ray(project, spec, statuses, args.ray, workers, args.gpus_per_worker, args.batch,
                                 not args.no_create_classes, progress=prog)
        finally:
            prog.close()
    else:
        seg = load_segmenter(spec, project)
        print(f"model: {seg.name} ({len(seg.classes)} classes) on {seg.device.describe()}", file=sys.stderr)
        try:
            rep = predict_project(project, seg, statuses, args.batch, not args.no_create_classes, progress=prog)
        finally:
            prog.close()
    d = {"images": rep.images, "regions": rep.regions, "seconds": round(rep.seconds, 3),
         "images_per_second": round(rep.images_per_second, 3), "device": rep.device,
         "model_seconds": round(rep.model_seconds, 3), "timing": {k: round(v, 3) for k, v in rep.timing.items()},
         "errors": [{"path": p, "error": e} for p, e in rep.errors], "dropped_classes": rep.dropped,
         "left_alone": list(rep.skipped)}
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(f"predicted: {rep.images} images, {rep.regions} regions in {rep.seconds:.1f} s "
              f"({rep.images_per_second:.2f} images/s) on {rep.device}")
        for p, e in rep.errors[:50]:
            print(f"  error: {p}: {e}")
        if rep.skipped:  # open in a window meanwhile (its claim in the store), or a person's work on a team's store
            from segstudio.cli.project import terminal_text
            from segstudio.core.claims import describe_owner
            holders = project.store.claimed_images(rep.skipped)
            recs = project.store.images_by_ids(rep.skipped[:10])
            held = sum(1 for i in rep.skipped if i in holders)
            why = [f"{held} images open in a window (predict them again when they are closed)"] if held else []
            if len(rep.skipped) > held:  # the team's rule: an annotator's model writes only free new/predicted images
                why.append(f"{len(rep.skipped) - held} images of a person's work a model run of yours may not "
                           "change (a lead's may)")
            print(f"  left alone: {'; '.join(why)}: " + ", ".join(
                terminal_text(recs[i].path) + (f" ({terminal_text(describe_owner(holders[i]))})"
                                               if i in holders else "") for i in recs))
        if rep.dropped:
            print("  dropped (class not in project): " + ", ".join(f"{k} {v}" for k, v in rep.dropped.items()))
    return 0
