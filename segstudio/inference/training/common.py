"""What UNet training and Mask R-CNN fine-tuning share: the image split, seeding, the time
budget, the training loop itself (steps, validation, best/last checkpoints, early stopping),
progress reports, where checkpoints go."""

from __future__ import annotations

import random
import time
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch

from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.inference.runtime.priority import PROMPTS
from segstudio.inference.runtime.checkpoint import Checkpoint, is_segstudio_checkpoint, save_checkpoint


class TrainingError(UserError):
    """Training cannot start (no annotated images, no classes...); the message says why."""


@dataclass
class TrainResult:
    arch: str
    best_path: str | None
    last_path: str | None
    best_metrics: dict
    history: list[dict]
    stopped: str  # "epochs" | "time" | "steps" | "early stopping" | "cancelled"
    seconds: float
    device: str
    train_images: list[str] = field(default_factory=list)
    val_images: list[str] = field(default_factory=list)
    start: str = ""  # what the weights started from


def seed_everything(seed: int, deterministic: bool = True) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def training_classes(project: Project, ignore_value: int | None = None,
                     background_class: bool = False) -> tuple[list[str], dict, int]:
    """(class names, {class id: label 1..N (ignore classes: ignore_value, or left out)}, N + 1).

    With `background_class` (sparse labels, where unlabelled pixels teach nothing) a class named
    background / _background_ / bg is how background is painted: its pixels get label 0 and it is
    not one of the classes the model learns."""
    from segstudio.core.classes import BACKGROUND_NAMES
    from segstudio.inference.training.evaluate import project_classes
    real, ignore_ids = project_classes(project)
    background = [c for c in real if c.name.strip().lower() in BACKGROUND_NAMES] if background_class else []
    real = [c for c in real if c not in background]
    if not real:
        raise TrainingError("the project has no classes to learn")
    value_of = {c.id: i for i, c in enumerate(real, start=1)}
    value_of.update({c.id: 0 for c in background})
    if ignore_value is not None:
        value_of.update({cid: ignore_value for cid in ignore_ids})
    return [c.name for c in real], value_of, len(real) + 1


def split_images(project: Project, val_fraction: float, seed: int, statuses: Sequence[str] = (DONE,),
                 image_ids: Sequence[int] | None = None, val_ids: Sequence[int] | None = None):
    """Annotated images split into train and validation (seeded; at least one of each when there
    are two images or more; with one image, it serves both and the result says so)."""
    store = project.store
    ids = list(image_ids) if image_ids is not None else store.image_ids(statuses=statuses)
    ids = [i for i in ids if store.region_count(i) > 0 or i in (val_ids or ())]
    if not ids:
        raise TrainingError("no annotated images to learn from: mark corrected images 'done' "
                            "(Ctrl+Enter) or import annotations")
    if val_ids is not None:
        val = [i for i in val_ids]
        train = [i for i in ids if i not in set(val)]
        return train, val
    rng = np.random.default_rng(seed)
    order = list(ids)
    rng.shuffle(order)
    if len(order) == 1:
        return order, order
    n_val = min(len(order) - 1, max(1, int(round(len(order) * val_fraction)))) if val_fraction > 0 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


class Budget:
    """Epochs or minutes, whichever the user gave, and at most `steps` steps; a cancel check."""

    def __init__(self, epochs: int | None, minutes: float | None, cancel: Callable[[], bool] | None,
                 steps: int | None = None):
        if epochs is None and minutes is None:
            epochs = 20
        self.epochs, self.minutes, self.cancel, self.steps = epochs, minutes, cancel, steps
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def out_of_time(self) -> bool:
        return self.minutes is not None and self.elapsed >= self.minutes * 60

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel()

    def epochs_done(self, epoch: int) -> bool:
        return self.epochs is not None and epoch >= self.epochs

    def steps_done(self, step: int) -> bool:
        return self.steps is not None and step >= self.steps


def amp_context(device_type: str, use_amp: bool):
    """Mixed precision when it is on: float16 autocast on CUDA, bfloat16 on a CPU (only asked for
    where the CPU computes bfloat16 natively, see `cpu_bf16_native`); otherwise full precision."""
    if use_amp and device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if use_amp and device_type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cuda" if device_type == "cuda" else "cpu", enabled=False)


