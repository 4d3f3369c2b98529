"""The frames of a video file, decoded with PyAV (FFmpeg), frame-exact.

Why PyAV and not OpenCV's VideoCapture (measured on test videos whose frames carry their own
number in their pixels; see the tests and benchmarks/sequence_open.py):
- Frame-exact seeking. Frame k here is the k-th frame in presentation order: the k-th smallest
  packet timestamp, from an index read once from the demuxer (no decoding). OpenCV's
  CAP_PROP_POS_FRAMES turns a frame number into a time through the average frame rate: on
  constant-rate files both were exact, but on a variable-rate H.264 mp4 (200 frames) 25 of 40
  random OpenCV seeks gave the wrong frame (29 of 40 in mkv, where it also counted 238 frames).
- The regular-file gate. PyAV reads through a Python file object, so the file is opened by
  `image_files.open_regular` (a FIFO named x.mp4 is refused at once, and what is decoded is what
  was checked); OpenCV needs a path and opens it itself (non-ASCII paths break on some platforms).
- No outside reads: only the mp4/mov, AVI and Matroska/WebM demuxers may take a file
  (`format_whitelist`), and no protocol is allowed for anything a demuxer would open besides
  it (`protocol_whitelist`, and PyAV's io_open refuses too), so a hostile "video" (an FFmpeg
  concat list or a playlist named x.mp4) cannot make FFmpeg read other files or URLs. Both
  PyAV and OpenCV, unguarded, play a concat list named list.mp4 that points at another file;
  OpenCV offers no per-capture way to forbid it.

How a frame is reached. A fresh container decodes frame 0 at once (no index needed: opening a
video to its first frame is one header read and one decode). Stepping forward keeps decoding
from where the decoder is. Any other move (backward, or forward past a keyframe) reads the index
of packet timestamps (once per open file: a demux pass that decodes nothing), seeks to the last
keyframe at or before the frame and decodes forward to it, checking every decoded frame's
timestamp against the index; a seek that lands after the frame backs off to earlier keyframes,
and a stream whose timestamps do not match its index is decoded from its start, counting frames.
Going backward, the frames decoded on the way are handed back too (up to `keep`), so stepping
back through a long group of pictures does not decode that group again for every step.

Frames are RGB uint8 (H, W, 3) in the orientation stored in the file (a rotation in the
container's display matrix is not applied).
"""

from __future__ import annotations

import bisect
import os
import re
from typing import IO, Any, Iterator

import numpy as np

from segstudio.core.image_files import ImageDecodeError, NotEnoughMemory, open_regular
from segstudio.core.imageio import check_size
from segstudio.core.sequences import MAX_FRAMES

# FFmpeg demuxer names (a demuxer matches when one of its comma-separated names is listed)
_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm"
# The file itself is read through our file object (no protocol); "none" names no protocol, so
# anything an allowed demuxer would open besides it (a reference, a segment) is refused. io_open
# alone does not cover it: FFmpeg's concat demuxer opens its parts without it (tested).
_OPTIONS = {"format_whitelist": _FORMATS, "protocol_whitelist": "none"}
FORWARD_WITHOUT_INDEX = 16  # decode forward this far before reading the index to seek instead
_SEEK_TRIES = 4  # keyframes to back off over before decoding from the start


def _refuse_nested_open(url: str, flags: int, options: dict) -> Any:
    raise PermissionError("segstudio reads one video file, never the files or URLs a video refers to")


