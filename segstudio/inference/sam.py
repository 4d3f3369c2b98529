"""Promptable segmentation: the Segment Anything family (`sam_spec` lists the models). No Qt.

Two steps, as SAM is built: `SamModel.embed(rgb)` runs the image encoder once per image (the
expensive part: about 1-2 s for TinyViT on 2 CPU cores) and returns an `Embedding`;
`SamModel.decode(embedding, points, box, mask_input)` answers a prompt from it (tens of ms) with
`Candidates`, best first. `EmbeddingCache` keeps embeddings in memory (bounded by bytes) and on
disk under the project's store folder, so an image is embedded once. `SamSegmenter` is the
headless `Segmenter` behind `segstudio predict --model sam`: the package's own automatic mask
generator ("everything"), or each existing region's box as a prompt ("boxes").

Weights: built with `checkpoint=None` through the package's registry (the packages' own loaders
call `torch.load` without `map_location`, and HQ's loads with strict=False and prints), then
loaded here: official files in the torch hub cache are checked against their known size and
sha256 *before* anything is unpickled, every file is read with `torch.load(weights_only=True)`
(a file that holds anything but tensors is refused, never executed) and loaded strict.

Threads: a SamPredictor is stateful (the image it holds), so every call on a SamModel takes its
lock; call it from one worker thread, or accept that calls queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import math
import os
import pickle
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from segstudio.core import maskops
from segstudio.core.errors import BadValue, UserError
from segstudio.inference.checkpoint import CheckpointError
from segstudio.inference.device import DeviceInfo, choose_device
from segstudio.inference.sam_spec import (DEFAULT_MODEL, INSTALL_HINT, MODELS, OBJECT_CLASS, PROMPT_MODES,
                                          SamModelInfo, SamUnavailable, model_info, to_sam_rgb, weights_file)
from segstudio.inference.segmenter import Detection, Prediction, Segmenter

log = logging.getLogger(__name__)

MAX_POINTS = 256  # point prompts per decode; SAM was trained with far fewer
LOW_RES = 256  # side of SAM's low-resolution mask logits (the mask_input it takes back)


class WeightsUnavailable(UserError):
    """The model's weights are neither cached nor downloadable; the message names file and folder."""


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


def _missing(info: SamModelInfo) -> str:
    p = weights_file(info.name)
    return (f"Segment Anything weights for {info.name} are not available: put {p.name} in {p.parent} "
            f"(from {info.url}), or choose a weights file (--weights FILE)")


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


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:120] if lines else type(e).__name__


