"""SAM image embeddings and their cache. No Qt.

`Embedding`: one image through the image encoder (what `sam.SamModel.embed` returns and
`SamModel.decode` answers prompts from). `EmbeddingCache` keeps embeddings in memory (LRU, bounded
by bytes) and on disk under the project's store folder, so an image is embedded once; disk
entries are plain tensors, read back with `torch.load(weights_only=True)` and checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from segstudio.inference.pretrained import first_line

log = logging.getLogger(__name__)

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
                        path, first_line(e))
            self._delete(path)
            return None

    def _delete(self, path: Path) -> None:
        # only a file this cache wrote: its own folder, its own name pattern
        if self.folder is not None and path.parent == self.folder and _ENTRY.match(path.name):
            with contextlib.suppress(OSError):
                path.unlink()


