"""SAM image embeddings and their cache. No Qt.

`Embedding`: one image through the image encoder (what `sam.SamModel.embed` returns and
`SamModel.decode` answers prompts from). `EmbeddingCache` keeps embeddings in memory (LRU, bounded
by bytes) and on disk under the project's store folder, so an image is embedded once; disk
entries are plain tensors, read back with `torch.load(weights_only=True)` and checked.

A disk entry is data from disk like any other: its file and the sizes its archive declares are
bounded before it is read (a 2.7 MB entry cannot inflate to gigabytes), and what it holds must be
what the decoder takes (SAM's 256x64x64 image embedding, of a float dtype, sizes that agree), or it
is deleted and computed again. The key holds a digest of the image file's content (all of a small
file, the first and last blocks of a large one), so a file rewritten with the same size and mtime
misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from segstudio.inference.runtime.pretrained import first_line
from segstudio.inference.runtime.torch_archive import archive_problem, size_text

log = logging.getLogger(__name__)

EMBEDDING_FORMAT = "segstudio-sam-embedding"
EMBEDDING_VERSION = 1
INPUT_SIDE = 1024  # SAM's encoder input: the long side resized to this
FEATURES_SHAPE = (1, 256, 64, 64)  # the image embedding every SAM decoder here takes
MAX_INTERM_CHANNELS = 2048  # HQ-SAM's intermediate ViT map: the encoder's width (ViT-H: 1280)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# an entry holds the features and at most one (1, 64, 64, C) map, float32 at most: ~36 MiB; twice that
MAX_ENTRY_BYTES = 2 * 4 * (256 * 64 * 64 + 64 * 64 * MAX_INTERM_CHANNELS)
HEAD_TAIL = 64 * 1024  # the blocks of a large image file that its key digests
FULL_HASH_MAX = 1 << 20  # files up to this size are digested whole


def resized_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) after SAM's ResizeLongestSide(1024), as the packages compute it."""
    scale = INPUT_SIDE / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


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
        if not torch.is_tensor(f) or tuple(f.shape) != FEATURES_SHAPE or f.dtype not in DTYPES:
            raise ValueError(f"features of shape {_shape(f)}, not {FEATURES_SHAPE} of a float dtype")
        if interm is not None and (not torch.is_tensor(interm) or interm.dim() != 4
                                   or tuple(interm.shape[:3]) != (1, 64, 64)
                                   or not 0 < interm.shape[3] <= MAX_INTERM_CHANNELS or interm.dtype not in DTYPES):
            raise ValueError(f"intermediate features of shape {_shape(interm)}, not (1, 64, 64, C) of a float dtype")
        sizes = []
        for k in ("original_size", "input_size"):
            s = d.get(k)
            if not isinstance(s, (list, tuple)) or len(s) != 2 or not all(isinstance(v, int) and v > 0 for v in s):
                raise ValueError(f"bad {k}")
            sizes.append((int(s[0]), int(s[1])))
        if sizes[1] != resized_size(*sizes[0]):
            raise ValueError(f"input size {sizes[1]} is not SAM's for an image of {sizes[0]}")
        if not isinstance(d.get("model"), str):
            raise ValueError("bad model")
        if not (torch.isfinite(f).all() and (interm is None or torch.isfinite(interm).all())):
            raise ValueError("non-finite features")
        return cls(f, interm, sizes[0], sizes[1], d["model"])


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) + f" {t.dtype}" if torch.is_tensor(t) else type(t).__name__


_ENTRY = re.compile(r"^[0-9a-f]{40}\.pt$")  # the only file names the cache writes (and may delete)
_TMP = re.compile(r"^\.[0-9a-f]{40}\.pt\.tmp-(\d+)-\d+$")  # its temporary files: .KEY.pt.tmp-PID-THREAD
STALE_TMP_S = 600  # a temporary file this old is no write in progress (an entry takes about a second)

_digests: OrderedDict[tuple, str] = OrderedDict()  # content digests by file state, this process
_digests_lock = threading.Lock()


def content_digest(path: Path, st: os.stat_result) -> str:
    """A digest of the file's content: all of it up to FULL_HASH_MAX bytes, else its first and
    last HEAD_TAIL bytes. Remembered per file state (inode, size, mtime, ctime: a rewrite changes
    ctime, whatever mtime is set back to), so a key costs a stat when nothing changed."""
    state = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _digests_lock:
        if state in _digests:
            _digests.move_to_end(state)
            return _digests[state]
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: nothing to key a cache on (and open could hang)
        raise OSError(f"{path} is not a regular file")
    h = hashlib.blake2b(digest_size=16)
    # non-blocking, and the opened file checked again: a FIFO swapped in after the stat cannot hang it
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size <= FULL_HASH_MAX:
            h.update(f.read(FULL_HASH_MAX + 1))
        else:
            h.update(f.read(HEAD_TAIL))
            f.seek(-HEAD_TAIL, os.SEEK_END)
            h.update(f.read(HEAD_TAIL))
    digest = h.hexdigest()
    with _digests_lock:
        _digests[state] = digest
        while len(_digests) > 4096:
            _digests.popitem(last=False)
    return digest


