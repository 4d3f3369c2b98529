"""train and evaluate: the learning loop from the command line. torch is imported only when they run."""

from __future__ import annotations

import json
import sys

from segstudio.cli.common import CliError, add_command, add_common, open_project
from segstudio.cli.models import model_help, variants
from segstudio.core.records import DONE
from segstudio.inference import registry
from segstudio.inference.family import TRAIN, resolve
from segstudio.inference.semantic.spec import DEFAULT_UNET, RESNET_ENCODERS


def train_models() -> list[str]:
    """The families `segstudio train` trains: those that can TRAIN."""
    return registry.keys(TRAIN)


def _net(fam) -> str | None:
    """The network a family's trainer settings name (FCN, DeepLabV3), None for a UNet of any encoder."""
    return (fam.trainer.get("unet") or {}).get("encoder")


def add_parsers(sub) -> None:
    s = add_command(sub, "train", cmd_train,
                    help="train a UNet / fine-tune FCN, DeepLabV3 or Mask R-CNN on the done images")
    s.add_argument("--model", required=True, choices=train_models(), metavar="MODEL",
                   help=f"{model_help(train_models())} (FCN / DeepLabV3: fine-tuned from their COCO-VOC weights, "
                        "else the ImageNet backbone, with a head for the project's classes)")
    s.add_argument("--out", metavar="FILE",
                   help="best checkpoint (the last goes beside, -last); an existing file is replaced only "
                        "when it is a segstudio checkpoint (required unless --watch)")
    w = s.add_argument_group("learning while annotating")
    w.add_argument("--watch", action="store_true",
                   help="keep the model current: each time images are marked done (in the window, by "
                        "another annotator, by an import), update it on all done images (accepted ones when the "
                        "project reviews) and re-predict the next unfinished ones; versions go to the project's "
                        "models folder. Ctrl+C stops")
    w.add_argument("--seconds", type=float, default=30.0, help="--watch: training time per update (default 30)")
    w.add_argument("--ahead", type=int, default=3, help="--watch: unfinished images re-predicted per update")
    w.add_argument("--poll", type=float, default=5.0, help="--watch: seconds between looks at the project")
    w.add_argument("--max-updates", type=int, help="--watch: stop after this many updates")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=int)
    g.add_argument("--minutes", type=float, help="time budget instead of epochs")
    s.add_argument("--device", default="auto")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--final-fit", type=float, default=0.2, metavar="SHARE",
                   help="share of the budget (time or epochs) for a final fit on every done image, the "
                        "validation ones too, after the validated fit (default 0.2); 0 keeps the validation "
                        "images out of the model")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch", type=int)
    s.add_argument("--resume", metavar="FILE", help="UNet: continue from a -last checkpoint")
    s.add_argument("--weights", metavar="FILE", help="Mask R-CNN: start from this checkpoint")
    s.add_argument("--maskrcnn-version", choices=variants(), default=None, dest="variant",
                   help="Mask R-CNN: torchvision R50-FPN version when starting from COCO weights")
    s.add_argument("--width", type=int, help="UNet: channels at the first level (default 16)")
    s.add_argument("--depth", type=int, help="UNet: downsamplings (default 4)")
    s.add_argument("--up", choices=["bilinear", "transpose"], help="UNet decoder upsampling")
    s.add_argument("--encoder", choices=["plain", *RESNET_ENCODERS],
                   help="UNet: plain (default), or a torchvision ResNet encoder started from ImageNet weights")
    s.add_argument("--no-pretrained", action="store_true",
                   help="ResNet-UNet, FCN, DeepLabV3: start from random weights, not pretrained ones")
    s.add_argument("--crop", type=int, help="UNet: training crop size (default 256)")
    s.add_argument("--ignore-unlabelled", action="store_true",
                   help="UNet, sparse (scribble) labels: pixels under no region are ignored instead of "
                        "learned as background; paint background with a class named 'background'")
    s.add_argument("--no-amp", action="store_true",
                   help="full precision (default: float16 on CUDA; UNet: bfloat16 on a CPU with AVX512-BF16/AMX)")
    s.add_argument("--border-weight", type=float, metavar="W0",
                   help="UNet: the U-Net paper's border weight map, extra weight W0 (paper: 10) on pixels in "
                        "narrow gaps between objects")
    s.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="train with Ray Train (DistributedDataParallel) on a cluster (pip install -e "
                        "\".[cluster]\"): no ADDRESS starts a local runtime, auto joins this machine's cluster; "
                        "needs --epochs; the folder must be on a path every worker sees")
    s.add_argument("--workers", type=int, default=2, metavar="N", help="--ray: training workers (default 2)")
    s.add_argument("--gpus", action="store_true", help="--ray: one GPU per worker")
    s.add_argument("--json", action="store_true")
    add_common(s)

    s = add_command(sub, "evaluate", cmd_evaluate, help="score a checkpoint against the annotations")
    s.add_argument("--weights", required=True, metavar="FILE")
    s.add_argument("--status", default=DONE, help="images to score (default done)")
    s.add_argument("--split", choices=["val", "train"], help="the images the checkpoint held out (val) or trained on")
    s.add_argument("--device", default="auto")
    s.add_argument("--tta", action="store_true", help="UNet: average over flipped copies")
    s.add_argument("--json", action="store_true")
    add_common(s)