def _unreadable(path: Path, e: BaseException) -> str:
    noise = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith(noise)]
    reason = lines[0][:120] if lines else type(e).__name__
    return f"{path} cannot be read as weights (corrupt or truncated? {reason})"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True) onto the CPU, then: a mapping of names to tensors, or a
    CheckpointError that says what the file is instead."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if size < 1024:  # a git-LFS pointer or an error page saved under the weights' name
        raise CheckpointError(f"{path} is not a weights file ({size} bytes: a git-LFS pointer or a web page?)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if blocked:
            raise CheckpointError(f"refused to load {path}: it holds Python objects besides tensors "
                                  f"({blocked[0][:160]}), and loading it could run code. segstudio reads "
                                  "weights with weights_only=True") from None
        raise CheckpointError(_unreadable(path, e)) from None
    except Exception as e:  # torch raises assorted errors on corrupt files  # noqa: BLE001
        raise CheckpointError(_unreadable(path, e)) from None
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


def _official_for(path: Path) -> SamModelInfo | None:
    """The model whose official file this is, when it lies in the torch hub cache under that name."""
    for info in MODELS.values():
        if path.name == info.file and path.resolve() == weights_file(info.name).resolve():
            return info
    return None


def load_sam(name: str | None = None, weights: str | Path | None = None, device: DeviceInfo | str = "auto",
             download: bool = True, *, random_weights: bool = False, progress: bool = True) -> "SamModel":
    """A ready SamModel.

    name: a sam_spec.MODELS key (None: guessed from `weights`' keys, else the default model).
    weights: a file of the user's (loaded weights-only and strict, its hash unchecked: it may be
    fine-tuned); None: the model's official file in the torch hub cache, downloaded when missing
    and `download`, size- and sha256-checked where those are known.
    random_weights: tests only, and only with weights=None: random initialisation, said so in
    `SamModel.cache_id`. Never the fallback for missing weights.
    """
    dev = device if isinstance(device, DeviceInfo) else choose_device(device)
    info: SamModelInfo | None
    if random_weights:
        if weights is not None:
            raise BadValue("random_weights and a weights file exclude each other")
        info = model_info(name)
        return SamModel(build_model(info).to(dev.device).eval().requires_grad_(False), info, dev, None)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise CheckpointError(f"weights file not found: {path}")
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a weights file")
        info = model_info(name) if name is not None else None
        official = _official_for(path)
        if official is not None:
            verify_official(path, official)  # an official file in the cache picked by hand: checked all the same
    else:
        info = model_info(name)
        path = weights_file(info.name)
        if not path.exists():
            if not download:
                raise WeightsUnavailable(_missing(info))
            try:
                download_weights(info, progress)
            except Exception as e:  # no network, a proxy, a hash mismatch: whatever raised it  # noqa: BLE001
                raise WeightsUnavailable(_missing(info) + f" (download failed: {_first_line(e)})") from None
        verify_official(path, info)
    sd = read_state_dict(path)
    if info is None:
        info = model_info(guess_model(sd))
    net = build_model(info)
    if info.drop_keys:
        sd = {k: v for k, v in sd.items() if not k.startswith(info.drop_keys)}
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()]  # line 1 is "Error(s) in loading"
        raise CheckpointError(f"{path.name}: the weights do not fit {info.name} "
                              f"({(detail[1] if len(detail) > 1 else _first_line(e))[:160]}); choose the model "
                              "they were made for "
                              f"(--sam-model {' | '.join(MODELS)})") from None
    del sd
    return SamModel(net.to(dev.device).eval().requires_grad_(False), info, dev, path)


# ----------------------------------------------------------------------------- embeddings
EMBEDDING_FORMAT = "segstudio-sam-embedding"
EMBEDDING_VERSION = 1


@dataclass(eq=False)
class Embedding:
    """One image through the image encoder. Tensors on the CPU (float16 by default: half the
    memory, masks identical to within rounding). `interm` only for the HQ decoder."""
    features: torch.Tensor  # (1, 256, 64, 64)
    interm: torch.Tensor | None  # (1, 64, 64, C): HQ decoder's first intermediate ViT map
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (h, w) after resizing the long side to 1024
    model: str  # SamModel.cache_id of the model that made it

    @property
    def nbytes(self) -> int:
        n = self.features.numel() * self.features.element_size()
        if self.interm is not None:
            n += self.interm.numel() * self.interm.element_size()
        return n

    @property
    def width(self) -> int:
        return self.original_size[1]

    @property
    def height(self) -> int:
        return self.original_size[0]

    def to_state(self, key: str) -> dict:
        """Plain tensors, ints and strings: what torch.save writes and weights_only reads back."""
        d: dict[str, Any] = {"format": EMBEDDING_FORMAT, "version": EMBEDDING_VERSION, "key": key,
                             "model": self.model, "features": self.features.contiguous(),
                             "original_size": list(self.original_size), "input_size": list(self.input_size)}
        if self.interm is not None:
            d["interm"] = self.interm.contiguous()
        return d

    @classmethod
    def from_state(cls, d: Any, key: str | None = None) -> "Embedding":
        """Checked: a damaged or foreign entry raises ValueError."""
        if not isinstance(d, dict) or d.get("format") != EMBEDDING_FORMAT or d.get("version") != EMBEDDING_VERSION:
            raise ValueError("not a segstudio SAM embedding")
        if key is not None and d.get("key") != key:
            raise ValueError("the entry belongs to another key")
        f, interm = d.get("features"), d.get("interm")
        if not torch.is_tensor(f) or f.dim() != 4 or f.shape[0] != 1 or not f.is_floating_point():
            raise ValueError("bad features")
        if interm is not None and (not torch.is_tensor(interm) or interm.dim() != 4 or not interm.is_floating_point()):
            raise ValueError("bad intermediate features")
        sizes = []
        for k in ("original_size", "input_size"):
            s = d.get(k)
            if not isinstance(s, (list, tuple)) or len(s) != 2 or not all(isinstance(v, int) and v > 0 for v in s):
                raise ValueError(f"bad {k}")
            sizes.append((int(s[0]), int(s[1])))
        if max(sizes[1]) > 4096 or not isinstance(d.get("model"), str):
            raise ValueError("bad input size or model")
        if not (torch.isfinite(f).all() and (interm is None or torch.isfinite(interm).all())):
            raise ValueError("non-finite features")
        return cls(f, interm, sizes[0], sizes[1], d["model"])