@cache
def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bfloat16 convolutions in hardware on this CPU (AVX512-BF16 or AMX).
    There, bfloat16 autocast with channels-last tensors trains a UNet about twice as fast; on
    other CPUs bfloat16 is emulated and slower than float32."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:  # torch has no public probe; Linux names the instruction sets in /proc/cpuinfo
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # macOS, Windows: stay in float32
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def optimizer_step(opt, scaler, loss) -> float:
    """One update through the gradient scaler (a no-op scaler without mixed precision)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return float(loss.detach())


def checkpoint_paths(project: Project, arch: str, out: str | Path | None) -> tuple[Path, Path]:
    """(best, last): `out` and `out`-last, or timestamped files in the project's models folder.

    Saving replaces these files, so an existing file that is not a segstudio checkpoint (a typo'd
    --out naming an image, a notes file...) is refused here, before any training time is spent."""
    if out is not None:
        out = Path(out)
        paths = out, out.with_name(out.stem + "-last" + (out.suffix or ".pt"))
        for p in paths:
            if p.is_dir():
                raise TrainingError(f"{p} is a folder: name a checkpoint file to write")
            if p.exists() and not is_segstudio_checkpoint(p):
                raise TrainingError(f"{p} exists and is not a segstudio checkpoint: not overwriting it "
                                    "(choose another file name, or move that file away)")
        return paths
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = project.models_dir
    return d / f"{arch}-{stamp}.pt", d / f"{arch}-{stamp}-last.pt"


@dataclass(frozen=True)
class TrainProgress:
    """One report from the training loop: after each step ("train") and after each epoch's
    validation ("val"). `epochs` / `minutes` are the budget, for a progress bar."""
    phase: Literal["train", "val"]
    epoch: int  # "train": epochs finished before this step; "val": the epoch just validated (1-based)
    step: int  # steps done in the whole run
    loss: float  # "train": this step's loss; "val": the epoch's mean loss
    elapsed: float  # seconds
    steps_per_epoch: int
    epochs: int | None
    minutes: float | None
    # "val" only: the history entry's validation figures (val_mean_iou and val_pixel_accuracy,
    # or val_mask_AP), the score that picks the best checkpoint, and the best score so far
    val: Mapping[str, float | None] = field(default_factory=dict)
    score: float | None = None
    best: float | None = None


@dataclass
class Validation:
    """What a trainer's validate function found after an epoch."""
    metrics: dict  # everything measured: becomes best_metrics and goes into the checkpoint
    score: float  # higher is better; picks the best checkpoint and drives early stopping
    report: dict  # the val_* figures for the history entry and the progress report


@dataclass
class LoopState:
    """The loop's counters; a trainer's make-checkpoint function reads them (resume data)."""
    epoch: int = 0
    step: int = 0
    best_score: float = -1.0
    history: list[dict] = field(default_factory=list)
    since_best: int = 0
    best_metrics: dict = field(default_factory=dict)
    stopped: str = "epochs"


def cosine_lr(lr: float, epochs: int | None, minutes: float | None) -> Callable[[float, float], float] | None:
    """The learning rate along a cosine over the budget (the minutes, else the planned epochs),
    from `lr` down to 5 % of it, as (epochs done, seconds elapsed) -> lr; None without a budget
    to fall over (a constant rate)."""
    if not minutes and not epochs:
        return None

    def at(epochs_done: float, elapsed: float) -> float:
        frac = elapsed / (minutes * 60) if minutes else epochs_done / (epochs or 1)
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
    return at


def run_training(*, budget: Budget, state: LoopState, steps_per_epoch: int, batches: Callable[[], Iterable[Any]],
                 loss: Callable[[Any], torch.Tensor], opt, scaler, validate: Callable[[], Validation],
                 make_checkpoint: Callable[[dict], Checkpoint], best_path: Path, last_path: Path, patience: int,
                 progress: Callable[[TrainProgress], None] | None = None,
                 lr_schedule: Callable[[float, float], float] | None = None,
                 latest_is_best: bool = False) -> LoopState:
    """The epoch loop both trainers run: `batches()` gives an epoch's batches (drawn lazily, one
    per step), `loss(batch)` the loss to minimise; each epoch ends with `validate()`, the best
    checkpoint is saved when the score improves (every epoch with `latest_is_best`), and the
    loop stops on the budget (epochs, minutes, steps), on cancel, or after `patience` epochs
    without improvement. The last checkpoint is saved at the end, and the best too when no
    epoch finished. Returns `state`, whose `stopped` says why it ended."""
    def report(p: TrainProgress) -> None:
        if progress is not None:
            progress(p)

    while True:
        if budget.epochs_done(state.epoch):
            state.stopped = "epochs"
            break
        losses: list[float] = []
        epoch_batches = iter(batches())
        for i in range(steps_per_epoch):
            if budget.cancelled():
                state.stopped = "cancelled"
                break
            if budget.out_of_time():
                state.stopped = "time"
                break
            if budget.steps_done(state.step):
                state.stopped = "steps"
                break
            # a click answered meanwhile on another thread goes first; the wait is not training time
            budget.t0 += PROMPTS.pause_point()
            if lr_schedule is not None:
                lr = lr_schedule(state.epoch + i / steps_per_epoch, budget.elapsed)
                for g in opt.param_groups:
                    g["lr"] = lr
            losses.append(optimizer_step(opt, scaler, loss(next(epoch_batches))))
            state.step += 1
            report(TrainProgress("train", state.epoch, state.step, losses[-1], budget.elapsed, steps_per_epoch,
                                 budget.epochs, budget.minutes))
        if losses:
            state.epoch += 1
            v = validate()
            entry = {"epoch": state.epoch, "step": state.step, "loss": float(np.mean(losses)), **v.report,
                     "elapsed": budget.elapsed}
            state.history.append(entry)
            if v.score > state.best_score or latest_is_best:
                state.best_score, state.best_metrics, state.since_best = v.score, v.metrics, 0
                save_checkpoint(make_checkpoint(v.metrics), best_path)
            else:
                state.since_best += 1
            report(TrainProgress("val", state.epoch, state.step, entry["loss"], entry["elapsed"], steps_per_epoch,
                                 budget.epochs, budget.minutes, dict(v.report), v.score, state.best_score))
        if state.stopped == "epochs" and budget.steps_done(state.step):
            state.stopped = "steps"  # the step budget ran out exactly at the end of an epoch
        if state.stopped != "epochs":
            break
        if state.since_best >= patience:
            state.stopped = "early stopping"
            break
    save_checkpoint(make_checkpoint(state.best_metrics), last_path)
    if not best_path.exists():  # no epoch finished (cancelled early): the last is the best so far
        save_checkpoint(make_checkpoint(state.best_metrics), best_path)
    return state
