"""Segment Anything weights: the authors' packages imported on first use, the network built with
`checkpoint=None` through the package's registry (the packages' own loaders call `torch.load`
without `map_location`, and HQ's loads with strict=False and prints), and weights files read here:
official files in the torch hub cache are checked against their known size and sha256 *before*
anything is unpickled, every file is read with `torch.load(weights_only=True)` (a file that holds
anything but tensors is refused, never executed). `sam.load_sam` puts these together. No Qt.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

from segstudio.inference.runtime.checkpoint import CheckpointError, load_failure
from segstudio.inference.runtime.torch_archive import archive_problem
from segstudio.inference.sam.spec import (DEFAULT_MODEL, INSTALL_HINT, MODELS, SamModelInfo, SamUnavailable,
                                          weights_file)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- packages
_modules: dict[str, ModuleType] = {}
_import_lock = threading.Lock()


def import_package(name: str) -> ModuleType:
    """`segment_anything` or `segment_anything_hq`, imported on first use (timm's import costs
    seconds), with the noise of that import silenced: timm's FutureWarnings about
    `timm.models.layers` and the UserWarnings about HQ-SAM overwriting timm's TinyViT registry
    entries (harmless: segstudio never calls timm.create_model)."""
    with _import_lock:
        if name in _modules:
            return _modules[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                warnings.filterwarnings("ignore", message="Overwriting tiny_vit", category=UserWarning)
                mod = importlib.import_module(name)
        except ImportError as e:
            raise SamUnavailable(f"Segment Anything needs `{INSTALL_HINT}` (the packages segment-anything, "
                                 f"segment-anything-hq and timm): {e}") from None
        _modules[name] = mod
        return mod


def build_model(info: SamModelInfo) -> torch.nn.Module:
    """The network with random weights, from the package's own registry (checkpoint=None)."""
    pkg = import_package(info.package)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        net = getattr(pkg, info.registry)[info.key](checkpoint=None)
    return net


# ----------------------------------------------------------------------------- weights
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 checked in this process


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_official(path: Path, info: SamModelInfo) -> None:
    """Size, then sha256, where known; raises CheckpointError naming the file. A file whose
    hash is not known (the HQ tiny file) passes: it is still read weights-only and strict."""
    st = path.stat()
    again = f"delete it to download it again (from {info.url}), or choose a weights file"
    if info.size is not None and st.st_size != info.size:
        raise CheckpointError(f"{path} has {st.st_size} bytes but the official {info.file} has {info.size} "
                              f"(incomplete download, or another file): {again}")
    if info.sha256 is None:
        return
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key) or file_sha256(path)
    if digest != info.sha256:
        raise CheckpointError(f"{path} is not the official {info.file}: its sha256 is {digest[:16]}..., the "
                              f"official file's {info.sha256[:16]}...: {again}")
    _verified[key] = digest


def missing_message(info: SamModelInfo) -> str:
    p = weights_file(info.name)
    return (f"Segment Anything weights for {info.name} are not available: put {p.name} in {p.parent} "
            f"(from {info.url}; offline: `segstudio weights add FILE` with a copy from elsewhere), or choose a "
            "weights file (--weights FILE)")


def download_weights(info: SamModelInfo, progress: bool = True) -> Path:
    """Into the torch hub cache, with progress, as torchvision does; the sha256 is checked while
    downloading where it is known (a mismatch leaves no file behind)."""
    dst = weights_file(info.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(info.url, str(dst), hash_prefix=info.sha256, progress=progress)
    if info.sha256 is None:
        log.warning("downloaded %s (%d bytes, sha256 %s); no official hash is known to check it against",
                    dst, dst.stat().st_size, file_sha256(dst))
    return dst


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True) onto the CPU, then: a mapping of names to tensors, or a
    CheckpointError that says what the file is instead."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if size < 1024:  # a git-LFS pointer or an error page saved under the weights' name
        raise CheckpointError(f"{path} is not a weights file ({size} bytes: a git-LFS pointer or a web page?)")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file, not a weights file")
    try:
        with open(path, "rb") as f:  # one open file: the archive checked is the one read
            problem = archive_problem(f)
            if problem:
                raise CheckpointError(f"{path} cannot be a weights file: {problem}")
            sd = torch.load(f, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # torch raises assorted errors on corrupt or refused files  # noqa: BLE001
        raise CheckpointError(load_failure(str(path), e, "PyTorch weights file")) from None
    if isinstance(sd, dict):
        for wrapper in ("state_dict", "model"):  # training scripts' {"model": sd, ...} / {"state_dict": sd}
            inner = sd.get(wrapper)
            if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
                sd = inner
                break
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and torch.is_tensor(v)
                                                     for k, v in sd.items()):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors)")
    return sd


def guess_model(sd: dict) -> str:
    """Which model a state dict is for, from its keys: TinyViT (Light HQ-SAM, or MobileSAM) or
    Meta's ViT-B/L/H by the number of encoder blocks."""
    if any(k.startswith("image_encoder.layers.") for k in sd):
        return DEFAULT_MODEL
    blocks = {int(k.split(".")[2]) for k in sd if k.startswith("image_encoder.blocks.") and k.split(".")[2].isdigit()}
    name = {12: "sam_vit_b", 24: "sam_vit_l", 32: "sam_vit_h"}.get(max(blocks) + 1 if blocks else 0)
    if name is None:
        raise CheckpointError("the file is not a Segment Anything state dict (no image encoder found)")
    if any(k.startswith("mask_decoder.hf_token") for k in sd):
        raise CheckpointError("HQ-SAM ViT-B/L/H weights are not supported; use sam_hq_vit_tiny or Meta's "
                              "sam_vit_b / sam_vit_l / sam_vit_h")
    return name


def official_for(path: Path) -> SamModelInfo | None:
    """The model whose official file this is, when it lies in the torch hub cache under that name."""
    for info in MODELS.values():
        if path.name == info.file and path.resolve() == weights_file(info.name).resolve():
            return info
    return None


def catalog() -> list:
    """Every model's official file, for the weights catalogue (`Family.catalog`); models that read
    the same file share its entry."""
    from segstudio.inference.runtime.weights_offer import Offer
    return [Offer(info.name, info.title.split(" (")[0], f"Segment Anything: {info.title}", info.url, info.file,
                  size=info.size, sha256=info.sha256, models=(info.name,),
                  reads="segstudio.inference.sam.weights:catalog_problem") for info in MODELS.values()]


def catalog_problem(path: Path, models: tuple[str, ...], title: str, file: str) -> str | None:
    """Why a file listed for these models (its hash not known) cannot be their weights, or None:
    read weights-only, the model its keys say it is, and the HQ-SAM layers it must hold."""
    sd = read_state_dict(path)
    model = guess_model(sd)
    if model not in models:
        return f"it holds {model} weights, not {title}"
    extra = {k for m in models for k in MODELS[m].drop_keys}
    if extra and not any(k.startswith(p) for k in sd for p in extra):
        return f"it lacks the HQ-SAM layers of {file} (another TinyViT SAM, e.g. MobileSAM?)"
    return None
