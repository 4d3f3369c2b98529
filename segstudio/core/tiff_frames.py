"""The frames of a multi-page or 3D TIFF, read one frame at a time with tifffile.

Layout. tifffile's first series (`series[0]`; OME-TIFF and ImageJ axes where the file has them)
is split into the axes of one page (Y, X and the samples S) and the leading axes that count
pages. Of the leading axes, a channel axis C of 2 to 4 planes is part of each frame (its planes
are merged like a page's samples: 1 plane gray, 2 the first plane, 3 or 4 the first three as
RGB, as imageio reads a single TIFF); every other leading axis (T, Z, Q, I, a C of more than 4
planes, ...) is a frame axis, and the frames are their product, flattened in the series' order
(T then Z: frame = t x Z + z). A 2D TIFF, an RGB (YXS) TIFF or a series of one frame is a single
image: `layout` returns None for it.

A frame reads only its own pages (`TiffFile.asarray(key=...)`), never the whole series. An
ImageJ stack written contiguously without an IFD per page (files over 4 GB) is read by offset,
after checking that the file holds every byte its header claims. 16-bit stays 16-bit; other
types follow imageio's single-TIFF rules; the first page's Orientation tag is applied.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import IO

import numpy as np

from segstudio.core.image_files import ImageDecodeError, NotEnoughMemory, open_regular
from segstudio.core.imageio import _normalise_tiff_array, apply_orientation, check_size
from segstudio.core.memory import default_budget, format_bytes
from segstudio.core.sequences import MAX_FRAMES

log = logging.getLogger(__name__)

_PAGE_AXES = frozenset("YXS")
MAX_CHANNELS_IN_FRAME = 4  # a C axis longer than this is frames, not colours


@dataclass(frozen=True)
class TiffLayout:
    axes: str  # the series' axes, as tifffile reports them (squeezed)
    lead_shape: tuple[int, ...]  # leading (page-counting) axes
    lead_axes: str
    channel_pos: int | None  # position of the in-frame C axis among the leading axes
    frames: int
    width: int  # upright (after Orientation)
    height: int
    page_axes: str
    page_shape: tuple[int, ...]
    dtype: np.dtype
    orientation: int
    contiguous_offset: int | None  # data offset when the pages have no IFDs of their own

    @property
    def channels(self) -> int:
        return 1 if self.channel_pos is None else self.lead_shape[self.channel_pos]

    def page_indices(self, index: int) -> list[int]:
        """The series' page numbers that make frame `index` (one per in-frame channel)."""
        frame_shape = [n for i, n in enumerate(self.lead_shape) if i != self.channel_pos]
        coords = [int(i) for i in np.unravel_index(index, frame_shape)] if frame_shape else []
        out = []
        for c in range(self.channels):
            full = list(coords)
            if self.channel_pos is not None:
                full.insert(self.channel_pos, c)
            out.append(int(np.ravel_multi_index(full, self.lead_shape)) if full else 0)
        return out

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.page_shape, dtype=np.int64)) * self.channels * self.dtype.itemsize


def layout(tf) -> TiffLayout | None:
    """How the first series of an open tifffile.TiffFile splits into frames; None for a single image.
    Reads headers only. ImageDecodeError for a layout that cannot be believed."""
    series = tf.series[0]
    axes, shape = str(series.axes), tuple(int(n) for n in series.shape)
    key = series.keyframe
    page_axes, page_shape = str(key.axes), tuple(int(n) for n in key.shape)
    split = len(shape) - len(page_shape)
    if split <= 0 or shape[split:] != page_shape or axes[split:] != page_axes or not set(page_axes) <= _PAGE_AXES:
        return None  # one page holds the whole series (or an odd layout): decode_image reads it as one image
    if "Y" not in page_axes or "X" not in page_axes:
        return None
    lead_shape, lead_axes = shape[:split], axes[:split]
    if any(n <= 0 for n in lead_shape + page_shape):
        raise ImageDecodeError(f"TIFF stack with an empty axis: {axes} {shape}")
    channel_pos = None
    c = lead_axes.find("C")
    if c >= 0 and 2 <= lead_shape[c] <= MAX_CHANNELS_IN_FRAME:
        channel_pos = c
    frames = 1
    for i, n in enumerate(lead_shape):
        if i != channel_pos:
            frames *= n
            if frames > MAX_FRAMES:
                raise ImageDecodeError(f"TIFF stack claims more than {MAX_FRAMES} frames ({axes} {shape}): "
                                       "not believed")
    if frames <= 1:
        return None
    pages = int(np.prod(lead_shape, dtype=np.int64))
    offset = None
    if len(series.pages) < pages:
        offset = _contiguous_offset(tf, series, key, pages)
    h, w = page_shape[page_axes.index("Y")], page_shape[page_axes.index("X")]
    tag = key.tags.get("Orientation")
    try:
        orientation = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        orientation = 1
    orientation = orientation if 1 <= orientation <= 8 else 1
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return TiffLayout(axes, lead_shape, lead_axes, channel_pos, frames, w, h, page_axes, page_shape,
                      np.dtype(key.dtype), orientation, offset)


