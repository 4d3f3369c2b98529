"""Frames of a stack file or a video, decoded lazily, frame-exact, with a bounded cache.

- `probe(path)`: what a container file holds (kind, frame count, size, axes, rate), from its
  headers only. None for a file that is a single image (a 1-page or 2D TIFF, an RGB TIFF) or
  that is no container at all.
- `read_frame(path, index)`: frame `index` (0-based), as `imageio.decode_image` returns an
  image: (H, W) gray or (H, W, 3) RGB; uint8, 16-bit kept uint16. The array is shared with the
  cache and read-only: copy it to change it.
- `forget(path)`: drop one file's cached frames and open handle.

Stacks: `tiff_frames` (tifffile's first series; the frame axis is the product of the leading
axes other than Y, X, samples and a C of 2 to 4 colours, flattened in the series' order, e.g.
T x Z). Videos: `video_frames` (PyAV; why not OpenCV is said there). Which one reads a file is
decided by its extension (`sequences.VIDEO_EXTENSIONS`, `STACK_EXTENSIONS`).

Cache. Decoded frames are kept in one module-wide LRU bounded by bytes (`CACHE_BYTES`, 256 MB by
default: about 40 frames of 1080p RGB), and the last `OPEN_FILES` containers stay open with
their decoder where it stopped, so stepping to the next frame of a video decodes one frame.
Every call stats the file: a file changed on disk (size, mtime, inode) is reopened and its old
frames are never served. Thread-safe: the cache has one lock, each open file its own, so
threads decoding ahead in different files run in parallel, and two threads asking for the same
frame decode it once.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Union

import numpy as np

from segstudio.core.image_files import ImageDecodeError, open_regular
from segstudio.core.imageio import check_size
from segstudio.core.sequences import STACK_EXTENSIONS, is_video_name
from segstudio.core.tiff_frames import TiffSource
from segstudio.core.video_frames import VideoSource

CACHE_BYTES = 256 << 20
OPEN_FILES = 4
KEEP_BACKWARD = 32  # at most this many frames before a backward seek's target are kept (and half the cache)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

Source = Union[TiffSource, VideoSource]
Identity = tuple[int, int, int, int]


@dataclass(frozen=True)
class SequenceInfo:
    kind: str  # "video" or "stack"
    frames: int  # >= 1; a video's header count (Matroska/WebM: from its duration, exact once read)
    width: int  # of a frame, upright
    height: int
    axes: str  # tifffile's series axes ("IYX", "ZYX", "TZYX", "TZCYX", ...); "TYXC" for a video
    fps: float | None  # videos only


class _Open:
    """An open file and the lock that its one decoder needs."""

    def __init__(self, source: Source):
        self.source = source
        self.lock = threading.Lock()
        self.retired = False  # left the open list: closed by whoever holds the lock last
        self.closed = False


_lock = threading.Lock()
_frames: OrderedDict[tuple[str, Identity, int], np.ndarray] = OrderedDict()
_bytes = 0
_limit = CACHE_BYTES
_open: OrderedDict[str, _Open] = OrderedDict()


def _ext(name: str) -> str:
    return os.path.splitext(name)[1][1:].lower()


def _identity(path: str | os.PathLike) -> Identity:
    """The file as it is now (stat follows links); ImageDecodeError for anything not a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except OSError as e:  # a link loop, a name too long, permission on a folder above
        raise ImageDecodeError(f"cannot read file: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        open_regular(path).close()  # says what it is (FIFO, device, folder) without blocking
        raise ImageDecodeError("not a regular file")
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _make_source(path: str | os.PathLike) -> Source:
    name = os.fspath(path)
    if is_video_name(name):
        return VideoSource(path)
    if _ext(name) in STACK_EXTENSIONS:
        return TiffSource(path)
    raise ImageDecodeError("not a stack or video file (a video: mp4, mov, avi, mkv, m4v, webm; a stack: tif, tiff)")


# ---------------------------------------------------------------------------- probe
def probe(path: str | os.PathLike) -> SequenceInfo | None:
    """What a stack or video file holds, from its headers; None for a single image or a file of
    another kind. ImageDecodeError for a file that cannot be read (a FIFO, a device, a broken or
    unsupported video, a stack layout that cannot be believed).

    Costs measured (benchmarks/sequence_open.py): a TIFF stack 0.6 ms (500 pages with shape
    metadata; 8 ms for 500 pages without, whose IFDs tifffile walks); an mp4/mov/avi 0.2 to 4 ms,
    but FFmpeg's stream analysis (which PyAV always runs) decodes the first frame, ~20 ms on a
    12 Mbit/s 1080p H.264 file; a Matroska/WebM file without a frame count is demuxed to count its
    frames (~40 ms for 24 MB): exact counts, as a duration only estimates them."""
    name = os.fspath(path)
    if is_video_name(name):
        video = VideoSource(path)
        try:
            return SequenceInfo("video", video.frames, video.width, video.height, "TYXC", video.fps)
        finally:
            video.close()
    if _ext(name) not in STACK_EXTENSIONS:
        return None
    with open_regular(path) as f:
        if f.read(4) not in _TIFF_MAGIC:
            return None  # not a TIFF inside: the image decoder says what it is
    stack = TiffSource(path)
    try:
        lay = stack.layout
        if lay is None:
            return None  # a single image, or a TIFF tifffile cannot read (the image decoder judges it)
        return SequenceInfo("stack", lay.frames, lay.width, lay.height, lay.axes, None)
    finally:
        stack.close()


# ---------------------------------------------------------------------------- read
def read_frame(path: str | os.PathLike, index: int, *, allow_large: bool = False) -> np.ndarray:
    """Frame `index` (0-based) of a stack or video file; ImageDecodeError with the reason when the
    index is out of range or the frame cannot be decoded. Read-only: the cache keeps it."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"a frame number is an int, not {type(index).__name__}")
    index = int(index)
    if index < 0:
        raise ImageDecodeError(f"frame numbers start at 0, not {index}")
    key = os.path.abspath(os.fspath(path))
    ident = _identity(path)
    hit = _cached((key, ident, index), allow_large)
    if hit is not None:
        return hit
    entry = _entry(key, path, ident)
    try:
        with entry.lock:
            if not entry.closed:
                return _decode(entry, key, index, allow_large)
        # forgotten or evicted (and closed) by another thread since we took it: a handle of our own
        private = _Open(_make_source(path))
        try:
            with private.lock:
                return _decode(private, key, index, allow_large)
        finally:
            _close(private)
    finally:
        if entry.retired and entry.lock.acquire(blocking=False):
            try:
                _close(entry)
            finally:
                entry.lock.release()


def _decode(entry: _Open, key: str, index: int, allow_large: bool) -> np.ndarray:
    """Frame `index` from an open file; the caller holds entry.lock."""
    source = entry.source
    ident = source.identity  # what was opened (a file replaced since the stat is cached as what it is)
    hit = _cached((key, ident, index), allow_large)  # another thread decoded it meanwhile
    if hit is not None:
        return hit
    if isinstance(source, VideoSource):
        frame_bytes = source.width * source.height * 3
        source.keep = min(KEEP_BACKWARD, (_limit // 2) // max(1, frame_bytes))
    elif source.layout is None:
        raise ImageDecodeError("this TIFF is a single image, not a stack of frames")
    elif index >= source.frames:
        raise ImageDecodeError(f"frame {index} is past the end of the stack (frames 0 to {source.frames - 1})")
    frame, passed = source.read(index, allow_large)
    frame.setflags(write=False)
    for i, a in passed:
        a.setflags(write=False)
        _store((key, ident, i), a)
    _store((key, ident, index), frame)
    return frame


def _cached(ck: tuple[str, Identity, int], allow_large: bool) -> np.ndarray | None:
    with _lock:
        a = _frames.get(ck)
        if a is None:
            return None
        _frames.move_to_end(ck)
    check_size(a.shape[1], a.shape[0], allow_large)
    return a


def _store(ck: tuple[str, Identity, int], a: np.ndarray) -> None:
    global _bytes
    if a.nbytes > _limit:
        return
    with _lock:
        old = _frames.pop(ck, None)
        if old is not None:
            _bytes -= old.nbytes
        _frames[ck] = a
        _bytes += a.nbytes
        while _bytes > _limit and _frames:
            _, dropped = _frames.popitem(last=False)
            _bytes -= dropped.nbytes


def _entry(key: str, path: str | os.PathLike, ident: Identity) -> _Open:
    """The open file for `key` as it is now: a file changed on disk is reopened, its frames dropped."""
    with _lock:
        entry = _open.get(key)
        if entry is not None and entry.source.identity == ident:
            _open.move_to_end(key)
            return entry
    if entry is not None:
        forget(path)
    source = _make_source(path)  # outside the lock: opening a video takes milliseconds
    if source.identity != ident:  # replaced between the stat and the open: what was opened is served
        _drop_frames(key)
    fresh = _Open(source)
    evicted: list[_Open] = []
    with _lock:
        entry = _open.get(key)
        if entry is not None and entry.source.identity == source.identity:
            evicted.append(fresh)  # another thread opened it first
        else:
            if entry is not None:
                evicted.append(_open.pop(key))
            _open[key] = entry = fresh
            while len(_open) > OPEN_FILES:
                evicted.append(_open.popitem(last=False)[1])
    for e in evicted:
        _retire(e)
    return entry


def _retire(entry: _Open) -> None:
    """Close a file that left the open list, now if no thread is reading it, else when that thread is done."""
    entry.retired = True
    if entry.lock.acquire(blocking=False):  # else the reader holding it closes it when it lets go
        try:
            _close(entry)
        finally:
            entry.lock.release()


def _close(entry: _Open) -> None:
    """Close an entry; the caller holds its lock."""
    entry.closed = True
    try:
        entry.source.close()
    except Exception:  # closing a damaged file  # noqa: BLE001
        pass


def _drop_frames(key: str) -> None:
    global _bytes
    with _lock:
        for ck in [ck for ck in _frames if ck[0] == key]:
            _bytes -= _frames.pop(ck).nbytes


def forget(path: str | os.PathLike) -> None:
    """Drop the cached frames and the open handle of one file."""
    key = os.path.abspath(os.fspath(path))
    _drop_frames(key)
    with _lock:
        entry = _open.pop(key, None)
    if entry is not None:
        _retire(entry)


# ---------------------------------------------------------------------------- cache control
def cache_info() -> dict:
    """What the cache holds now: bytes, frames, limit and open files (for tests and benchmarks)."""
    with _lock:
        return {"bytes": _bytes, "frames": len(_frames), "limit": _limit, "open_files": len(_open)}


def set_cache_limit(nbytes: int) -> None:
    """Bound the frame cache to `nbytes` (frames are dropped, oldest first, to fit)."""
    global _limit, _bytes
    if nbytes < 0:
        raise ValueError("a cache limit is 0 bytes or more")
    with _lock:
        _limit = int(nbytes)
        while _bytes > _limit and _frames:
            _bytes -= _frames.popitem(last=False)[1].nbytes


def clear() -> None:
    """Drop every cached frame and close every open file."""
    with _lock:
        keys = list(_open)
    for key in keys:
        forget(key)
    _drop_frames_all()


def _drop_frames_all() -> None:
    global _bytes
    with _lock:
        _frames.clear()
        _bytes = 0
