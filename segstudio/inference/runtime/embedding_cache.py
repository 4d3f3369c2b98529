"""An embedding cache for promptable models: in memory (LRU, bounded by bytes) and on disk. No Qt.

Generic over the embedding type: a family gives its entry class (`to_state(key)` -> plain tensors,
ints and strings; `from_state(d, key)` -> a checked entry, ValueError for anything else; `nbytes`),
the format name its keys and entries carry, and the most bytes one entry may take on disk. The
Segment Anything family's cache (sam/cache.py) and SAM 2's (sam2/cache.py) are this class with
their own entries.

A disk entry is data from disk like any other: its file and the sizes its archive declares are
bounded before it is read, and what it holds is checked by the family's `from_state`, or it is
deleted and computed again. The key holds a digest of the image file's content (all of a small
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
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, Protocol, TypeVar

import torch

from segstudio.core import sequences
from segstudio.inference.runtime.pretrained import first_line
from segstudio.inference.runtime.torch_archive import archive_problem, size_text

log = logging.getLogger(__name__)

HEAD_TAIL = 64 * 1024  # the blocks of a large image file that its key digests
FULL_HASH_MAX = 1 << 20  # files up to this size are digested whole


class Entry(Protocol):
    """What a family's embedding is to the cache."""

    @property
    def nbytes(self) -> int: ...

    def to_state(self, key: str) -> dict: ...


E = TypeVar("E", bound=Entry)


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


class EmbeddingCache(Generic[E]):
    """Embeddings by key: in memory (LRU, bounded by bytes) and, with a folder, on disk
    (FOLDER/<key>.pt; each family keeps one folder per model under the project's data folder).

    A family subclasses it with its own `ENTRY` (the class whose `from_state` checks what a disk
    entry holds), `FORMAT`, `VERSION` and `MAX_ENTRY_BYTES`. Keys (`key()`) hold the format, the
    model, the image file's path, size, mtime_ns and content digest, and the window/level: an edited
    image file, another window/level or another model misses. A disk entry that is too large,
    cannot be read, or fails its checks, is deleted and computed again. Thread-safe; two threads
    asking for the same key compute it once."""

    ENTRY: ClassVar[Any]  # the family's embedding class: from_state(d, key) -> a checked entry
    FORMAT: ClassVar[str]
    VERSION: ClassVar[int] = 1
    MAX_ENTRY_BYTES: ClassVar[int]

    def __init__(self, folder: str | Path | None = None, max_bytes: int = 512 * 2 ** 20,
                 max_disk_bytes: int | None = 4 * 2 ** 30):
        self.folder = Path(folder) if folder is not None else None
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = max_disk_bytes  # None: unbounded; else the least recently used entries go
        self._saves = 0
        self._writing: set[str] = set()  # this process's temporary files being written now
        self._mem: OrderedDict[str, E] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self.stats = {"memory": 0, "disk": 0, "computed": 0, "corrupt": 0}

    @classmethod
    def key(cls, model_id: str, image_path: str | Path, window: tuple[float, float] | None = None) -> str:
        """Raises FileNotFoundError when the image file is gone (OSError when it cannot be read).
        A frame of a stack or video (core/sequences' FILE/NNNNNN) is keyed by its file and number."""
        p = Path(image_path)
        frame = ""
        split = sequences.split_frame_path(p.as_posix())
        if split is not None and not p.exists():
            p, frame = Path(split[0]), str(split[1])
        st = p.stat()
        w = "auto" if window is None else f"{float(window[0])!r},{float(window[1])!r}"
        text = "\0".join([cls.FORMAT, str(cls.VERSION), model_id, str(p.resolve()), str(st.st_size),
                          str(st.st_mtime_ns), content_digest(p, st), w] + ([f"frame {frame}"] if frame else []))
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

    def get(self, key: str) -> E | None:
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

    def put(self, key: str, emb: E) -> None:
        self._remember(key, emb)
        self._save(key, emb)

    def get_or_compute(self, key: str, fn: Callable[[], E],
                       cancel: Callable[[], bool] | None = None) -> E:
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

    def _remember(self, key: str, emb: E) -> None:
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

    def _save(self, key: str, emb: E) -> None:
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

    def _load(self, key: str) -> E | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f:  # the file checked is the file read
                size = os.fstat(f.fileno()).st_size
                if size > self.MAX_ENTRY_BYTES:
                    raise ValueError(f"{size_text(size)}, more than an embedding takes "
                                     f"({size_text(self.MAX_ENTRY_BYTES)})")
                problem = archive_problem(f, self.MAX_ENTRY_BYTES)  # what it would inflate to, before reading
                if problem:
                    raise ValueError(problem)
                state = torch.load(f, map_location="cpu", weights_only=True)
            emb = self.ENTRY.from_state(state, key)
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