_ENTRY = re.compile(r"^[0-9a-f]{40}\.pt$")  # the only file names the cache writes (and may delete)


class EmbeddingCache:
    """Embeddings by key: in memory (LRU, bounded by bytes) and, with a folder, on disk
    (`sam_spec.embedding_dir(project, model.cache_id)`: FOLDER/.segstudio/sam/<model>/<key>.pt).

    Keys (`key()`) hold the model, the image file's path, size and mtime_ns, and the window/level:
    an edited image file, another window/level or another model misses. A disk entry that cannot
    be read, or fails its checks, is deleted and computed again. Thread-safe; two threads asking
    for the same key compute it once."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int = 512 * 2 ** 20,
                 max_disk_bytes: int | None = 4 * 2 ** 30):
        self.folder = Path(folder) if folder is not None else None
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = max_disk_bytes  # None: unbounded; else the least recently used entries go
        self._saves = 0
        self._mem: OrderedDict[str, Embedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self.stats = {"memory": 0, "disk": 0, "computed": 0, "corrupt": 0}

    @staticmethod
    def key(model_id: str, image_path: str | Path, window: tuple[float, float] | None = None) -> str:
        """Raises FileNotFoundError when the image file is gone."""
        p = Path(image_path)
        st = p.stat()
        w = "auto" if window is None else f"{float(window[0])!r},{float(window[1])!r}"
        text = "\0".join([EMBEDDING_FORMAT, str(EMBEDDING_VERSION), model_id, str(p.resolve()), str(st.st_size),
                          str(st.st_mtime_ns), w])
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._mem)

    def __contains__(self, key: str) -> bool:
        return key in self._mem or (self.folder is not None and self._path(key).exists())

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()
            self._bytes = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.pt"

    def get(self, key: str) -> Embedding | None:
        with self._lock:
            emb = self._mem.get(key)
            if emb is not None:
                self._mem.move_to_end(key)
                self.stats["memory"] += 1
                return emb
        emb = self._load(key)
        if emb is not None:
            self.stats["disk"] += 1
            self._remember(key, emb)
        return emb

    def put(self, key: str, emb: Embedding) -> None:
        self._remember(key, emb)
        self._save(key, emb)

    def get_or_compute(self, key: str, fn: Callable[[], Embedding],
                       cancel: Callable[[], bool] | None = None) -> Embedding:
        """The cached embedding, or fn()'s (then cached). `cancel` is asked before computing and
        while waiting for another thread computing the same key: InterruptedError, nothing cached."""
        while True:
            emb = self.get(key)
            if emb is not None:
                return emb
            with self._lock:
                ev = self._pending.get(key)
                mine = ev is None
                if mine:
                    ev = self._pending[key] = threading.Event()
            assert ev is not None
            if not mine:
                while not ev.wait(0.05):
                    if cancel is not None and cancel():
                        raise InterruptedError("cancelled")
                continue  # computed by the other thread (or it failed: then this one tries)
            try:
                if cancel is not None and cancel():
                    raise InterruptedError("cancelled")
                emb = fn()
                self.stats["computed"] += 1
                self.put(key, emb)
                return emb
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                ev.set()

    def _remember(self, key: str, emb: Embedding) -> None:
        n = emb.nbytes
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if n > self.max_bytes:
                return
            self._mem[key] = emb
            self._bytes += n
            while self._bytes > self.max_bytes and self._mem:
                _, gone = self._mem.popitem(last=False)
                self._bytes -= gone.nbytes

    def _save(self, key: str, emb: Embedding) -> None:
        if self.folder is None:
            return
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(emb.to_state(key), tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # a read-only or full disk: the memory cache still works
            log.warning("cannot write the embedding cache entry %s: %s", path, getattr(e, "strerror", None) or e)
            return
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._saves += 1
        if self._saves % 16 == 1:
            self.prune()

    def prune(self) -> int:
        """Delete the least recently used disk entries (by mtime: a disk hit touches its file)
        beyond max_disk_bytes; only files of this cache's own name pattern. Returns how many."""
        if self.folder is None or self.max_disk_bytes is None:
            return 0
        entries = []
        try:
            for p in self.folder.iterdir():
                if _ENTRY.match(p.name):
                    with contextlib.suppress(OSError):
                        s = p.stat()
                        entries.append((s.st_mtime_ns, s.st_size, p))
        except OSError:
            return 0
        total, gone = sum(e[1] for e in entries), 0
        for _, size, p in sorted(entries):
            if total <= self.max_disk_bytes:
                break
            self._delete(p)
            total -= size
            gone += 1
        return gone

    def _load(self, key: str) -> Embedding | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            emb = Embedding.from_state(torch.load(path, map_location="cpu", weights_only=True), key)
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: pruned last
            return emb
        except Exception as e:  # any damage (truncated, foreign, not a pickle): compute it again  # noqa: BLE001
            self.stats["corrupt"] += 1
            log.warning("embedding cache entry %s is unusable (%s): deleting it; the embedding is computed again",
                        path, _first_line(e))
            self._delete(path)
            return None

    def _delete(self, path: Path) -> None:
        # only a file this cache wrote: its own folder, its own name pattern
        if self.folder is not None and path.parent == self.folder and _ENTRY.match(path.name):
            with contextlib.suppress(OSError):
                path.unlink()


