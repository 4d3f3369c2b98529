"""One checkpoint format for both models: weights plus what is needed to use them again.

    {"format": "segstudio-checkpoint", "format_version": 1,
     "arch": "unet" | "maskrcnn",
     "config": {...architecture settings...},
     "classes": ["cat", "dog"],            # index k+1 = class k (0 is background)
     "normalization": {...},               # how pixels become model input
     "training": {...},                    # summary: data, epochs, metrics, seed, time
     "segstudio_version": "0.1.0",
     "state_dict": {...}}

Files are read with `torch.load(weights_only=True)`: a checkpoint cannot run code; and the sizes
its archive declares are checked before anything is inflated (`torch_archive`): a compressed bomb
is refused before it costs memory. A plain state dict is read by the family it belongs to
(`load_checkpoint`'s `plain`; `engine.read_checkpoint` asks every family: torchvision's Mask
R-CNN files, e.g. the COCO weights). No family is imported here: the kinds are the families'.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from segstudio import __version__
from segstudio.core.errors import UserError
from segstudio.inference.runtime.torch_archive import MAX_WEIGHTS_BYTES, archive_problem, size_text

FORMAT = "segstudio-checkpoint"
FORMAT_VERSION = 1
log = logging.getLogger("segstudio")
MAX_PICKLE_BYTES = 64 << 20  # a checkpoint's pickle holds names and metadata (the tensors are records apart)


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message says which file and why."""


def load_failure(name: str, e: BaseException, kind: str = "PyTorch checkpoint") -> str:
    """What a failed `torch.load(weights_only=True)` means, in the user's words. torch's own text
    wraps the reason in advice to re-run with weights_only=False (code execution): never shown.

    - a pickle naming a class or function outside torch's allowlist (a real pickle, e.g. a whole
      pickled model or a file meant to run code): refused for safety;
    - anything else (an unknown pickle opcode: random bytes; "PytorchStreamReader failed...": a
      truncated zip; zipfile errors, EOFError, a bad seek): not a torch file at all.
    torch's full text goes to the debug log."""
    log.debug("torch.load of %s failed: %s: %s", name, type(e).__name__, e)
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and ("Unsupported global" in text or "GLOBAL " in text):
        m = re.search(r"GLOBAL ([\w.]+)", text)
        which = f" (it names {m.group(1)})" if m else ""
        return (f"{name} holds Python objects segstudio does not load (only tensors and plain data): "
                f"not loaded, for safety{which}")
    return f"{name} is not a {kind} (corrupt, truncated, or another kind of file)"


@dataclass
class Checkpoint:
    arch: str
    config: dict
    classes: list[str]
    state_dict: dict
    normalization: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    segstudio_version: str = __version__
    path: str | None = None
    resume: dict = field(default_factory=dict)  # optimizer state and counters, to continue training

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": self.arch, "config": self.config,
             "classes": list(self.classes), "normalization": self.normalization, "training": self.training,
             "segstudio_version": self.segstudio_version, "state_dict": self.state_dict}
        if self.resume:
            d["resume"] = self.resume
        return d


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write atomically (temporary file, then rename): a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    sd = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in ckpt.state_dict.items()}
    d = ckpt.to_dict()
    d["state_dict"] = sd
    d["training"] = dict(d["training"], saved_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        torch.save(d, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    ckpt.path = str(path)
    return path


def is_segstudio_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a file segstudio wrote with save_checkpoint, judged from the format marker
    in the pickle part of torch's zip container: the weights are never read (a Mask R-CNN
    checkpoint is hundreds of MB). Used before a file is overwritten."""
    try:
        with zipfile.ZipFile(path) as z:
            pickles = [i for i in z.infolist() if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > MAX_PICKLE_BYTES:  # a bomb is no checkpoint of ours
                return False
            data = z.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False
    # the top-level dict's first key and value, as pickle writes short strings (BINUNICODE)
    marker = FORMAT.encode()
    return len(marker).to_bytes(4, "little") + marker in data


def load_checkpoint(path: str | Path, expect_arch: str | None = None,
                    plain: Callable[[dict, Path], Checkpoint | None] | None = None) -> Checkpoint:
    """A checkpoint file, checked; `plain` makes a Checkpoint of a plain state dict when it can
    (a family's own reader, `Family.reads_state_dict`; `engine.read_checkpoint` asks every family)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file")
    try:
        if not p.is_file():
            raise CheckpointError(f"{p} is not a regular file, not a checkpoint")
        if p.stat().st_size > MAX_WEIGHTS_BYTES:
            raise CheckpointError(f"{p} is {size_text(p.stat().st_size)}: larger than any checkpoint "
                                  f"({size_text(MAX_WEIGHTS_BYTES)} at most); not read")
        raw = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {p}: {e.strerror or e}") from None
    if len(raw) < 64:
        raise CheckpointError(f"{p.name} is not a model checkpoint ({len(raw)} bytes)")
    buf = io.BytesIO(raw)
    problem = archive_problem(buf)  # the bytes torch will read, before it inflates any of them
    if problem:
        raise CheckpointError(f"{p} cannot be a model checkpoint: {problem}")
    try:
        d = torch.load(buf, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises assorted errors on corrupt files: all are CheckpointError  # noqa: BLE001
        raise CheckpointError(load_failure(p.name, e)) from None
    ckpt: Checkpoint | None
    if isinstance(d, dict) and d.get("format") == FORMAT:
        ckpt = _from_segstudio(d, p)
    else:
        ckpt = plain(d, p) if isinstance(d, dict) and plain is not None else None
        if ckpt is None:
            raise CheckpointError(f"{p.name} is a PyTorch file but not a segstudio checkpoint"
                                  + (" (nor a plain state dict of a model that takes one)" if plain else ""))
    if expect_arch is not None and ckpt.arch != expect_arch:
        raise CheckpointError(f"{p.name} holds a {ckpt.arch} model, not a {expect_arch}")
    ckpt.path = str(p)
    return ckpt


def _from_segstudio(d: dict, p: Path) -> Checkpoint:
    v = d.get("format_version")
    if not isinstance(v, int) or v > FORMAT_VERSION:
        raise CheckpointError(f"{p.name} was written by a newer segstudio (format {v}); upgrade segstudio")
    arch = d.get("arch")
    if not isinstance(arch, str) or not arch:
        raise CheckpointError(f"{p.name}: unknown architecture {arch!r}")
    sd = d.get("state_dict")
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{p.name} has no weights")
    classes = d.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{p.name}: the class list is missing or malformed")
    return Checkpoint(arch, dict(d.get("config") or {}), classes, sd, dict(d.get("normalization") or {}),
                      dict(d.get("training") or {}), str(d.get("segstudio_version", "?")),
                      resume=dict(d.get("resume") or {}))