class EmbeddingCache:
    """Embeddings by key: in memory (LRU, bounded by bytes) and, with a folder, on disk
    (`sam_spec.embedding_dir(project, model.cache_id)`: FOLDER/.segstudio/sam/<model>/<key>.pt).

    Keys (`key()`) hold the model, the image file's path, size, mtime_ns and content digest, and
    the window/level: an edited image file, another window/level or another model misses. A disk
    entry that is too large, cannot be read, or fails its checks, is deleted and computed again.
    Thread-safe; two threads asking for the same key compute it once."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int = 512 * 2 ** 20,
                 max_disk_bytes: int | None = 4 * 2 ** 30):
        self.folder = Path(folder) if folder is not None else None
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = max_disk_bytes  # None: unbounded; else the least recently used entries go
        self._saves = 0
        self._writing: set[str] = set()  # this process's temporary files being written now
        self._mem: OrderedDict[str, Embedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self.stats = {"memory": 0, "disk": 0, "computed": 0, "corrupt": 0}

    @staticmethod
    def key(model_id: str, image_path: str | Path, window: tuple[float, float] | None = None) -> str:
        """Raises FileNotFoundError when the image file is gone (OSError when it cannot be read)."""
        p = Path(image_path)
        st = p.stat()
        w = "auto" if window is None else f"{float(window[0])!r},{float(window[1])!r}"
        text = "\0".join([EMBEDDING_FORMAT, str(EMBEDDING_VERSION), model_id, str(p.resolve()), str(st.st_size),
                          str(st.st_mtime_ns), content_digest(p, st), w])
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
        with self._lock:
            self._writing.add(tmp.name)
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
            with self._lock:
                self._writing.discard(tmp.name)
        self._saves += 1
        if self._saves % 16 == 1:
            self.prune()

    def prune(self) -> int:
        """Delete the temporary files of writes that were cut short (a crash, a kill), and the least
        recently used disk entries (by mtime: a disk hit touches its file) beyond max_disk_bytes;
        only files of this cache's own name patterns. Returns how many files went."""
        if self.folder is None:
            return 0
        entries, gone = [], 0
        try:
            for p in self.folder.iterdir():
                if _ENTRY.match(p.name):
                    with contextlib.suppress(OSError):
                        s = p.stat()
                        entries.append((s.st_mtime_ns, s.st_size, p))
                elif _TMP.match(p.name) and self._orphaned(p):
                    gone += self._delete(p)
        except OSError:
            return gone
        if self.max_disk_bytes is None:
            return gone
        total = sum(e[1] for e in entries)
        for _, size, p in sorted(entries):
            if total <= self.max_disk_bytes:
                break
            gone += self._delete(p)
            total -= size
        return gone

    def _orphaned(self, tmp: Path) -> bool:
        """Whether a temporary file of this cache's pattern is no write in progress: this process's
        own and not being written, or old, or (after a minute) its writer is no process here."""
        m = _TMP.match(tmp.name)
        try:
            age = time.time() - tmp.lstat().st_mtime
        except OSError:
            return False
        if m is None:
            return False
        pid = int(m.group(1))
        if pid == os.getpid():
            with self._lock:
                return tmp.name not in self._writing
        if age > STALE_TMP_S:
            return True
        if age > 60:
            try:
                os.kill(pid, 0)  # signal 0: asks only whether the process exists
            except ProcessLookupError:
                return True
            except OSError:  # another user's process (or a platform without it): keep
                return False
        return False

    def _load(self, key: str) -> Embedding | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f:  # the file checked is the file read
                size = os.fstat(f.fileno()).st_size
                if size > MAX_ENTRY_BYTES:
                    raise ValueError(f"{size_text(size)}, more than an embedding takes ({size_text(MAX_ENTRY_BYTES)})")
                problem = archive_problem(f, MAX_ENTRY_BYTES)  # what it would inflate to, before reading
                if problem:
                    raise ValueError(problem)
                state = torch.load(f, map_location="cpu", weights_only=True)
            emb = Embedding.from_state(state, key)
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: pruned last
            return emb
        except Exception as e:  # any damage (truncated, foreign, not a pickle): compute it again  # noqa: BLE001
            self.stats["corrupt"] += 1
            log.warning("embedding cache entry %s is unusable (%s): deleting it; the embedding is computed again",
                        path, str(e).splitlines()[0][:300] if str(e).strip() else first_line(e))
            self._delete(path)
            return None

    def _delete(self, path: Path) -> int:
        """1 when a file this cache wrote (its own folder, its own name patterns) was deleted."""
        if self.folder is not None and path.parent == self.folder and (_ENTRY.match(path.name)
                                                                       or _TMP.match(path.name)):
            try:
                path.unlink()
                return 1
            except OSError:
                return 0
        return 0


