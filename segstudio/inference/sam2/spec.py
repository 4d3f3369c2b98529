"""SAM 2.1 (Meta) as a click model, by name, without importing torch: the registry lists it,
`sam2.model` builds it.

Why this model and this package: SAM 2.1 is the newer Segment Anything (image and video; its
Hiera-Tiny image encoder answers a point or a box with three candidates, as SAM does). Meta's own
code is not on PyPI under Meta's name (the PyPI `sam2` 1.1.0 is a copy uploaded by a third party;
`segment-anything-2` 0.0.1 is an empty placeholder), so segstudio uses Hugging Face `transformers`
(Apache-2.0; `Sam2Model`, `Sam2Processor`), which ports SAM 2.1 and whose model cards for Meta's
weights live under Meta's own account (facebook/sam2.1-hiera-tiny). Its dependencies (huggingface-hub,
safetensors, tokenizers, ...) bring no OpenCV build and no Qt, and it leaves torch as it is.

Weights: the Hugging Face repository's `config.json` and `model.safetensors` (safetensors: tensors
only, nothing is unpickled), found in the Hugging Face cache (huggingface_hub's layout:
$HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), downloaded there when missing and
allowed, or any folder the user chooses (what `save_pretrained` writes: config.json +
model.safetensors), or a `model.safetensors` file (its folder's config.json when there is one,
else the package's own SAM 2.1 Hiera-Tiny configuration). The file's size and sha256 are NOT known
to us (Hugging Face could not be reached when this was written): the model says "unverified". Pin
them from https://huggingface.co/api/models/facebook/sam2.1-hiera-tiny/tree/main (`lfs.oid`, `size`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segstudio.core.errors import BadValue, UserError
from segstudio.inference.family import BOX, CLICK, Family, WeightsFile

if TYPE_CHECKING:
    from segstudio.core.project import Project

ARCH = "sam2"  # the --model choice and ModelSpec.arch
OPTIONS = ("sam2_model",)  # ModelSpec.options this family reads
INSTALL_HINT = "pip install segstudio[sam2]"
PACKAGES = ("transformers", "huggingface_hub", "safetensors")  # import names
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class Sam2Unavailable(UserError):
    """transformers (with SAM 2) is not installed; the message says what to install."""


@dataclass(frozen=True)
class Sam2ModelInfo:
    name: str  # our name: the embedding cache's folder
    title: str
    repo: str  # the Hugging Face repository of the weights
    size: int | None = None  # bytes of model.safetensors; None: not known (not checked)
    sha256: str | None = None  # None: not known ("unverified")
    note: str = ""

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    @property
    def verified(self) -> bool:
        return self.sha256 is not None and self.size is not None


MODELS: dict[str, Sam2ModelInfo] = {m.name: m for m in (
    Sam2ModelInfo("sam2.1_hiera_tiny", "SAM 2.1 Hiera-Tiny (Meta, via transformers)", "facebook/sam2.1-hiera-tiny",
                  note="size and sha256 unverified"),
)}
DEFAULT_MODEL = "sam2.1_hiera_tiny"


def model_info(name: str | None) -> Sam2ModelInfo:
    if name is None:
        return MODELS[DEFAULT_MODEL]
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise BadValue(f"unknown SAM 2 model {name!r}; use {', '.join(MODELS)}") from None


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, by huggingface_hub's own rule, without importing it."""
    env = os.getenv("HF_HUB_CACHE") or os.getenv("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expanduser(os.path.expandvars(env)))
    home = os.getenv("HF_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expanduser(os.path.expandvars(home))) / "hub"


def cached_snapshot(name: str | None = None) -> Path | None:
    """The cached snapshot folder of the model's repository (refs/main), when there is one."""
    info = model_info(name)
    repo_dir = hf_hub_cache() / ("models--" + info.repo.replace("/", "--"))
    try:
        rev = (repo_dir / "refs" / "main").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not re.fullmatch(r"[0-9a-f]{40}", rev):
        return None
    snap = repo_dir / "snapshots" / rev
    return snap if snap.is_dir() else None


def weights_file(name: str | None = None) -> Path:
    """Where the model's weights are (or would be): its cached snapshot's model.safetensors."""
    snap = cached_snapshot(name)
    if snap is not None:
        return snap / WEIGHTS_FILE
    info = model_info(name)
    return hf_hub_cache() / ("models--" + info.repo.replace("/", "--")) / "snapshots" / "<revision>" / WEIGHTS_FILE


def embedding_dir(project: "Project", model_id: str) -> Path:
    """The project's on-disk embedding cache for one model: <data folder>/sam2/<model>/."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_id)[:80] or "model"
    base = project.data_dir
    return Path(base) / "sam2" / safe


def weights_needed() -> list[WeightsFile]:
    """The official files and whether they are in the Hugging Face cache."""
    out = []
    for name, info in MODELS.items():
        p = weights_file(name)
        here = p.is_file() and (p.parent / CONFIG_FILE).is_file()
        out.append(WeightsFile(f"{info.repo}/{WEIGHTS_FILE}", str(p), here,
                               f"{info.title}" + (f"; {info.note}" if info.note else "")))
    return out


def presets() -> list[tuple[str, dict]]:
    """The official models by name, for the Model panel: whether each is in the Hugging Face cache."""
    out = []
    for name, info in MODELS.items():
        p = weights_file(name)
        there = "in the cache" if p.is_file() and (p.parent / CONFIG_FILE).is_file() else "downloaded when loaded"
        out.append((f"{info.title} — {there}", {"sam2_model": name}))
    return out


FAMILIES = (
    Family(ARCH, "SAM 2.1 (click any object)", "segstudio.inference.sam2", frozenset({CLICK, BOX}),
           load_click="segstudio.inference.sam2.model:load_click", presets="segstudio.inference.sam2.spec:presets",
           weights="segstudio.inference.sam2.spec:weights_needed", packages=PACKAGES, install_hint=INSTALL_HINT,
           note="Meta's SAM 2.1 Hiera-Tiny through Hugging Face transformers: a click or a box gives candidate masks"),
)
