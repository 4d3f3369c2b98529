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

from segstudio.core import review_filter
from segstudio.core.errors import UserError
from segstudio.core.project import Project
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
    train_images: list[str] = field(default_factory=list)  # every image the final model learnt from
    val_images: list[str] = field(default_factory=list)  # images it never learnt from
    start: str = ""  # what the weights started from
    validated_on: list[str] = field(default_factory=list)  # the images best_metrics were measured on
    # the final fit on every image, when there was one: {"images", "epochs", "steps", "seconds", "from_epoch"}
    final_fit: dict | None = None


def final_fit_done(state: "LoopState") -> bool:
    """Whether the run's final fit on every image ran to its end (its weights are the product)."""
    return state.final_fit is not None and not state.final_fit.get("cancelled")


def image_lists(train: list[str], val: list[str], state: "LoopState", result: bool = False) -> dict:
    """What a checkpoint says about the images its weights learnt from: after a final fit (even a
    cancelled one, for the last checkpoint), every image trained and none is held out; the
    validation figures were measured before it, on `val`. `result`: for the TrainResult, whose
    best checkpoint is the fit's when a cancel cut the final fit short."""
    if state.final_fit is not None and (final_fit_done(state) or not result):
        return {"train_images": list(state.final_fit["images"]), "val_images": [], "validated_on": list(val)}
    return {"train_images": list(train), "val_images": list(val), "validated_on": list(val)}


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


def split_images(project: Project, val_fraction: float, seed: int, statuses: Sequence[str] | None = None,
                 image_ids: Sequence[int] | None = None, val_ids: Sequence[int] | None = None):
    """Annotated images split into train and validation (seeded; at least one of each when there
    are two images or more; with one image, it serves both and the result says so). statuses None:
    the project's trainable images (done; done and accepted when review is on)."""
    store = project.store
    chosen = tuple(statuses) if statuses is not None else review_filter.trainable(store)
    ids = list(image_ids) if image_ids is not None else review_filter.select_ids(store, chosen)
    ids = [i for i in ids if store.region_count(i) > 0 or i in (val_ids or ())]
    if not ids:
        if review_filter.ACCEPTED in chosen:
            raise TrainingError("no accepted images to learn from: review is on, and a model learns from "
                                "done images a reviewer accepted")
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
    """Epochs or minutes, whichever the user gave, and at most `steps` steps; a cancel check.

    A time budget is used to its end: the learning rate falls along it and early stopping never
    cuts it short (see `run_training`); an epoch budget may stop early."""

    def __init__(self, epochs: int | None, minutes: float | None, cancel: Callable[[], bool] | None,
                 steps: int | None = None):
        if epochs is None and minutes is None:
            epochs = 20
        self.epochs, self.minutes, self.cancel, self.steps = epochs, minutes, cancel, steps
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def timed(self) -> bool:
        """Whether the budget is a time (early stopping does not apply)."""
        return self.minutes is not None

    def out_of_time(self, share: float = 1.0) -> bool:
        """Whether `share` of the time budget is spent (False without one)."""
        return self.minutes is not None and self.elapsed >= share * self.minutes * 60

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel()

    def epochs_done(self, epoch: int, planned: int | None = None) -> bool:
        n = self.epochs if planned is None else planned
        return n is not None and epoch >= n

    def steps_done(self, step: int) -> bool:
        return self.steps is not None and step >= self.steps

    def fraction(self, epochs_done: float) -> float:
        """How much of the budget is spent, 0..1: the time, else the epochs (the learning-rate
        schedule's position)."""
        if self.minutes:
            return min(1.0, self.elapsed / (self.minutes * 60))
        return min(1.0, epochs_done / (self.epochs or 1))

    def final_epochs(self, share: float) -> int:
        """Epochs of an epoch budget left for a final fit of `share` of it: at least one when
        there are two epochs or more (the validated phase keeps at least one), else none."""
        n = self.epochs or 0
        return 0 if n < 2 else min(n - 1, max(1, round(share * n)))


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


FIT, FINAL = "fit", "final fit"  # the two stages of a run (TrainProgress.stage, history "stage")


@dataclass(frozen=True)
class TrainProgress:
    """One report from the training loop: after each step ("train") and after each epoch's
    validation ("val"). `epochs` / `minutes` are the budget, for a progress bar. `stage` is
    "fit" (training images, validated each epoch) or "final fit" (every image, no validation:
    the images it would validate on are learnt from), and `note` says so in words."""
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
    stage: str = FIT
    note: str = ""  # e.g. "training on 16 images, validating on 4" / "final fit on all 20 images ..."
    lr: float | None = None  # the learning rate of this step ("train")


@dataclass
class Validation:
    """What a trainer's validate function found after an epoch."""
    metrics: dict  # everything measured: becomes best_metrics and goes into the checkpoint
    score: float  # higher is better; picks the best checkpoint and drives early stopping
    report: dict  # the val_* figures for the history entry and the progress report


