"""Pretrained weight files, read the one safe way: torchvision's weights API (the torch hub cache,
else a download with its hash checked), always with `weights_only=True` — a cached file that holds
anything but tensors and plain containers (a pickle that would run code) is refused, never run.
Mask R-CNN's COCO weights, the ImageNet encoders, FCN / DeepLabV3 and Segment Anything's files
all come through here, with one set of messages. A cached file's declared sizes are checked
before it is read (a compressed bomb is refused before it costs memory)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from segstudio.core.errors import UserError
from segstudio.inference.runtime.checkpoint import CheckpointError, load_failure
from segstudio.inference.runtime.torch_archive import archive_problem

class WeightsUnavailable(UserError):
    """Pretrained weights are neither cached nor downloadable; the message names file and folder."""


def first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:120] if lines else type(e).__name__


def unreadable(path: Path, e: BaseException) -> str:
    """What a failed torch.load of `path` means (checkpoint.load_failure): never torch's advice to
    load with weights_only=False."""
    return load_failure(str(path), e, "PyTorch weights file")


def read_torchvision_weights(weights: Any, path: Path, missing: str, again: str, download: bool = True,
                             progress: bool = True) -> dict:
    """The state dict of a torchvision weights enum member, kept at `path` in the cache.

    `missing`: what to say when the file is neither cached nor downloadable (which file, which
    folder); `again`: how to get a good file back ("delete it to download it again", ...).
    WeightsUnavailable for a missing or unreadable file, CheckpointError for one that holds more
    than tensors."""
    if not path.exists() and not download:
        raise WeightsUnavailable(missing)
    # torchvision checks the hash of a download, not of a file already in the cache: its sizes are
    # checked here before torch inflates anything (`torch_archive`)
    problem = archive_problem(path) if path.exists() else None
    if problem:
        raise CheckpointError(f"refused to load {path}: {problem}. {again}")
    try:
        # torchvision's load_state_dict_from_url defaults to weights_only=False: say it
        sd = weights.get_state_dict(progress=progress, check_hash=True, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:  # a file in the cache that is no weights, or holds more than tensors
        if "GLOBAL" in str(e):
            raise CheckpointError(f"{unreadable(path, e)}. {again}") from None
        raise WeightsUnavailable(f"{unreadable(path, e)}: {again}") from None
    except Exception as e:  # a failed download or a bad file, whatever raised it  # noqa: BLE001
        if path.exists():
            raise WeightsUnavailable(f"{unreadable(path, e)}: {again}") from None
        raise WeightsUnavailable(f"{missing} (download failed: {first_line(e)})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors): {again}")
    return sd
