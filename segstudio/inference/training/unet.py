"""UNet training on the project's done images.

Random crops with flips, 90-degree rotations, scale and intensity jitter; the same 16-bit aware
normalisation as prediction; class weighting from pixel frequencies; cross-entropy + Dice loss;
a validation split for choosing the best checkpoint and early stopping; mixed precision on CUDA
(float16) and on CPUs with bfloat16 in hardware; optionally the U-Net paper's border weight map;
seeded. Best and last checkpoints are written (the last one can be resumed).

Sparse labels (scribbles): with `ignore_unlabelled` the pixels no region covers get the ignore
value, so the loss learns only from what was painted; background is then painted with a class
named "background" (label 0, not a class of the model).
"""

from __future__ import annotations

import math
import queue
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segstudio.core.labelmap import paint_label_map
from segstudio.core.project import Project
from segstudio.inference.runtime.checkpoint import Checkpoint, load_checkpoint
from segstudio.inference.runtime.device import choose_device
from segstudio.inference.training.evaluate import confusion, semantic_metrics
from segstudio.inference.runtime.preprocess import DEFAULT_NORMALIZATION, normalize
from segstudio.inference.runtime.tiling import predict_tiled
from segstudio.inference.training.common import (Budget, FinalFit, LoopState, TrainingError, TrainProgress,
                                              TrainResult, Validation, amp_context, checkpoint_paths, cosine_lr,
                                              cpu_bf16_native, image_lists, run_training, seed_everything,
                                              split_images, training_classes)
from segstudio.inference.semantic.nets import SemanticNet, build_semantic_net, init_pretrained
from segstudio.inference.semantic.spec import DEFAULT_UNET
from segstudio.inference.semantic.unet import UNetConfig
from segstudio.inference.training.weight_maps import border_weight_map

IGNORE = 255


@dataclass
class UNetTrainConfig:
    epochs: int | None = None
    minutes: float | None = None
    batch: int = 4
    crop: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    patience: int = 15  # epochs without a better validation score before stopping (epoch budgets only)
    # share of the budget (time, or epochs) for a final fit on every image, validation images
    # included, after the validated fit (common.FinalFit); 0 = none (the live learner)
    final_fit: float = 0.2
    # "best": the checkpoint is the epoch that validated best; "last": the latest epoch (learning
    # while annotating: one or two validation images are too few to pick by, and a score that
    # stays flat would keep the first epoch of every update)
    keep: str = "best"
    device: str = "auto"
    # mixed precision: None = float16 on CUDA, bfloat16 on a CPU that computes it natively
    amp: bool | None = None
    class_weighting: bool = True
    dice_weight: float = 0.5
    # the U-Net paper's border weight map (w0, sigma in pixels): 0 = off
    border_weight: float = 0.0
    border_sigma: float = 5.0
    steps_per_epoch: int | None = None
    # sparse (scribble) labels: pixels under no region are ignored instead of learned as background
    ignore_unlabelled: bool = False
    unet: dict = field(default_factory=lambda: dict(DEFAULT_UNET))
    # the network is unet["encoder"] ("plain", a ResNet-UNet, FCN or DeepLabV3: semantic_spec);
    # a fresh one (not resume / init) starts from pretrained weights when there are any
    pretrained: bool = True
    download: bool = True  # fetch missing pretrained weights (else only the torch cache is looked in)


@dataclass
class _Item:
    path: str
    image: np.ndarray  # float32 (H, W, C) normalised
    label: np.ndarray  # uint8 (H, W): 0 background, 1..K-1 classes, 255 ignore
    weight: np.ndarray | None = None  # float32 (H, W) per-pixel loss weights (the border map)


def load_items(project: Project, ids: Sequence[int], value_of: dict, channels: int,
               ignore_unlabelled: bool = False, border: tuple[float, float] | None = None) -> list[_Item]:
    """The images normalised and their label maps painted; with `border` = (w0, sigma) the
    border weight map of each label map too."""
    items = []
    for i in ids:
        rec = project.store.image(i)
        img = project.load_image(rec)
        h, w = img.shape[:2]
        regions = project.store.regions(i)
        label = paint_label_map(regions, w, h, value_of, np.uint8)
        if ignore_unlabelled:
            covered = paint_label_map(regions, w, h, {cid: 1 for cid in value_of}, np.uint8)
            label[covered == 0] = IGNORE
        x = normalize(img, DEFAULT_NORMALIZATION)
        if x.ndim == 2:
            x = x[:, :, None]
        if channels == 3 and x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        elif channels == 1 and x.shape[2] == 3:
            x = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
        weight = border_weight_map(label, border[0], border[1], IGNORE) if border else None
        items.append(_Item(rec.path, np.ascontiguousarray(x, dtype=np.float32), label, weight))
    return items