def _printer(json_out: bool):
    last: dict = {"t": 0.0, "note": None}

    def progress(p) -> None:  # a train_common.TrainProgress
        import time
        if p.note and p.note != last["note"]:  # a stage begins: what it trains on, and for how long
            last["note"] = p.note
            print(f"{p.stage}: {p.note} ({p.elapsed:.0f}s)", file=sys.stderr, flush=True)
        if p.phase == "val" and all(v is None for v in p.val.values()):
            print(f"epoch {p.epoch:3d}  step {p.step:5d}  loss {p.loss:.4f}  (no validation images)  "
                  f"{p.elapsed:.0f}s", file=sys.stderr, flush=True)
        elif p.phase == "val":
            print(f"epoch {p.epoch:3d}  step {p.step:5d}  loss {p.loss:.4f}  val {p.score:.4f}  "
                  f"best {p.best:.4f}  {p.elapsed:.0f}s", file=sys.stderr, flush=True)
        elif time.time() - last["t"] > 10:
            last["t"] = time.time()
            lr = f" lr {p.lr:.2e}" if p.lr is not None else ""
            print(f"  {p.stage} step {p.step} loss {p.loss:.4f}{lr} ({p.elapsed:.0f}s)", file=sys.stderr, flush=True)
    return progress


def cmd_watch(args) -> int:
    """train --watch: the window's Learn-as-I-annotate loop, headless."""
    import signal
    import threading

    from segstudio.inference.training.live import LiveConfig, LiveLearner, watch
    if args.seconds <= 0 or args.poll <= 0 or args.ahead < 0:
        raise CliError("--seconds and --poll must be positive, --ahead zero or more")
    project = open_project(args)
    fam = registry.family(args.model)
    trainer: dict = {}
    if fam.semantic:
        trainer = {k: v for k, v in (("batch", args.batch), ("crop", args.crop)) if v}
        shape = {k: v for k, v in (("width", args.width), ("depth", args.depth), ("up_mode", args.up),
                                   ("encoder", _encoder(args))) if v}
        if shape:
            trainer["unet"] = {**DEFAULT_UNET, **shape}
        if args.no_pretrained:
            trainer["pretrained"] = False
    assert fam.checkpoint_kind is not None  # a family that can TRAIN stores checkpoints of its kind
    learner = LiveLearner(project, LiveConfig(arch=fam.checkpoint_kind, seconds=args.seconds, ahead=args.ahead,
                                              device=args.device, seed=args.seed, trainer=trainer))
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # finish the update's checkpoint, then stop

    def report(v, rep) -> None:
        score = v.metrics.get("mean_iou", v.metrics.get("mask_AP"))
        doc = {"version": v.version, "checkpoint": v.path, "done_images": v.done_images, "seconds": v.seconds,
               "validation": score, "repredicted": list(rep.written) if rep else [],
               "left_alone": list(rep.skipped) if rep else []}
        if args.json:
            print(json.dumps(doc), flush=True)
        else:
            val = f"validation {score:.4f}" if isinstance(score, (int, float)) else "no validation yet"
            left = f" ({len(doc['left_alone'])} left alone: edited, or open in a window)" if doc["left_alone"] else ""
            print(f"version {v.version}: {v.done_images} done images, {v.seconds:.0f} s, {val}; re-predicted "
                  f"{len(doc['repredicted'])} images{left} -> {v.path}", flush=True)
    if not args.json:
        print(f"watching {project.folder} (Ctrl+C stops)", file=sys.stderr, flush=True)
    try:
        watch(learner, poll=args.poll, stop=stop.is_set, on_version=report, max_updates=args.max_updates)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _encoder(args) -> str | None:
    """The network `unet["encoder"]` names for --model / --encoder (None: the default)."""
    net = _net(registry.family(args.model))
    if net is not None:
        if args.encoder:
            raise CliError(f"--encoder is for a UNet; --model {args.model} is {net}")
        return net
    return args.encoder