# ----------------------------------------------------------------------------- prompts
@dataclass
class Candidates:
    """A prompt's answer, best first: full-size masks and the model's predicted IoU for each.
    Feed `low_res_logits[k][None]` back as `mask_input` to refine candidate k."""
    masks: np.ndarray  # (C, H, W) bool, at the image's full size
    scores: np.ndarray  # (C,) float32, descending
    low_res_logits: np.ndarray  # (C, 256, 256) float32

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def best(self) -> np.ndarray:
        return self.masks[0]


def _number(v: Any, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise BadValue(f"{what} must be a number, not {v!r}") from None
    if not math.isfinite(f):
        raise BadValue(f"{what} must be a finite number, not {v!r}")
    return f


def check_box(box: Sequence[float] | np.ndarray, width: int, height: int) -> np.ndarray:
    """(x0, y0, x1, y1) in any corner order -> float64 array clipped to the image; BadValue for
    non-numbers, NaN/inf, or no area inside the image."""
    try:
        vals = [_number(v, "a box coordinate") for v in box]
    except TypeError:
        raise BadValue(f"a box is (x0, y0, x1, y1), not {box!r}") from None
    if len(vals) != 4:
        raise BadValue(f"a box is (x0, y0, x1, y1), not {len(vals)} numbers")
    x0, x1 = sorted((vals[0], vals[2]))
    y0, y1 = sorted((vals[1], vals[3]))
    x0, x1 = min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))
    y0, y1 = min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise BadValue(f"the box ({vals[0]:g}, {vals[1]:g}, {vals[2]:g}, {vals[3]:g}) has no area inside "
                       f"the {width}x{height} image")
    return np.asarray([x0, y0, x1, y1], np.float64)