def image_channels(project: Project, ids: Sequence[int]) -> int:
    """1 when every training image is grayscale, else 3."""
    for i in ids[:20]:
        if project.load_image(project.store.image(i)).ndim == 3:
            return 3
    return 1


def elastic(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, alpha: float = 10.0,
            grid: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random deformation (a coarse displacement grid, upsampled), as the U-Net paper
    trains with: cheap variety for few images."""
    h, w = y.shape
    d = rng.normal(0, alpha, (2, grid, grid)).astype(np.float32)
    dx = cv2.resize(d[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(d[1], (w, h), interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + dx, gy + dy
    xo = cv2.remap(x, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    yo = cv2.remap(y, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
    return (xo if xo.ndim == 3 else xo[:, :, None]), yo


def sample_batch(items: list[_Item], rng: np.random.Generator, batch: int,
                 crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random crops with flips, rot90, scale 0.8-1.25, elastic deformation and
    brightness/contrast/gamma jitter: (images, labels, per-pixel weights or None)."""
    xs, ys, ws = [], [], []
    for _ in range(batch):
        it = items[rng.integers(len(items))]
        image = it.image if it.weight is None else np.concatenate([it.image, it.weight[:, :, None]], axis=2)
        s = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        h, w = it.label.shape
        src = max(8, int(round(crop / s)))
        ch, cw = min(src, h), min(src, w)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        x = image[y0:y0 + ch, x0:x0 + cw]  # the weight map rides along as a last channel
        y = it.label[y0:y0 + ch, x0:x0 + cw]
        if (ch, cw) != (crop, crop):
            x = cv2.resize(x, (crop, crop), interpolation=cv2.INTER_LINEAR)
            y = cv2.resize(y, (crop, crop), interpolation=cv2.INTER_NEAREST)
            if x.ndim == 2:
                x = x[:, :, None]
        if rng.random() < 0.5:
            x, y = elastic(np.ascontiguousarray(x), np.ascontiguousarray(y), rng, alpha=crop / 24)
        k = int(rng.integers(4))
        x, y = np.rot90(x, k), np.rot90(y, k)
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        if it.weight is not None:  # geometry done: the weights leave before the intensity jitter
            ws.append(np.ascontiguousarray(x[:, :, -1], dtype=np.float32))
            x = x[:, :, :-1]
        gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-0.1, 0.1)
        x = x * gain + bias
        if rng.random() < 0.3:
            x = np.clip(x, 0, None) ** rng.uniform(0.7, 1.4)
        xs.append(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))
        ys.append(np.ascontiguousarray(y))
    return np.stack(xs), np.stack(ys), (np.stack(ws) if len(ws) == len(xs) else None)


class BatchPrefetcher:
    """Augmented batches made on a thread of their own (OpenCV and numpy let go of the GIL),
    so the device never waits for the CPU. One producer with its own seeded generator keeps the
    sequence deterministic. An error making a batch is raised again from `next()`: the training
    loop would otherwise wait forever for a batch that never comes."""

    def __init__(self, items, rng: np.random.Generator, batch: int, crop: int, depth: int = 4):
        import threading
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(items, rng, batch, crop), daemon=True)
        self.t.start()

    def _run(self, items, rng, batch, crop):
        while not self.stop.is_set():
            try:
                b = sample_batch(items, rng, batch, crop)
            except BaseException as e:  # noqa: BLE001 (handed to the training thread, which raises it)
                self._put(_Failed(e))
                return
            self._put(b)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self):
        if self.error is not None:
            raise self.error
        b = self.q.get()
        if isinstance(b, _Failed):
            self.error = b.error
            raise b.error
        return b

    def close(self) -> None:
        self.stop.set()
        self.t.join(timeout=5)