def cmd_train(args) -> int:
    if args.watch:
        return cmd_watch(args)
    if not 0 <= args.final_fit < 1:  # NaN too
        raise CliError("--final-fit must be a share of the budget: 0 (none) up to below 1")
    if args.out is None:
        raise CliError("give --out FILE (where the checkpoint goes), or --watch")
    fam = registry.family(args.model)
    if args.border_weight and not fam.semantic:
        raise CliError("--border-weight is for the class-per-pixel models")
    if args.ignore_unlabelled and not fam.semantic:
        raise CliError("--ignore-unlabelled is for --model unet (and fcn, deeplabv3: class-per-pixel models; "
                       "Mask R-CNN learns whole objects)")
    if args.ray is not None and args.resume:
        raise CliError("--ray starts a run; --resume continues a local one")
    if args.ray is not None and not fam.cluster:
        raise CliError(f"--ray: {fam.title} has no Ray path")
    encoder = _encoder(args)
    project = open_project(args)
    amp = False if args.no_amp else None
    if args.variant is not None and args.variant not in dict(fam.variants):
        raise CliError(f"--maskrcnn-version: {fam.title} has no versions")
    assert fam.train is not None and fam.train_config is not None  # a family that can TRAIN says how
    config, train = resolve(fam.train_config), resolve(fam.train)
    if fam.semantic:
        from segstudio.core.coverage import sparse_images
        warning = sparse_images(project).warning(args.ignore_unlabelled, "--ignore-unlabelled", "add")
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        cfg = config(epochs=args.epochs, minutes=args.minutes, val_fraction=args.val_fraction,
                     seed=args.seed, device=args.device, amp=amp, final_fit=args.final_fit,
                     ignore_unlabelled=args.ignore_unlabelled)
        if args.batch:
            cfg.batch = args.batch
        if args.crop:
            cfg.crop = args.crop
        if args.border_weight is not None:
            if not args.border_weight >= 0:  # NaN too
                raise CliError("--border-weight must be 0 (off) or more")
            cfg.border_weight = args.border_weight
        for key, val in (("width", args.width), ("depth", args.depth), ("up_mode", args.up), ("encoder", encoder)):
            if val is not None:
                cfg.unet[key] = val
        cfg.pretrained = not args.no_pretrained
        if args.ray is not None:
            return _train_on_ray(args, project, cfg)
        res = train(project, args.out, cfg, progress=_printer(args.json), resume=args.resume)
    else:
        mcfg = config(epochs=args.epochs, minutes=args.minutes, val_fraction=args.val_fraction,
                      seed=args.seed, device=args.device, amp=amp, weights=args.weights, final_fit=args.final_fit,
                      version=args.variant or fam.variants[0][0])
        if args.batch:
            mcfg.batch = args.batch
        if args.ray is not None:
            return _train_on_ray(args, project, mcfg)
        res = train(project, args.out, mcfg, progress=_printer(args.json))
    d = {"best": res.best_path, "last": res.last_path, "metrics": res.best_metrics, "stopped": res.stopped,
         "seconds": round(res.seconds, 1), "device": res.device, "start": res.start,
         "train_images": len(res.train_images), "val_images": len(res.val_images),
         "validated_on": len(res.validated_on), "epochs": len(res.history),
         "steps": res.history[-1]["step"] if res.history else 0, "final_fit": _final_summary(res.final_fit)}
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(f"trained {res.arch} from {res.start} on {res.device}: {len(res.history)} epochs, {d['steps']} steps, "
              f"{res.seconds:.0f} s, stopped by {res.stopped}")
        ff = res.final_fit
        if ff is not None and not ff.get("cancelled"):
            fit = [h for h in res.history if h.get("stage") != "final fit"]
            print(f"  fit: {len(fit)} epochs, {fit[-1]['step'] if fit else 0} steps on "
                  f"{len(res.train_images) - len(res.validated_on)} images, validated on {len(res.validated_on)}")
            print(f"  final fit on all {len(ff['images'])} images from epoch {ff['from_epoch']}'s weights: "
                  f"{ff['epochs']} epochs, {ff['steps']} steps, {ff['seconds']:.0f} s (no validation)")
            label = "validation before the final fit"
        else:
            print(f"  train images {len(res.train_images)}, validation images {len(res.val_images)}")
            label = "best"
        for k, v in res.best_metrics.items():
            if isinstance(v, float):
                print(f"  {label} {k}: {v:.4f}")
        print(f"  best checkpoint: {res.best_path}\n  last checkpoint: {res.last_path}")
    return 0