class VideoSource:
    """An open video; one thread at a time (the caller holds its lock)."""

    kind = "video"

    def __init__(self, path: str | os.PathLike):
        self._path = path
        self.keep = 0  # frames before a backward target to hand back (set by the cache)
        self._pts: list[int] | None = None  # frame i's presentation timestamp, once the index is read
        self._index_of: dict[int, int] = {}
        self._keyframes: list[int] = []  # frame numbers of keyframes, ascending
        self._by_count = False  # decode from the start, counting (timestamps that cannot be trusted)
        self._f: IO[bytes] | None = None
        self._c: Any = None
        self._open()
        assert self._f is not None
        st = os.fstat(self._f.fileno())
        self.identity: tuple[int, int, int, int] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open(self) -> None:
        import av
        self.close()
        self._f = open_regular(self._path)
        try:
            self._c = av.open(self._f, "r", container_options=_OPTIONS,
                              io_open=_refuse_nested_open)
        except MemoryError:
            self.close()
            raise NotEnoughMemory("not enough memory to open this video") from None
        except Exception as e:  # FFmpeg errors on a file that is no video it can read  # noqa: BLE001
            self.close()
            raise ImageDecodeError(f"not a video segstudio can read (mp4, mov, avi, mkv, webm): {_why(e)}") from None
        if not self._c.streams.video:
            self.close()
            raise ImageDecodeError("this file has no video stream (or its index is missing: "
                                   "a truncated or unfinished video?)")
        self._s = self._c.streams.video[0]
        if self._s.codec_context is None:
            self.close()
            raise ImageDecodeError("the video's codec is missing or not one FFmpeg can decode")
        self._s.thread_type = "AUTO"  # frame threads: the next frame is decoding while this one is shown
        self._decoder: Iterator[Any] | None = None
        self._next: int | None = 0  # the frame the decoder gives next; None when unknown

    def _read_header(self) -> None:
        s, cc = self._s, self._s.codec_context
        self.width, self.height = int(cc.width or 0), int(cc.height or 0)
        if self.width <= 0 or self.height <= 0:
            raise ImageDecodeError("the video's header gives no frame size")
        rate = s.average_rate or s.guessed_rate
        self.fps = float(rate) if rate and float(rate) > 0 else None
        n = int(s.frames or 0)  # the container's own count (mp4, mov, avi)
        if n <= 0:
            n = _tagged_count(s.metadata)  # mkvmerge's statistics tags
        if n <= 0:
            # Matroska/WebM from FFmpeg keep a duration, not a count, and duration x rate is only an
            # estimate (238 for a 200-frame variable-rate file): count the packets (a demux pass)
            self._build_index()
            n = len(self._pts or [])
        if n <= 0:
            raise ImageDecodeError("the video has no frames")
        self._header_frames = min(n, MAX_FRAMES)

    @property
    def frames(self) -> int:
        """Frames in the video: exact once the index is read, else the header's count."""
        return len(self._pts) if self._pts is not None else self._header_frames

    def _build_index(self) -> None:
        """Every frame's presentation timestamp, from a demux pass on a second handle (decodes nothing)."""
        import av
        pts: list[int] = []
        keys: list[int] = []
        untimed = False
        with open_regular(self._path) as f:
            try:
                with av.open(f, "r", container_options=_OPTIONS,
                             io_open=_refuse_nested_open) as c:
                    s = c.streams.video[self._s.index if self._s.index < len(c.streams.video) else 0]
                    for pk in c.demux(s):
                        if pk.size == 0 or pk.is_discard:
                            continue
                        if pk.pts is None:
                            untimed = True
                            continue
                        pts.append(int(pk.pts))
                        if pk.is_keyframe:
                            keys.append(int(pk.pts))
                        if len(pts) > MAX_FRAMES:
                            raise ImageDecodeError(f"the video has more than {MAX_FRAMES} frames")
            except ImageDecodeError:
                raise
            except av.FFmpegError:
                pass  # a damaged tail: the frames indexed so far are the video (truncated files)
        pts.sort()
        self._pts = pts
        self._index_of = {t: i for i, t in enumerate(pts)}
        if untimed or len(self._index_of) != len(pts):
            self._by_count = True  # timestamps missing or repeated: frame k is the k-th decoded frame
        self._keyframes = sorted(self._index_of[t] for t in set(keys))

    # ------------------------------------------------------------------ reading
    def read(self, k: int, allow_large: bool) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        check_size(self.width, self.height, allow_large)
        if k >= self.frames and self._pts is None:
            self._build_index()  # the header's count may be an estimate
        if k >= self.frames:
            raise self._past_end(k)
        try:
            return self._read(k)
        except (ImageDecodeError, NotEnoughMemory):
            self._decoder, self._next = None, None
            raise
        except MemoryError:
            self._decoder, self._next = None, None
            raise NotEnoughMemory("not enough memory to decode this video frame") from None
        except Exception as e:  # FFmpeg errors on a damaged packet  # noqa: BLE001
            self._decoder, self._next = None, None
            raise ImageDecodeError(f"frame {k} of this video cannot be decoded: {_why(e)}") from None

    def _read(self, k: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        nxt = self._next
        if nxt is not None and nxt <= k and (self._decoder is not None or nxt == 0):
            if self._pts is None and k - nxt <= FORWARD_WITHOUT_INDEX:
                return self._forward(k, keep_from=k)
            if self._pts is not None and (self._by_count or not self._keyframe_in(nxt, k)):
                return self._forward(k, keep_from=k)
        if self._pts is None:
            self._build_index()
            if k >= self.frames:
                raise self._past_end(k)
        backward = nxt is not None and k < nxt
        keep_from = max(0, k - self.keep) if backward else k
        if self._by_count:
            self._restart()
            return self._forward(k, keep_from)
        return self._seek(k, keep_from)

    def _past_end(self, k: int) -> ImageDecodeError:
        if self.frames < self._header_frames:
            return ImageDecodeError(f"frame {k} is past the end of the video: the file holds frames 0 to "
                                    f"{self.frames - 1} of the {self._header_frames} its header lists (truncated?)")
        return ImageDecodeError(f"frame {k} is past the end of the video (frames 0 to {self.frames - 1})")

    def _keyframe_in(self, a: int, b: int) -> bool:
        """A keyframe among frames a+1..b (then seeking there is cheaper than decoding from a)."""
        i = bisect.bisect_right(self._keyframes, a)
        return i < len(self._keyframes) and self._keyframes[i] <= b

    def _restart(self) -> None:
        self._open()

    def _seek(self, k: int, keep_from: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        assert self._pts is not None
        at = bisect.bisect_right(self._keyframes, k) - 1
        for _ in range(_SEEK_TRIES):
            if at < 0:
                break
            key = self._keyframes[at]
            self._c.seek(self._pts[key], stream=self._s, backward=True, any_frame=False)
            self._decoder, self._next = self._c.decode(self._s), None
            got = self._forward(k, max(keep_from, key), from_seek=True)
            if got is not None:
                return got
            at -= 1  # landed after frame k: an earlier keyframe
        self._restart()
        return self._forward(k, keep_from)

    def _forward(self, k: int, keep_from: int, from_seek: bool = False) -> Any:
        """Decode on to frame k. Returns (frame k, frames kept on the way); None when a seek
        landed after k (only with from_seek)."""
        if self._decoder is None:
            self._decoder = self._c.decode(self._s)
        kept: list[tuple[int, np.ndarray]] = []
        while True:
            try:
                frame = next(self._decoder)
            except StopIteration:
                self._decoder, self._next = None, None
                raise ImageDecodeError(f"the video ends before frame {k} (the file may be truncated)") from None
            i = self._number(frame)
            if i is None:  # a timestamp the index does not know: count from the start instead
                self._by_count = True
                self._restart()
                return self._forward(k, min(keep_from, k))
            self._next = i + 1
            if i > k:
                if from_seek:
                    return None
                self._decoder, self._next = None, None
                raise ImageDecodeError(f"frame {k} could not be reached (the decoder skipped from {i - 1} to {i})")
            if i == k:
                return self._rgb(frame, k), kept
            if i >= keep_from:
                kept.append((i, self._rgb(frame, i)))

    def _number(self, frame: Any) -> int | None:
        if self._by_count or self._pts is None:
            return self._next if self._next is not None else None
        return self._index_of.get(frame.pts) if frame.pts is not None else None

    def _rgb(self, frame: Any, i: int) -> np.ndarray:
        if frame.width != self.width or frame.height != self.height:
            raise ImageDecodeError(f"frame {i} is {frame.width}x{frame.height}, the video's header says "
                                   f"{self.width}x{self.height}")
        return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        c, f = self._c, self._f
        self._c = self._f = None
        if c is not None:
            try:
                c.close()
            except Exception:  # closing a damaged container  # noqa: BLE001
                pass
        if f is not None:
            f.close()


def _tagged_count(metadata: dict) -> int:
    for key, value in metadata.items():
        if key.upper().startswith("NUMBER_OF_FRAMES"):
            try:
                return max(0, int(str(value).strip()))
            except ValueError:
                return 0
    return 0


def _why(e: BaseException) -> str:
    """FFmpeg's words without its error number and the name it gives the file object ("'6'")."""
    text = str(e) or type(e).__name__
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    text = re.sub(r": '[^']*'$", "", text)
    if text.startswith("Invalid data found when processing input"):
        return "its data is not a video this decoder knows, or the file is cut short"
    return text