def check_prompts(points: Iterable[tuple[float, float, bool]] | None, box: Sequence[float] | None,
                  mask_input: np.ndarray | None, width: int, height: int
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Prompts in image pixels -> the arrays SamPredictor.predict takes. Non-numbers and NaN/inf
    raise BadValue; points outside the image and box corners are clipped to it (a box that lies
    wholly outside, or has no area, raises); the box's corners may come in any order."""
    coords: np.ndarray | None = None
    labels: np.ndarray | None = None
    box_a: np.ndarray | None = None
    mask_a: np.ndarray | None = None
    pts = list(points) if points is not None else []
    if len(pts) > MAX_POINTS:
        raise BadValue(f"{len(pts)} point prompts: at most {MAX_POINTS}")
    if pts:
        c, lab = [], []
        for k, p in enumerate(pts):
            try:
                x, y, positive = p
            except (TypeError, ValueError):
                raise BadValue(f"point {k} must be (x, y, positive), not {p!r}") from None
            c.append((min(max(_number(x, "a point's x"), 0.0), width - 1.0),
                      min(max(_number(y, "a point's y"), 0.0), height - 1.0)))
            lab.append(1 if bool(positive) else 0)
        coords, labels = np.asarray(c, np.float64), np.asarray(lab, np.int64)
    if box is not None:
        box_a = check_box(box, width, height)
    if mask_input is not None:
        m = np.asarray(mask_input, np.float32)
        if m.shape == (LOW_RES, LOW_RES):
            m = m[None]
        if m.shape != (1, LOW_RES, LOW_RES):
            raise BadValue(f"mask_input must be SAM's low-resolution logits (1, {LOW_RES}, {LOW_RES}), "
                           f"not shape {m.shape}")
        mask_a = np.clip(np.nan_to_num(m, nan=0.0, posinf=32.0, neginf=-32.0), -32.0, 32.0)
    if coords is None and box_a is None:
        raise BadValue("a prompt needs at least one point or a box")
    return coords, labels, box_a, mask_a


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise BadValue(f"SAM takes uint8 RGB (H, W, 3), not {a.dtype} {a.shape}: convert with "
                       "sam_spec.to_sam_rgb(image, window)")
    h, w = a.shape[:2]
    if min(h, w) < 1 or min(h, w) * 1024 / max(h, w) + 0.5 < 1:  # the short side would resize to 0 px
        raise BadValue(f"a {w}x{h} image is too small or too elongated for Segment Anything")
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- the model
class SamModel:
    """A loaded promptable model: embed an image once, decode prompts from the embedding."""

    def __init__(self, net: torch.nn.Module, info: SamModelInfo, device: DeviceInfo, weights: Path | None,
                 store_dtype: torch.dtype = torch.float16):
        self.net, self.info, self.device = net, info, device
        self.name = info.name
        self.weights = weights
        self.store_dtype = store_dtype
        self.package = import_package(info.package)
        self.predictor = self.package.SamPredictor(net)
        self.lock = threading.RLock()
        self._current: Embedding | None = None  # the embedding the predictor holds now
        if weights is None:
            self.cache_id = f"{info.name}-random-{id(net):x}"
        else:
            st = weights.stat()
            self.cache_id = f"{info.name}-{weights.name}-{st.st_size}-{st.st_mtime_ns}"
        self._decode_kw = {"hq_token_only": False} if info.package == "segment_anything_hq" else {}

    def __repr__(self) -> str:
        return f"SamModel({self.name}, {self.weights or 'random weights'}, {self.device.describe()})"

    def embed(self, rgb: np.ndarray, cancel: Callable[[], bool] | None = None) -> Embedding:
        """Run the image encoder on uint8 RGB (H, W, 3) (`sam_spec.to_sam_rgb` makes it from any
        image, through the window/level the user sees). `cancel` is asked before the encoder runs
        (it cannot stop half-way)."""
        rgb = check_rgb(rgb)
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        with self.lock, torch.no_grad():
            p = self.predictor
            p.set_image(rgb)
            interm = None
            if self.info.hq_decoder:
                interm = p.interm_features[0].to("cpu", self.store_dtype)
            emb = Embedding(p.features.to("cpu", self.store_dtype), interm,
                            (int(p.original_size[0]), int(p.original_size[1])),
                            (int(p.input_size[0]), int(p.input_size[1])), self.cache_id)
            self._current = None
            self._restore(emb)  # decode from the stored precision: a cache hit answers the same
        return emb

    def embedding_for(self, image: np.ndarray, image_path: str | Path | None, cache: EmbeddingCache | None = None,
                      window: tuple[float, float] | None = None,
                      cancel: Callable[[], bool] | None = None) -> Embedding:
        """The embedding of a decoded image (any depth: converted through `window`, the one the
        user sees), from `cache` when it has it (keyed by this model, the file and the window)."""
        def compute() -> Embedding:
            return self.embed(to_sam_rgb(image, window), cancel)
        if cache is None or image_path is None:
            return compute()
        try:
            key = EmbeddingCache.key(self.cache_id, image_path, window)
        except OSError:  # the file went away after decoding: nothing to key the cache on
            return compute()
        return cache.get_or_compute(key, compute, cancel)

    def _restore(self, emb: Embedding) -> None:
        """Put a (cached) embedding back into the predictor without running the encoder."""
        if self._current is emb:
            return
        if emb.model != self.cache_id:
            raise BadValue(f"this embedding was made by another model ({emb.model}), not {self.cache_id}")
        if self.info.hq_decoder and emb.interm is None:
            raise BadValue("the HQ decoder needs an embedding with intermediate features")
        p, dev = self.predictor, self.device.device
        p.reset_image()
        p.features = emb.features.to(dev, torch.float32)
        if self.info.package == "segment_anything_hq":
            p.interm_features = [emb.interm.to(dev, torch.float32)] if emb.interm is not None else None
        p.original_size = emb.original_size
        p.input_size = emb.input_size
        p.is_image_set = True
        self._current = emb

    def decode(self, emb: Embedding, points: Iterable[tuple[float, float, bool]] | None = None,
               box: Sequence[float] | None = None, mask_input: np.ndarray | None = None,
               multimask: bool | None = None) -> Candidates:
        """Masks for a prompt, from the embedding (the encoder does not run).

        points: (x, y, positive) in image pixels; box: (x0, y0, x1, y1); mask_input: a previous
        candidate's low_res_logits[k] (SAM's own logits: a binary mask from elsewhere works
        poorly; for such regions prompt with their box and a point inside). multimask: None
        follows SAM's advice (several candidates for a lone point, the single answer otherwise).
        The vanilla decoder gives 3 candidates for multimask, HQ's decoder always 1."""
        coords, labels, box_a, mask_a = check_prompts(points, box, mask_input, emb.width, emb.height)
        if multimask is None:
            multimask = coords is not None and len(coords) == 1 and box_a is None and mask_a is None
        with self.lock, torch.no_grad():
            self._restore(emb)
            masks, scores, low = self.predictor.predict(coords, labels, box_a, mask_a, multimask_output=multimask,
                                                        **self._decode_kw)
        order = np.argsort(-scores, kind="stable")
        return Candidates(np.ascontiguousarray(masks[order]), scores[order].astype(np.float32),
                          low[order].astype(np.float32))

    def decode_boxes(self, emb: Embedding, boxes: np.ndarray, chunk: int = 16
                     ) -> list[tuple[np.ndarray, int, int, float] | None]:
        """One mask per box (x0, y0, x1, y1), batched: (crop, x, y, score) each, None for an empty
        mask. Boxes are checked and clipped like decode's."""
        checked = [check_box(b, emb.width, emb.height) for b in np.asarray(boxes, np.float64).reshape(-1, 4)]
        out: list[tuple[np.ndarray, int, int, float] | None] = []
        with self.lock, torch.no_grad():
            self._restore(emb)
            p = self.predictor
            for at in range(0, len(checked), chunk):
                bt = torch.as_tensor(np.stack(checked[at:at + chunk]), dtype=torch.float, device=p.device)
                bt = p.transform.apply_boxes_torch(bt, emb.original_size)
                masks, iou, _ = p.predict_torch(None, None, boxes=bt, multimask_output=False, **self._decode_kw)
                masks_np, iou_np = masks[:, 0].cpu().numpy(), iou[:, 0].float().cpu().numpy()
                for m, s in zip(masks_np, iou_np, strict=True):
                    c = maskops.crop_to_content(m)
                    out.append(None if c is None else (c[0], c[1], c[2], float(s)))
        return out

    def mask_generator(self, points_per_side: int, points_per_batch: int = 64, pred_iou_thresh: float = 0.88,
                       stability_score_thresh: float = 0.95, box_nms_thresh: float = 0.7):
        """The package's own SamAutomaticMaskGenerator on this network (COCO RLE output: masks
        are decoded one at a time, never all at full size at once)."""
        return self.package.SamAutomaticMaskGenerator(
            self.net, points_per_side=points_per_side, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            box_nms_thresh=box_nms_thresh, output_mode="coco_rle")


# ----------------------------------------------------------------------------- headless
@dataclass
class SamInput:
    """An image made ready on a decoder thread, with its box prompts in "boxes" mode."""
    rgb: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (N, 4) x0, y0, x1, y1
    labels: list[int] = field(default_factory=list)  # the model class (1-based) of each box

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def default_points_per_side(device: DeviceInfo) -> int:
    """32 (the package's default, 1024 prompts) on a GPU; 16 (256 prompts) elsewhere. Every grid
    point is one decoder pass plus the generator's full-resolution work on its 3 masks, so on a
    CPU the grid, not the embedding (~2.3 s), sets the time per image, growing with the square of
    points per side: TinyViT, 1024x768, 1 thread, every mask kept (random weights, thresholds 0):
    8 -> 28 s, 16 -> 100 s; 32 would be ~400 s for masks that are mostly duplicates (NMS drops
    them). Real weights with the default thresholds drop most masks early and cost less. 16 still
    finds medium-sized objects; use --points-per-side 8 for a quick pass."""
    return 32 if device.type == "cuda" else 16


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


class SamSegmenter(Segmenter):
    """`segstudio predict --model sam`: a Segmenter over a SamModel.

    mode "everything": the package's automatic mask generator (a grid of point prompts, then its
    own quality filters and NMS); class-less instances, all of one class "object" that the user
    renames. mode "boxes": each region already on the image (say, boxes imported from a
    detection dataset) is prompted with its bounding box and answered with a mask of the same
    class; regions this segmenter made itself are not prompts (a rerun replaces them)."""

    arch = "sam"

    def __init__(self, model: SamModel, mode: str = "everything", points_per_side: int | None = None,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95, box_nms_thresh: float = 0.7,
                 points_per_batch: int = 64, min_area: int = 4, classes: Sequence[tuple[int, str]] = ()):
        if mode not in PROMPT_MODES:
            raise BadValue(f"unknown prompt mode {mode!r}; use {' or '.join(PROMPT_MODES)}")
        self.model, self.mode, self.device = model, mode, model.device
        self.min_area = int(min_area)
        if mode == "everything":
            self.name = "sam"
            self.classes = [OBJECT_CLASS]
            pps = default_points_per_side(model.device) if points_per_side is None else int(points_per_side)
            if not 1 <= pps <= 128:
                raise BadValue(f"points per side must be 1 to 128, not {pps}")
            if not (0.0 <= pred_iou_thresh <= 1.0 and 0.0 <= stability_score_thresh <= 1.0):
                raise BadValue("the IoU and stability thresholds are between 0 and 1")
            self.points_per_side = pps
            self.generator = model.mask_generator(pps, points_per_batch, pred_iou_thresh, stability_score_thresh,
                                                  box_nms_thresh)
        else:
            self.name = "sam_boxes"
            # the project's classes, in order: a box of class id c becomes model label k + 1
            self.classes = [name for _, name in classes]
            self.label_of = {int(cid): k + 1 for k, (cid, _) in enumerate(classes)}

    def prepare(self, image: np.ndarray) -> SamInput:
        """Headless: through the window the display picks by default (imageio.auto_window)."""
        return SamInput(check_rgb(to_sam_rgb(image)))

    def prepare_record(self, image: np.ndarray, project, record) -> SamInput:
        item = self.prepare(image)
        if self.mode != "boxes":
            return item
        boxes, labels = [], []
        for row in project.store.region_rows(record.id):  # raw rows: no mask is decoded
            _rid, cid, x, y, w, h, _rle, _z, source = row[:9]
            label = self.label_of.get(int(cid))
            if source == self.name or label is None:
                continue
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(item.width, int(x) + int(w)), min(item.height, int(y) + int(h))
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                boxes.append((x0, y0, x1, y1))
                labels.append(label)
        item.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        item.labels = labels
        return item

    def predict_prepared(self, items: Sequence[SamInput], progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        preds = []
        for k, item in enumerate(items):
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            dets = self._everything(item, cancel) if self.mode == "everything" else self._boxes(item, cancel)
            dets = [d for d in dets if int(d.mask.sum()) >= self.min_area]
            dets.sort(key=lambda d: -d.mask.size)  # large first: smaller objects end up drawn above them
            unc = float(np.mean([_binary_entropy(d.score) for d in dets])) if dets else 0.0
            preds.append(Prediction(item.width, item.height, unc, _detections=dets, _candidates=dets,
                                    score_threshold=0.0))
            if progress is not None:
                progress(k + 1, len(items))
        return preds

    def _boxes(self, item: SamInput, cancel: Callable[[], bool] | None) -> list[Detection]:
        if not len(item.boxes):
            return []  # nothing to prompt with: no embedding needed
        emb = self.model.embed(item.rgb, cancel)
        found = self.model.decode_boxes(emb, item.boxes)
        return [Detection(label, m, x, y, min(max(s, 0.0), 1.0))
                for label, f in zip(item.labels, found, strict=True) if f is not None for m, x, y, s in [f]]

    def _everything(self, item: SamInput, cancel: Callable[[], bool] | None) -> list[Detection]:
        from pycocotools import mask as mask_utils
        gen = self.generator
        run = type(gen.predictor).predict_torch

        def predict_torch(*a, **kw):  # the generator's batches are where a cancel can stop it
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            return run(gen.predictor, *a, **kw)
        gen.predictor.predict_torch = predict_torch
        try:
            with self.model.lock, torch.no_grad():
                anns = gen.generate(item.rgb)
        finally:
            del gen.predictor.predict_torch
        dets = []
        for a in anns:
            seg = a["segmentation"]
            counts = seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]
            m = mask_utils.decode({"size": list(seg["size"]), "counts": counts}).astype(bool)
            c = maskops.crop_to_content(m)
            if c is not None:
                dets.append(Detection(1, c[0], c[1], c[2], min(max(float(a["predicted_iou"]), 0.0), 1.0)))
        return dets


def sam_segmenter(spec, device: DeviceInfo, project=None) -> SamSegmenter:
    """engine.load_segmenter's SAM branch: spec is an engine.ModelSpec with arch "sam"."""
    mode = spec.prompts or "everything"
    if mode not in PROMPT_MODES:
        raise BadValue(f"unknown prompt mode {mode!r}; use {' or '.join(PROMPT_MODES)}")
    classes: list[tuple[int, str]] = []
    if mode == "boxes":
        if project is None:
            raise BadValue("box prompts come from a project's regions: open a project")
        classes = [(c.id, c.name) for c in project.store.classes()]
    model = load_sam(spec.sam_model, spec.weights, device, spec.download)
    return SamSegmenter(model, mode, spec.points_per_side, spec.pred_iou_thresh, spec.stability_score_thresh,
                        classes=classes)