@dataclass
class FinalFit:
    """The last stage of a run that validates on images of its own: every image (training and
    validation alike) for the last `share` of the budget, starting from the weights validation
    chose, along the tail of the same learning-rate schedule. The trainer gives the batches over
    every image and how to load the best checkpoint's weights back into its model."""
    images: list[str]  # every image it learns from
    steps_per_epoch: int
    batches: Callable[[], Iterable[Any]]
    restore: Callable[[Path], None]
    share: float = 0.2


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
    best_epoch: int = 0
    # after a final fit: {"images", "epochs", "steps", "seconds", "from_epoch"} (None without one)
    final_fit: dict | None = None


def cosine_lr(lr: float, low: float = 0.05) -> Callable[[float], float]:
    """The learning rate along a cosine over the budget, from `lr` down to `low` x `lr` where
    the budget ends, as (fraction of the budget spent, 0..1) -> lr."""
    def at(frac: float) -> float:
        return lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))))
    return at


def run_training(*, budget: Budget, state: LoopState, steps_per_epoch: int, batches: Callable[[], Iterable[Any]],
                 loss: Callable[[Any], torch.Tensor], opt, scaler, validate: Callable[[], Validation],
                 make_checkpoint: Callable[[dict], Checkpoint], best_path: Path, last_path: Path, patience: int,
                 progress: Callable[[TrainProgress], None] | None = None,
                 lr_schedule: Callable[[float], float] | None = None,
                 latest_is_best: bool = False, final_fit: FinalFit | None = None,
                 images: tuple[int, int] = (0, 0)) -> LoopState:
    """The loop both trainers run, in up to two stages.

    The fit: `batches()` gives an epoch's batches (drawn lazily, one per step), `loss(batch)` the
    loss to minimise; each epoch ends with `validate()`, and the best checkpoint is saved when the
    score improves (every epoch with `latest_is_best`). `lr_schedule` sets the learning rate from
    the share of the budget spent (time, else epochs), so a time budget's rate reaches its low end
    where the budget does. Early stopping (`patience` epochs without improvement) applies to epoch
    budgets only: a time budget is used to its end (the best checkpoint still keeps the best epoch).

    The final fit (`final_fit`, when the run validates on images of its own): after the fit's
    share of the budget, the best epoch's weights learn from every image for the rest of it (time),
    or for the budget's last epochs; no validation is possible then, so the checkpoint keeps the
    fit's validation figures and says they were measured before the final fit. Its result is
    saved as both the best and the last checkpoint. A cancel during it keeps the fit's best.

    The loop stops on the budget (epochs, minutes, steps) or on cancel; the last checkpoint is
    saved at the end, and the best too when no epoch finished. `images` = (training, validation)
    image counts, for the stage notes. Returns `state`, whose `stopped` says why it ended."""
    def report(p: TrainProgress) -> None:
        if progress is not None:
            progress(p)

    if final_fit is not None and (budget.steps is not None or final_fit.share <= 0
                                  or (not budget.timed and budget.final_epochs(final_fit.share) == 0)):
        final_fit = None  # a step budget (a quick fine-tune), or no room for it
    final_epochs = budget.final_epochs(final_fit.share) if final_fit is not None and not budget.timed else 0
    fit_share = 1.0 - final_fit.share if final_fit is not None and budget.timed else 1.0
    fit_epochs = budget.epochs - final_epochs if budget.epochs is not None and not budget.timed else None
    n_train, n_val = images
    fit_note = (f"training on {n_train} images, validating on {n_val}" if n_val else f"training on {n_train} images")
    if final_fit is not None:
        fit_note += (f"; then a final fit on all {len(final_fit.images)} images for the last "
                     + (f"{final_fit.share:.0%} of the time" if budget.timed else _epochs(final_epochs)))

    def set_lr(frac: float) -> float | None:
        if lr_schedule is None:
            return None
        lr = lr_schedule(frac)
        for g in opt.param_groups:
            g["lr"] = lr
        return lr

    while True:  # the fit
        if budget.epochs_done(state.epoch, fit_epochs):
            state.stopped = "epochs"
            break
        losses: list[float] = []
        epoch_batches = iter(batches())
        for i in range(steps_per_epoch):
            if budget.cancelled():
                state.stopped = "cancelled"
                break
            if budget.out_of_time(fit_share):
                state.stopped = "time"
                break
            if budget.steps_done(state.step):
                state.stopped = "steps"
                break
            # a click answered meanwhile on another thread goes first; the wait is not training time
            budget.t0 += PROMPTS.pause_point()
            lr = set_lr(budget.fraction(state.epoch + i / steps_per_epoch))
            losses.append(optimizer_step(opt, scaler, loss(next(epoch_batches))))
            state.step += 1
            report(TrainProgress("train", state.epoch, state.step, losses[-1], budget.elapsed, steps_per_epoch,
                                 budget.epochs, budget.minutes, stage=FIT, note=fit_note, lr=lr))
        if losses:
            state.epoch += 1
            v = validate()
            entry = {"epoch": state.epoch, "step": state.step, "loss": float(np.mean(losses)), **v.report,
                     "elapsed": budget.elapsed, "stage": FIT}
            state.history.append(entry)
            if v.score > state.best_score or latest_is_best:
                state.best_score, state.best_metrics, state.since_best = v.score, v.metrics, 0
                state.best_epoch = state.epoch
                save_checkpoint(make_checkpoint(v.metrics), best_path)
            else:
                state.since_best += 1
            report(TrainProgress("val", state.epoch, state.step, entry["loss"], entry["elapsed"], steps_per_epoch,
                                 budget.epochs, budget.minutes, dict(v.report), v.score, state.best_score,
                                 stage=FIT, note=fit_note))
        if state.stopped == "epochs" and budget.steps_done(state.step):
            state.stopped = "steps"  # the step budget ran out exactly at the end of an epoch
        if state.stopped != "epochs":
            break
        if state.since_best >= patience and not budget.timed:
            state.stopped = "early stopping"
            break
    if final_fit is not None and state.stopped in ("epochs", "time", "early stopping") and state.epoch > 0:
        _final_fit(budget, state, final_fit, final_epochs, loss, opt, scaler, make_checkpoint, best_path,
                   set_lr, report)
        if final_fit_done(state):  # the final model is the run's product: best and last alike
            save_checkpoint(make_checkpoint(state.best_metrics), best_path)
    save_checkpoint(make_checkpoint(state.best_metrics), last_path)
    if not best_path.exists():  # no epoch finished (cancelled early): the last is the best so far
        save_checkpoint(make_checkpoint(state.best_metrics), best_path)
    return state


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _final_fit(budget: Budget, state: LoopState, ff: FinalFit, epochs: int, loss, opt, scaler, make_checkpoint,
               best_path: Path, set_lr, report) -> None:
    """The final fit's epochs on every image (see `run_training`); records them in `state.final_fit`
    (with "cancelled" when a cancel ended them)."""
    if state.best_epoch and state.best_epoch != state.epoch and best_path.exists():
        ff.restore(best_path)  # validation chose an earlier epoch: the final fit starts from it
        from_epoch = state.best_epoch
        origin = f"from epoch {from_epoch}'s weights, the best validated"
    else:
        from_epoch = state.epoch
        origin = f"from epoch {from_epoch}'s weights"
    first_epoch, first_step, t_start = state.epoch, state.step, budget.elapsed
    n = len(ff.images)
    note = (f"final fit on all {n} images ({origin}), "
            + (f"until {budget.minutes:g} min" if budget.timed else _epochs(epochs)) + "; no validation")
    # the schedule's tail: where the fit's share ends (time), or the budget's last epochs
    start = (1.0 - ff.share) if budget.timed else ((budget.epochs or 0) - epochs) / (budget.epochs or 1)
    done = 0
    while budget.timed or done < epochs:
        losses: list[float] = []
        epoch_batches = iter(ff.batches())
        for i in range(ff.steps_per_epoch):
            if budget.cancelled():
                state.stopped = "cancelled"  # the last checkpoint says it learnt from every image, partly
                if state.step == first_step:
                    return
                state.final_fit = {"images": list(ff.images), "epochs": state.epoch - first_epoch,
                                   "steps": state.step - first_step, "seconds": budget.elapsed - t_start,
                                   "from_epoch": from_epoch, "cancelled": True}
                return
            if budget.out_of_time():
                break
            budget.t0 += PROMPTS.pause_point()
            lr = set_lr(budget.fraction(0.0) if budget.timed
                        else start + (done + i / ff.steps_per_epoch) / (budget.epochs or 1))
            losses.append(optimizer_step(opt, scaler, loss(next(epoch_batches))))
            state.step += 1
            report(TrainProgress("train", state.epoch, state.step, losses[-1], budget.elapsed, ff.steps_per_epoch,
                                 budget.epochs, budget.minutes, stage=FINAL, note=note, lr=lr))
        if losses:
            state.epoch += 1
            done += 1
            state.history.append({"epoch": state.epoch, "step": state.step, "loss": float(np.mean(losses)),
                                  "elapsed": budget.elapsed, "stage": FINAL, "images": n})
        if budget.out_of_time():
            break
    if state.step == first_step:
        return  # the fit's last validation took what time was left: nothing learnt from every image
    state.final_fit = {"images": list(ff.images), "epochs": state.epoch - first_epoch,
                       "steps": state.step - first_step, "seconds": budget.elapsed - t_start,
                       "from_epoch": from_epoch}