@dataclass
class _Failed:
    error: BaseException


def class_weights(items: list[_Item], k: int, rare: float = 0.05) -> torch.Tensor:
    """Weights for rare classes only: a class under `rare` of the pixels gets sqrt(rare / share)
    (at most 10); the others 1. Weighting common classes would trade pixel accuracy for nothing."""
    counts = np.zeros(k, np.float64)
    for it in items:
        v = it.label[it.label != IGNORE]
        counts += np.bincount(v.ravel(), minlength=k)[:k]
    share = counts / max(counts.sum(), 1)
    w = np.where(share < rare, np.sqrt(rare / np.maximum(share, 1e-6)), 1.0)
    return torch.tensor(np.minimum(w, 10.0), dtype=torch.float32)


def ce_loss(logits: torch.Tensor, target: torch.Tensor, k: int, weights: torch.Tensor | None = None,
            pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged over the pixels that are not ignored (weighted like PyTorch's
    mean reduction, by class and by pixel). A crop without one labelled pixel gives 0, not NaN:
    with sparse labels such crops happen."""
    per = F.cross_entropy(logits.float(), target, weight=weights, ignore_index=IGNORE, reduction="none")
    valid = (target != IGNORE).float()
    if weights is not None:
        valid = valid * weights[target.clamp(max=k - 1)]
    if pixel_weights is not None:
        per, valid = per * pixel_weights, valid * pixel_weights
    return per.sum() / valid.sum().clamp(min=1e-6)


def unet_loss(logits: torch.Tensor, target: torch.Tensor, k: int, weights: torch.Tensor | None = None,
              dice_weight: float = 0.5, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """What training minimises: cross-entropy plus `dice_weight` x Dice, both blind to IGNORE pixels."""
    loss = ce_loss(logits, target, k, weights, pixel_weights)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(logits, target, k)
    return loss


def dice_loss(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    probs = torch.softmax(logits.float(), dim=1)
    valid = (target != IGNORE).unsqueeze(1)
    t = F.one_hot(target.clamp(max=k - 1), k).permute(0, 3, 1, 2).float()
    probs, t = probs * valid, t * valid
    inter = (probs * t).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (denom + 1.0)).mean()


@torch.inference_mode()
def validate(model: SemanticNet, items: list[_Item], device, k: int, amp_ctx) -> dict:
    model.eval()
    conf = np.zeros((k, k), np.int64)
    for it in items:
        x = torch.from_numpy(it.image.transpose(2, 0, 1).copy()).to(device)

        def fwd(t):
            with amp_ctx():
                return model(t).float()
        logits = predict_tiled(x, fwd, k, tile=1024, overlap=64)
        pred = logits.argmax(0).cpu().numpy()
        conf += confusion(pred, it.label, k, ignore=IGNORE)
    model.train()
    return semantic_metrics(conf)


def train_unet(project: Project, out: str | Path | None = None, cfg: UNetTrainConfig | None = None,
               progress: Callable[[TrainProgress], None] | None = None, cancel: Callable[[], bool] | None = None,
               resume: str | Path | None = None, image_ids: Sequence[int] | None = None,
               val_ids: Sequence[int] | None = None, init: str | Path | None = None, *,
               wrap_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None, rank: int = 0,
               register: bool = True) -> TrainResult:
    """Train a UNet. `resume` continues a run from its -last checkpoint (optimizer, epoch count,
    history); `init` warm-starts a new run from a checkpoint's weights and UNetConfig, with a fresh
    optimizer and epoch count (the live-learning loop calls this again and again).

    Data-parallel training (ray_train): `wrap_model` wraps the network for the training steps
    (DistributedDataParallel), `rank` gives each worker its own random crops (the weights start
    the same everywhere), and `register=False` leaves the project's model list to the caller."""
    cfg = cfg or UNetTrainConfig()
    if resume is not None and init is not None:
        raise TrainingError("give either resume (continue a run) or init (warm-start a new run), not both")
    rng = seed_everything(cfg.seed)
    dev = choose_device(cfg.device, cfg.amp)
    names, value_of, k = training_classes(project, ignore_value=IGNORE, background_class=cfg.ignore_unlabelled)
    train_ids, val_ids = split_images(project, cfg.val_fraction, cfg.seed, None, image_ids, val_ids)
    best_path, last_path = checkpoint_paths(project, "unet", out)
    start_note = "random initialisation"
    start = None
    source = resume if resume is not None else init
    if source is not None:
        start = load_checkpoint(source, expect_arch="unet")
        if start.classes != names:
            verb = "resume" if resume is not None else "warm-start"
            raise TrainingError(f"cannot {verb}: the checkpoint's classes {start.classes} differ from the "
                                f"project's {names}")
        ucfg = UNetConfig.from_dict(start.config)
        start_note = f"{'resumed from' if resume is not None else 'warm start from'} {Path(source).name}"
    else:
        channels = image_channels(project, train_ids)
        ucfg = UNetConfig.from_dict({**cfg.unet, "in_channels": channels, "num_classes": k})
    border = (cfg.border_weight, cfg.border_sigma) if cfg.border_weight > 0 else None
    train_items = load_items(project, train_ids, value_of, ucfg.in_channels, cfg.ignore_unlabelled, border)
    val_items = load_items(project, val_ids, value_of, ucfg.in_channels, cfg.ignore_unlabelled)
    if cfg.ignore_unlabelled and not any((it.label != IGNORE).any() for it in train_items):
        raise TrainingError("no labelled pixels to learn from: every pixel of the training images is "
                            "unlabelled or of an ignore class")
    crop = min(cfg.crop, *(min(it.label.shape) for it in train_items))
    crop = max(16, crop - crop % 16)
    model = build_semantic_net(ucfg)
    if start is None and cfg.pretrained:  # ImageNet / COCO-VOC weights, or the note saying why not
        start_note = init_pretrained(model, cfg.download)
    model = model.to(dev.device)
    # float16 on CUDA (with the gradient scaler); bfloat16 on a CPU that has it in hardware (no
    # scaler needed: bfloat16 has float32's range)
    use_amp = (dev.type == "cuda" and dev.amp) or (dev.type == "cpu" and cfg.amp is not False and cpu_bf16_native())
    if use_amp:  # both run convolutions fastest on channels-last tensors
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = LoopState()
    if start is not None:
        model.load_state_dict(start.state_dict)
    if resume is not None and start is not None:
        r = start.resume
        if r.get("optimizer"):
            opt.load_state_dict(r["optimizer"])
        state = LoopState(epoch=int(r.get("epoch", 0)), step=int(r.get("step", 0)),
                          best_score=float(r.get("best_score", -1.0)),
                          history=list(start.training.get("history", [])))
        rng = np.random.default_rng(cfg.seed + 1000 * state.epoch)
    weights = class_weights(train_items, k).to(dev.device) if cfg.class_weighting else None
    pixels = sum(it.label.size for it in train_items)
    steps_per_epoch = cfg.steps_per_epoch or max(4, math.ceil(pixels / (crop * crop * cfg.batch)))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dev.type == "cuda")

    def amp_ctx():
        return amp_context(dev.type, use_amp)

    budget = Budget(cfg.epochs, cfg.minutes, cancel)
    summary = {"arch": "unet", "classes": names, "train_images": [it.path for it in train_items],
               "val_images": [it.path for it in val_items], "config": asdict(cfg),
               "device": dev.describe() + (" (bfloat16 mixed precision)" if use_amp and dev.type == "cpu" else ""),
               "start": start_note, "crop": crop, "steps_per_epoch": steps_per_epoch}

    def make_ckpt(metrics: dict) -> Checkpoint:
        images = image_lists(summary["train_images"], summary["val_images"], state)
        return Checkpoint("unet", ucfg.to_dict(), names, {k_: v.detach().cpu() for k_, v in model.state_dict().items()},
                          dict(DEFAULT_NORMALIZATION), {**summary, **images, "metrics": metrics,
                                                        "history": state.history, "final_fit": state.final_fit,
                                                        "epoch": state.epoch, "seconds": budget.elapsed},
                          resume={"optimizer": opt.state_dict(), "epoch": state.epoch, "step": state.step,
                                  "best_score": state.best_score})

    def loss(batch) -> torch.Tensor:
        xb, yb, wb = batch
        x = torch.from_numpy(xb).to(dev.device, non_blocking=True)
        if use_amp:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(yb).to(dev.device, non_blocking=True).long()
        w = torch.from_numpy(wb).to(dev.device, non_blocking=True) if wb is not None else None
        with amp_ctx():
            return unet_loss(net(x), y, k, weights, cfg.dice_weight, w)

    def validation() -> Validation:
        metrics = validate(model, val_items, dev.device, k, amp_ctx)
        score = metrics["mean_iou"] if metrics["mean_iou"] is not None else 0.0
        # no validation images: the figures are None (the score 0.0 only orders the epochs)
        return Validation(metrics, score, {"val_mean_iou": metrics["mean_iou"],
                                           "val_pixel_accuracy": metrics["pixel_accuracy"]})

    net = wrap_model(model) if wrap_model is not None else model  # trains; `model` validates and is saved
    model.train()
    if rank:
        rng = np.random.default_rng(cfg.seed + 7919 * rank + 1000 * state.epoch)
    batches = BatchPrefetcher(train_items, rng, cfg.batch, crop)
    final = _final_fit(cfg, train_items, val_items, crop, border, model, rank) if cfg.final_fit > 0 else None
    try:
        run_training(budget=budget, state=state, steps_per_epoch=steps_per_epoch,
                     batches=lambda: iter(batches.next, None), loss=loss, opt=opt, scaler=scaler,
                     validate=validation, make_checkpoint=make_ckpt, best_path=best_path, last_path=last_path,
                     patience=cfg.patience, progress=progress, lr_schedule=cosine_lr(cfg.lr),
                     latest_is_best=not val_items or cfg.keep == "last",  # no validation images: the latest
                     final_fit=final.fit if final is not None else None,
                     images=(len(train_items), len(val_items)))
    finally:
        batches.close()
        if final is not None:
            final.close()
    best_metrics = state.best_metrics
    store_metrics = {"mean_iou": best_metrics.get("mean_iou"), "pixel_accuracy": best_metrics.get("pixel_accuracy")}
    if register:
        project.store.add_model(str(last_path), "unet", store_metrics)
        project.store.add_model(str(best_path), "unet", store_metrics)
    images = image_lists(summary["train_images"], summary["val_images"], state, result=True)
    return TrainResult("unet", str(best_path), str(last_path), best_metrics, state.history, state.stopped,
                       budget.elapsed, summary["device"], images["train_images"], images["val_images"], start_note,
                       images["validated_on"], state.final_fit)


