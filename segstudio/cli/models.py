"""predict: segment images with a model. torch is imported only when it runs."""

from __future__ import annotations

import json
import sys

from segstudio.cli.common import CliError, add_command, add_common, open_project, progress_printer
from segstudio.core.records import NEW
from segstudio.inference.semantic_spec import SEMANTIC_MODELS


def add_parsers(sub) -> None:
    s = add_command(sub, "predict", cmd_predict, help="segment images with a model (pre-labelling)")
    s.add_argument("--model", required=True, choices=[*SEMANTIC_MODELS, "maskrcnn"],
                   help="unet: a trained checkpoint; fcn / deeplabv3 / deeplabv3_mobilenet: torchvision's "
                        "COCO-VOC weights (21 classes, no training needed) or a fine-tuned checkpoint; "
                        "maskrcnn: COCO weights or a checkpoint")
    s.add_argument("--weights", metavar="FILE", help="checkpoint (default: Mask R-CNN COCO weights, FCN / "
                                                    "DeepLabV3 COCO-VOC weights; UNet: the project's latest "
                                                    "trained model)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    s.add_argument("--score", type=float, default=0.5, help="Mask R-CNN score threshold (default 0.5)")
    s.add_argument("--mask-threshold", type=float, default=0.5)
    s.add_argument("--status", default=NEW, help="images with these statuses (default new)")
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    s.add_argument("--maskrcnn-version", choices=["v2", "v1"], default="v2",
                   help="torchvision Mask R-CNN R50-FPN version for COCO weights (default v2)")
    s.add_argument("--no-create-classes", action="store_true",
                   help="drop detections of classes the project does not have")
    s.add_argument("--per-class", action="store_true", help="UNet: one region per class, not per component")
    s.add_argument("--tta", action="store_true", help="UNet: average over flipped copies (4x slower)")
    s.add_argument("--json", action="store_true")
    add_common(s)


def cmd_predict(args) -> int:
    from segstudio.core.records import parse_statuses
    from segstudio.inference.engine import ModelSpec, load_segmenter, predict_project
    statuses = parse_statuses(args.status)
    if args.batch < 1:
        raise CliError("--batch must be 1 or more")
    project = open_project(args)
    spec = ModelSpec(args.model, args.weights, args.device, args.score, args.mask_threshold,
                     per_component=not args.per_class, amp=False if args.no_amp else None, tta=args.tta,
                     version=args.maskrcnn_version)
    seg = load_segmenter(spec, project)
    print(f"model: {seg.name} ({len(seg.classes)} classes) on {seg.device.describe()}", file=sys.stderr)
    prog = progress_printer("predict")
    try:
        rep = predict_project(project, seg, statuses, args.batch, not args.no_create_classes, progress=prog)
    finally:
        prog.close()
    d = {"images": rep.images, "regions": rep.regions, "seconds": round(rep.seconds, 3),
         "images_per_second": round(rep.images_per_second, 3), "device": rep.device,
         "model_seconds": round(rep.model_seconds, 3), "timing": {k: round(v, 3) for k, v in rep.timing.items()},
         "errors": [{"path": p, "error": e} for p, e in rep.errors], "dropped_classes": rep.dropped}
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(f"predicted: {rep.images} images, {rep.regions} regions in {rep.seconds:.1f} s "
              f"({rep.images_per_second:.2f} images/s) on {rep.device}")
        for p, e in rep.errors[:50]:
            print(f"  error: {p}: {e}")
        if rep.dropped:
            print("  dropped (class not in project): " + ", ".join(f"{k} {v}" for k, v in rep.dropped.items()))
    return 0
