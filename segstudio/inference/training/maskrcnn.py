"""Mask R-CNN fine-tuning on the project's done images.

The box and mask predictor heads are replaced for the project's classes. The rest starts from
COCO weights when torchvision has them, otherwise from the user's checkpoint, otherwise from
scratch; the result says which. Horizontal flips; SGD with momentum; mixed precision on CUDA;
mask AP (COCOeval) on the validation images picks the best checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar, Callable, Sequence

import numpy as np
import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from segstudio.core.project import Project
from segstudio.inference.runtime.checkpoint import Checkpoint, load_checkpoint
from segstudio.inference.runtime.device import choose_device
from segstudio.inference.runtime.pretrained import WeightsUnavailable
from segstudio.inference.training.evaluate import instance_metrics
from segstudio.inference.maskrcnn.model import (COCO_CATEGORIES, build_maskrcnn, coco_state_dict,
                                          model_from_checkpoint)
from segstudio.inference.runtime.preprocess import normalize
from segstudio.inference.training.common import (Budget, FinalFit, LoopState, TrainingError, TrainProgress,
                                              TrainResult, Validation, amp_context, checkpoint_paths, cosine_lr,
                                              image_lists, run_training, seed_everything, split_images,
                                              training_classes)


@dataclass
class MaskRCNNTrainConfig:
    # under DistributedDataParallel (cluster/train.py): a batch without positive proposals leaves
    # the mask head without gradients (a class attribute, not a setting)
    ddp_find_unused_parameters: ClassVar[bool] = True
    epochs: int | None = None
    minutes: float | None = None
    steps: int | None = None  # stop after this many steps (a quick fine-tune)
    batch: int = 2
    lr: float = 0.005
    val_fraction: float = 0.2
    seed: int = 0
    patience: int = 8  # epochs without a better validation score before stopping (epoch budgets only)
    final_fit: float = 0.2  # share of the budget for a final fit on every image (see UNetTrainConfig)
    keep: str = "best"  # or "last": the latest epoch is the checkpoint (see UNetTrainConfig.keep)
    device: str = "auto"
    amp: bool | None = None
    version: str = "v2"
    weights: str | None = None  # a checkpoint to start from (else COCO, else scratch)
    download: bool = True
    min_size: int = 800
    max_size: int = 1333


def replace_heads(model, num_classes: int) -> None:
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    in_ch = model.roi_heads.mask_predictor.conv5_mask.in_channels
    model.roi_heads.mask_predictor = MaskRCNNPredictor(in_ch, 256, num_classes)


def start_model(cfg: MaskRCNNTrainConfig, num_classes: int, names: list[str], note: str = "checkpoint"):
    """The model to fine-tune and a note of where its weights came from."""
    kw = {"min_size": cfg.min_size, "max_size": cfg.max_size}
    if cfg.weights:
        from segstudio.inference.maskrcnn.versions import from_state_dict  # torchvision's own files, too
        ck = load_checkpoint(cfg.weights, expect_arch="maskrcnn", plain=from_state_dict)
        model = model_from_checkpoint(ck, **kw)
        if ck.classes != names:
            replace_heads(model, num_classes)
        return model, f"{note} {Path(cfg.weights).name}", ck.config.get("version", "v2")
    try:
        sd = coco_state_dict(cfg.version, download=cfg.download, progress=False)
        model = build_maskrcnn(cfg.version, len(COCO_CATEGORIES), **kw)
        model.load_state_dict(sd)
        replace_heads(model, num_classes)
        return model, f"COCO weights (Mask R-CNN {cfg.version})", cfg.version
    except WeightsUnavailable as e:
        model = build_maskrcnn(cfg.version, num_classes, **kw)
        return model, f"scratch: {e}", cfg.version


def _targets(project: Project, image_id: int, value_of: dict):
    rec = project.store.image(image_id)
    img = project.load_image(rec)
    h, w = img.shape[:2]
    masks, labels, boxes = [], [], []
    for r in project.store.regions(image_id):
        v = value_of.get(r.class_id)
        if v is None or r.iscrowd or r.empty:
            continue
        m = r.full_mask(w, h)
        masks.append(m)
        labels.append(v)
        boxes.append([r.x, r.y, r.x + r.mask.shape[1], r.y + r.mask.shape[0]])
    x = normalize(img)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    return rec.path, np.ascontiguousarray(x.transpose(2, 0, 1)), masks, labels, boxes


def train_maskrcnn(project: Project, out: str | Path | None = None, cfg: MaskRCNNTrainConfig | None = None,
                   progress: Callable[[TrainProgress], None] | None = None, cancel: Callable[[], bool] | None = None,
                   image_ids: Sequence[int] | None = None, val_ids: Sequence[int] | None = None,
                   init: str | Path | None = None, *,
                   wrap_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None, rank: int = 0,
                   register: bool = True) -> TrainResult:
    """Fine-tune Mask R-CNN. `init` warm-starts from a checkpoint's weights (what `cfg.weights`
    does: heads replaced when its classes differ), with a fresh optimizer and epoch count.
    `wrap_model`, `rank`, `register`: data-parallel training, as for train_unet (ray_train)."""
    cfg = cfg or MaskRCNNTrainConfig()
    start_word = "checkpoint"
    if init is not None:
        if cfg.weights and Path(cfg.weights) != Path(init):
            raise TrainingError("give either init or cfg.weights as the starting checkpoint, not both")
        cfg, start_word = replace(cfg, weights=str(init)), "warm start from"
    rng = seed_everything(cfg.seed)
    dev = choose_device(cfg.device, cfg.amp)
    names, value_of, k = training_classes(project)
    train_ids, val_ids = split_images(project, cfg.val_fraction, cfg.seed, None, image_ids, val_ids)
    best_path, last_path = checkpoint_paths(project, "maskrcnn", out)
    train = [t for t in (_targets(project, i, value_of) for i in train_ids) if t[2]]
    val = [_targets(project, i, value_of) for i in val_ids]
    if not train:
        raise TrainingError("no instance regions on the training images")
    model, start_note, version = start_model(cfg, k, names, start_word)
    model.to(dev.device).train()
    net = wrap_model(model) if wrap_model is not None else model  # trains; `model` validates and is saved
    if rank:  # each worker its own shuffles and flips
        rng = np.random.default_rng(cfg.seed + 7919 * rank)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=1e-4)
    use_amp = dev.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    budget = Budget(cfg.epochs if cfg.steps is None else None, cfg.minutes, cancel, steps=cfg.steps)
    state = LoopState()
    summary = {"arch": "maskrcnn", "classes": names, "train_images": [t[0] for t in train],
               "val_images": [t[0] for t in val], "config": asdict(cfg), "device": dev.describe(),
               "start": start_note}

    def make_ckpt(metrics):
        images = image_lists(summary["train_images"], summary["val_images"], state)
        return Checkpoint("maskrcnn", {"version": version, "num_classes": k}, names,
                          {n: v.detach().cpu() for n, v in model.state_dict().items()}, {"mode": "unit"},
                          {**summary, **images, "metrics": metrics, "history": state.history,
                           "final_fit": state.final_fit, "seconds": budget.elapsed})

    def to_dev(item, flip: bool):
        _, x, masks, labels, boxes = item
        xt = torch.from_numpy(x.copy())
        mt = torch.from_numpy(np.stack(masks).astype(np.uint8))
        bt = torch.tensor(boxes, dtype=torch.float32)
        if flip:
            w = x.shape[2]
            xt, mt = xt.flip(-1), mt.flip(-1)
            bt = torch.stack([w - bt[:, 2], bt[:, 1], w - bt[:, 0], bt[:, 3]], dim=1)
        return xt.to(dev.device), {"boxes": bt.to(dev.device), "labels": torch.tensor(labels, device=dev.device),
                                   "masks": mt.to(dev.device)}

    steps_per_epoch = max(1, len(train) // cfg.batch)

    def epoch_batches(items=train, steps=steps_per_epoch):
        # a generator: the shuffle and the flips are drawn as the loop asks for each batch
        order = rng.permutation(len(items))
        for s in range(steps):
            yield [to_dev(items[j], bool(rng.random() < 0.5)) for j in order[s * cfg.batch:(s + 1) * cfg.batch]]

    # the final fit on every image: the validation images with instances join the training ones
    seen = {t[0] for t in train}
    every = train + [t for t in val if t[2] and t[0] not in seen]
    final = None
    if cfg.final_fit > 0 and len(every) > len(train):
        final = FinalFit([t[0] for t in every], max(1, len(every) // cfg.batch),
                         lambda: epoch_batches(every, max(1, len(every) // cfg.batch)),
                         lambda path: model.load_state_dict(load_checkpoint(path, expect_arch="maskrcnn").state_dict),
                         cfg.final_fit)

    def loss(batch) -> torch.Tensor:
        with amp_context(dev.type, use_amp):
            loss_dict = net([b[0] for b in batch], [b[1] for b in batch])
            return sum(loss_dict.values())

    def validation() -> Validation:
        metrics = _validate(model, val, k)
        score = metrics.get("mask_AP") or 0.0
        return Validation(metrics, score, {"val_mask_AP": score})

    run_training(budget=budget, state=state, steps_per_epoch=steps_per_epoch, batches=epoch_batches, loss=loss,
                 opt=opt, scaler=scaler, validate=validation, make_checkpoint=make_ckpt, best_path=best_path,
                 last_path=last_path, patience=cfg.patience, progress=progress, latest_is_best=cfg.keep == "last",
                 # the rate falls along a time or epoch budget; a step budget (a quick fine-tune) keeps it
                 lr_schedule=cosine_lr(cfg.lr) if cfg.steps is None else None, final_fit=final,
                 images=(len(train), len(val)))
    best_metrics = state.best_metrics
    m = {"mask_AP": best_metrics.get("mask_AP")}
    if register:
        project.store.add_model(str(last_path), "maskrcnn", m)
        project.store.add_model(str(best_path), "maskrcnn", m)
    images = image_lists(summary["train_images"], summary["val_images"], state, result=True)
    return TrainResult("maskrcnn", str(best_path), str(last_path), best_metrics, state.history, state.stopped,
                       budget.elapsed, dev.describe(), images["train_images"], images["val_images"], start_note,
                       images["validated_on"], state.final_fit)


@torch.inference_mode()
def _validate(model, val, k: int) -> dict:
    if not val:
        return {}
    model.eval()
    gt, dt = {}, {}
    dev = next(model.parameters()).device
    for n, (_path, x, masks, labels, _boxes) in enumerate(val):
        out = model([torch.from_numpy(x).to(dev)])[0]
        gt[n] = [(lab, m, False) for lab, m in zip(labels, masks, strict=True)]
        pm = (out["masks"][:, 0] > 0.5).cpu().numpy()
        dt[n] = [(int(lab), m, float(s)) for lab, m, s in zip(out["labels"].cpu().numpy(), pm,
                                                               out["scores"].cpu().numpy(), strict=True)]
    model.train()
    return instance_metrics(gt, dt, k)