def _final_summary(ff: dict | None) -> dict | None:
    """The final fit for --json: its counts, not its image list."""
    if ff is None:
        return None
    return {"images": len(ff["images"]), "epochs": ff["epochs"], "steps": ff["steps"],
            "seconds": round(ff["seconds"], 1), "from_epoch": ff["from_epoch"], "cancelled": bool(ff.get("cancelled"))}


def _train_on_ray(args, project, cfg) -> int:
    from segstudio.inference.cluster.train import train_on_ray
    res = train_on_ray(project, cfg, args.out, args.ray, args.workers, args.gpus)
    d = {k: res[k] for k in ("arch", "best", "last", "metrics", "epochs", "workers", "seconds")}
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        print(f"trained {res['arch']} on Ray with {res['workers']} workers: {res['epochs']} epochs, "
              f"{res['seconds'] or 0:.0f} s")
        for k, v in res["metrics"].items():
            if isinstance(v, float):
                print(f"  best {k}: {v:.4f}")
        print(f"  best checkpoint: {res['best']}\n  last checkpoint: {res['last']}")
    return 0


def cmd_evaluate(args) -> int:
    from segstudio.core.records import parse_statuses
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, read_checkpoint
    from segstudio.inference.training.evaluate import evaluate_project
    project = open_project(args)
    ck = read_checkpoint(args.weights)
    fams = registry.of_checkpoint(ck.arch)
    if not fams:
        raise CliError(f"{args.weights}: no model family reads {ck.arch!r} checkpoints")
    seg = load_segmenter(ModelSpec(fams[0].key, args.weights, args.device, score_threshold=0.05, tta=args.tta),
                         project)
    ids = None
    if args.split:
        paths = ck.training.get(f"{args.split}_images") or []
        if not paths and args.split == "val" and ck.training.get("final_fit"):
            raise CliError("the checkpoint's final fit learnt from every image, its validation images too: "
                           "no image is held out from it (its validation figures were measured before the "
                           "final fit; hold images out by leaving them not done, or train with --final-fit 0)")
        if not paths:
            raise CliError(f"the checkpoint records no {args.split} images")
        recs = [project.store.image_by_path(p) for p in paths]
        ids = [r.id for r in recs if r is not None]
    rep = evaluate_project(project, seg, parse_statuses(args.status), image_ids=ids)
    d = {"kind": rep.kind, "images": rep.images, "metrics": rep.metrics,
         "errors": [{"path": p, "error": e} for p, e in rep.errors]}
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"{rep.kind} evaluation of {args.weights} on {rep.images} images")
    m = rep.metrics
    if rep.kind == "semantic":
        print(f"  pixel accuracy {m['pixel_accuracy']:.4f}   mean IoU {m['mean_iou']:.4f}   "
              f"foreground IoU {m['foreground_iou'] if m['foreground_iou'] is not None else float('nan'):.4f}")
        for name, v in m["per_class_iou"].items():
            print(f"  IoU {name:<20} {'-' if v is None else f'{v:.4f}'}")
    else:
        for k in ("mask_AP", "mask_AP50", "mask_AP75"):
            print(f"  {k:<10} {m[k] if m[k] is not None else float('nan'):.4f}")
        print(f"  instances {m.get('instances')}, detections {m.get('detections')}")
    for p, e in rep.errors[:20]:
        print(f"  error: {p}: {e}")
    return 0
