"""Training a family by what its spec declares (`Family.train`, `train_config`, `trainer`): the
window's Train panel and the command line build the same config from the same settings, and
nothing here asks which family it is."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from segstudio.core.errors import BadValue
from segstudio.core.project import Project
from segstudio.inference.family import TRAIN, Family, resolve


def train_config(family: Family, settings: dict[str, Any]) -> Any:
    """The family's training config: the settings its config has fields for (others are left out:
    a setting another family's trainer takes), over the family's own trainer settings (FCN and
    DeepLabV3 fine-tune their torchvision network)."""
    if not family.can(TRAIN) or not family.train or not family.train_config:
        raise BadValue(f"{family.title} is not trained in segstudio")
    cls = resolve(family.train_config)
    names = {f.name for f in dataclasses.fields(cls)}
    cfg = cls(**{k: v for k, v in settings.items() if k in names})
    for k, v in family.trainer.items():
        if k in names:
            old = getattr(cfg, k)
            setattr(cfg, k, {**old, **v} if isinstance(old, dict) and isinstance(v, dict) else v)
    return cfg


def train_family(project: Project, family: Family, settings: dict[str, Any],
                 progress: Callable[[Any], None] | None = None, cancel: Callable[[], bool] | None = None,
                 out: str | None = None) -> Any:
    """Train the family on the project's done images; its TrainResult."""
    cfg = train_config(family, settings)
    assert family.train is not None  # train_config checked it
    return resolve(family.train)(project, out, cfg, progress=progress, cancel=cancel)
