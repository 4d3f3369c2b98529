"""What the families' loaders share, without the registry: `ModelSpec` (what to load), the
options check, the GPU warm-up and the project's latest checkpoint of a kind.

A family's package imports this, never `engine` (which reads the registry, and so every
family's spec: the families stay independent of each other, an import-linter contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from segstudio.core.errors import BadValue
from segstudio.inference.runtime.segmenter import Segmenter

if TYPE_CHECKING:
    from segstudio.core.project import Project


@dataclass
class ModelSpec:
    """What to load: the family (`arch`, a registry key: `segstudio models` lists them), a
    checkpoint file (None: the family's own default, e.g. COCO weights or the project's latest
    trained model), the device and the thresholds. A plain dataclass: `ModelSpec(**d)` of a dict
    (the window sends dicts) and `dataclasses.asdict` back.

    variant: one of the family's `variants` (Mask R-CNN "v2" / "v1"); None: its first.
    options: the family's own settings, read by its loader and refused by the others (the
    Segment Anything family: sam_model, prompts, points_per_side, pred_iou_thresh,
    stability_score_thresh)."""
    arch: str
    weights: str | None = None
    device: str = "auto"
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    per_component: bool = True
    amp: bool | None = None
    variant: str | None = None
    download: bool = True
    tta: bool = False  # class-per-pixel models: average over flips
    options: dict = field(default_factory=dict)


def check_options(spec: ModelSpec, known: tuple[str, ...] = ()) -> dict:
    """The spec's options, every one of them a setting this family knows (a family's loader asks)."""
    if not isinstance(spec.options, dict):
        raise BadValue(f"model options are a dict of settings, not {type(spec.options).__name__}")
    extra = sorted(str(k) for k in spec.options if k not in known)
    if extra:
        raise BadValue(f"the {spec.arch} model has no setting {', '.join(extra)}"
                       + (f"; its settings: {', '.join(known)}" if known else ""))
    return dict(spec.options)


S = TypeVar("S", bound=Segmenter)


def warm(seg: S) -> S:
    """On a GPU, one small forward at load time: CUDA/cuDNN set-up is paid while loading, not by
    the first image."""
    if seg.device.type == "cuda":
        seg.predict(np.zeros((256, 256, 3), np.uint8))
        torch.cuda.synchronize()
    return seg


def latest_model(project: "Project", kind: str) -> str | None:
    """The project's newest checkpoint of that kind (`Family.checkpoint_kind`) that still exists
    (best before last)."""
    for m in project.store.models():
        if m["kind"] == kind and Path(m["path"]).exists():
            return m["path"]
    return None
