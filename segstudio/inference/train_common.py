"""What UNet training and Mask R-CNN fine-tuning share: the image split, seeding, the time
budget, progress reports, where checkpoints go."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.core.records import DONE


class TrainingError(UserError):
    """Training cannot start (no annotated images, no classes...); the message says why."""


@dataclass
class TrainResult:
    arch: str
    best_path: str | None
    last_path: str | None
    best_metrics: dict
    history: list[dict]
    stopped: str  # "epochs" | "time" | "early stopping" | "cancelled"
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
    from segstudio.inference.evaluate import project_classes
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
    """Epochs or minutes, whichever the user gave; a cancel check."""

    def __init__(self, epochs: int | None, minutes: float | None, cancel: Callable[[], bool] | None):
        if epochs is None and minutes is None:
            epochs = 20
        self.epochs, self.minutes, self.cancel = epochs, minutes, cancel
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


def amp_context(device_type: str, use_amp: bool):
    """float16 autocast on CUDA when mixed precision is on; otherwise full precision."""
    if use_amp and device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cuda" if device_type == "cuda" else "cpu", enabled=False)


def optimizer_step(opt, scaler, loss) -> float:
    """One update through the gradient scaler (a no-op scaler without mixed precision)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return float(loss.detach())


def checkpoint_paths(project: Project, arch: str, out: str | Path | None) -> tuple[Path, Path]:
    """(best, last): `out` and `out`-last, or timestamped files in the project's models folder."""
    if out is not None:
        out = Path(out)
        return out, out.with_name(out.stem + "-last" + (out.suffix or ".pt"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = project.models_dir
    return d / f"{arch}-{stamp}.pt", d / f"{arch}-{stamp}-last.pt"