class _FinalBatches:
    """The final fit's batches over every image: its prefetch thread starts when the final fit
    does (not beside the fit's), with a generator of its own."""

    def __init__(self, items: list[_Item], seed: int, batch: int, crop: int, model: torch.nn.Module):
        self.items, self.seed, self.batch, self.crop, self.model = items, seed, batch, crop, model
        self.prefetcher: BatchPrefetcher | None = None
        pixels = sum(it.label.size for it in items)
        self.fit = FinalFit([it.path for it in items], 0, self.batches, self.restore)
        self.pixels = pixels

    def batches(self):
        if self.prefetcher is None:
            self.prefetcher = BatchPrefetcher(self.items, np.random.default_rng(self.seed), self.batch, self.crop)
        return iter(self.prefetcher.next, None)

    def restore(self, path: Path) -> None:
        self.model.load_state_dict(load_checkpoint(path, expect_arch="unet").state_dict)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()


def _final_fit(cfg: UNetTrainConfig, train_items: list[_Item], val_items: list[_Item], crop: int,
               border: tuple[float, float] | None, model: torch.nn.Module, rank: int) -> _FinalBatches | None:
    """The final fit on every image when the run validates on images of its own (None when it
    validates on its training images, or on none)."""
    seen = {it.path for it in train_items}
    extra = [it for it in val_items if it.path not in seen]
    if not extra:
        return None
    if border is not None:  # validation items were loaded without the border weight map
        extra = [_Item(it.path, it.image, it.label, border_weight_map(it.label, border[0], border[1], IGNORE))
                 for it in extra]
    items = train_items + extra
    f = _FinalBatches(items, cfg.seed + 31337 + 7919 * rank, cfg.batch, crop, model)
    f.fit.steps_per_epoch = cfg.steps_per_epoch or max(4, math.ceil(f.pixels / (crop * crop * cfg.batch)))
    f.fit.share = cfg.final_fit
    return f