def _one_series_per_page(tf) -> bool:
    """Several shaped series of one 2D page each (a stack written a page per write() call)."""
    series = tf.series
    return bool(tf.is_shaped and len(series) > 1 and len(series[0].pages) == 1
                and all(len(s.pages) == 1 and s.shape == series[0].shape and s.dtype == series[0].dtype
                        for s in series[:64]))


def _contiguous_offset(tf, series, key, pages: int) -> int:
    """The data offset of a stack whose pages follow each other without IFDs (ImageJ > 4 GB),
    once the file is known to hold all of them."""
    offset = series.dataoffset
    if offset is None or key.compression != 1 or not key.is_contiguous:
        raise ImageDecodeError(f"TIFF stack: the header claims {pages} pages, the file holds {len(series.pages)}")
    need = int(offset) + pages * int(np.prod(key.shape, dtype=np.int64)) * np.dtype(key.dtype).itemsize
    size = int(tf.filehandle.size)
    if need > size:
        raise ImageDecodeError(f"TIFF stack is truncated: its header claims {pages} pages "
                               f"({format_bytes(need)}), the file has {format_bytes(size)}")
    return int(offset)


class TiffSource:
    """An open TIFF stack; one thread at a time (the caller holds its lock)."""

    kind = "stack"

    def __init__(self, path: str | os.PathLike):
        import tifffile
        self._f: IO[bytes] = open_regular(path)
        try:
            st = os.fstat(self._f.fileno())
            self.identity: tuple[int, int, int, int] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            try:
                self._tf = tifffile.TiffFile(self._f, name=os.path.basename(os.fspath(path)))
                lay = layout(self._tf)
                if lay is None and _one_series_per_page(self._tf):
                    # tifffile's writer makes each write() call a "shaped" series of its own: a stack
                    # written page by page is many one-page series; read without that metadata, its
                    # pages of one shape and type are one series, the stack
                    self._tf.close()
                    self._f.seek(0)
                    self._tf = tifffile.TiffFile(self._f, name=os.path.basename(os.fspath(path)), is_shaped=False)
                    lay = layout(self._tf)
            except ImageDecodeError:
                raise
            except MemoryError:
                raise NotEnoughMemory("not enough memory to read this TIFF's header") from None
            except Exception as e:  # tifffile raises assorted errors on hostile files  # noqa: BLE001
                raise ImageDecodeError(f"not a TIFF stack segstudio can read: {e or type(e).__name__}") from None
            self.layout = lay
        except BaseException:
            self.close()
            raise

    @property
    def frames(self) -> int:
        return self.layout.frames if self.layout is not None else 1

    def read(self, index: int, allow_large: bool) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        lay = self.layout
        if lay is None:
            raise ImageDecodeError("this TIFF is a single image, not a stack")
        check_size(lay.width, lay.height, allow_large)
        cost = 3 * lay.frame_bytes + (1 << 20)
        budget = default_budget()
        if cost > budget.total:
            raise NotEnoughMemory(f"a frame of this stack needs about {format_bytes(cost)} to decode, more than "
                                  f"the {format_bytes(budget.total)} segstudio allows itself on this machine")
        try:
            with budget.reserve(cost):
                planes = [self._page(lay, p) for p in lay.page_indices(index)]
                a = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
                axes = lay.page_axes if len(planes) == 1 else lay.page_axes + "C"
                out = _normalise_tiff_array(a, axes if len(planes) == 1 else "YXC")
        except (ImageDecodeError, NotEnoughMemory):
            raise
        except MemoryError:
            raise NotEnoughMemory("not enough memory to decode this frame") from None
        except Exception as e:  # a page that fails to decode (truncated strip, bad compression)  # noqa: BLE001
            why = str(e) or type(e).__name__
            raise ImageDecodeError(f"frame {index} of this TIFF stack cannot be decoded: {why}") from None
        if out is None:
            raise ImageDecodeError(f"frame {index} of this TIFF stack has a layout segstudio cannot show ({axes})")
        return apply_orientation(out, lay.orientation), []

    def _page(self, lay: TiffLayout, page: int) -> np.ndarray:
        if lay.contiguous_offset is None:
            return np.asarray(self._tf.asarray(key=page, series=0))
        n = int(np.prod(lay.page_shape, dtype=np.int64))
        nbytes = n * lay.dtype.itemsize
        self._f.seek(lay.contiguous_offset + page * nbytes)
        data = self._f.read(nbytes)
        if len(data) != nbytes:
            raise ImageDecodeError(f"the stack ends inside page {page} (truncated?)")
        dtype = lay.dtype.newbyteorder("<" if self._tf.byteorder == "<" else ">")
        return np.frombuffer(data, dtype).astype(lay.dtype).reshape(lay.page_shape)

    def close(self) -> None:
        tf = getattr(self, "_tf", None)
        if tf is not None:
            try:
                tf.close()
            except Exception:  # closing a half-read file  # noqa: BLE001
                pass
        self._f.close()
