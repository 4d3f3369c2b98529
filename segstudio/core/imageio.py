"""The one image decoder: display, models and exports all read pixels through here.

Files are read as bytes and decoded from memory (never `cv2.imread` on a path: non-ASCII
paths break it on some platforms). Pillow decodes, with EXIF orientation applied; TIFF goes
through tifffile first (16-bit RGB, large and tiled files), with its Orientation tag applied.

Result arrays: (H, W) or (H, W, 3); dtype uint8, uint16 (kept 16-bit) or float32.

Decompression-bomb guard: Pillow's own limit is kept — an image over 2 x
`PIL.Image.MAX_IMAGE_PIXELS` pixels (Pillow's error threshold, ~179 Mpx) is refused from its
header before any pixel is decoded. `allow_large=True` is the explicit override; it is
logged. Pillow's own guard stays on for the whole process (for every other reader of images);
only to read the header of a file over it is it lifted, under a lock, for that one header, so
that the size can be checked here and the override applied per call.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segstudio.core.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif",
    ".pgm", ".ppm", ".pbm", ".pnm",
})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})

# Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS; we apply that limit.
PILLOW_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
_LIFT_LOCK = threading.Lock()


class ImageDecodeError(UserError):
    """A file that is not a readable image. The message says why, in words for the user."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


_EXT_NAMES = frozenset(e[1:] for e in IMAGE_EXTENSIONS)


def is_image_name(name: str) -> bool:
    base, dot, ext = name.rpartition(".")
    return bool(dot and base) and ext.lower() in _EXT_NAMES


def read_bytes(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a folder, not an image") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except OSError as e:
        raise ImageDecodeError(f"cannot read file: {e.strerror or e}") from None


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_image(path: str | Path, *, allow_large: bool = False, data: bytes | None = None) -> np.ndarray:
    """Decode an image file to a numpy array, upright. Raises ImageDecodeError with a clear reason."""
    if data is None:
        data = read_bytes(path)
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    ext = os.path.splitext(str(path))[1].lower()
    if ext in TIFF_EXTENSIONS or data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        arr = _decode_tiff(data, allow_large)
        if arr is not None:
            return arr
    return _decode_pillow(data, allow_large)


def _check_size(width: int, height: int, allow_large: bool) -> None:
    n = int(width) * int(height)
    if n > PILLOW_LIMIT:
        if not allow_large:
            raise ImageDecodeError(
                f"{width}x{height} = {n / 1e6:.0f} Mpx is over the decompression-bomb limit of "
                f"{PILLOW_LIMIT / 1e6:.0f} Mpx; open it with 'allow large images' (--allow-large) "
                "if you trust the file")
        log.warning("decompression-bomb guard overridden for a %dx%d image (%.0f Mpx)", width, height, n / 1e6)


def _pil_open(data: bytes) -> Image.Image:
    """Image.open on bytes (header only), whatever the size: the caller checks the size.

    Pillow refuses a header over its limit with DecompressionBombError; then the header is read
    again with Pillow's limit lifted for that call only (under a lock, and only the header: no
    pixel is decoded here), so that _check_size can refuse it with its size, or allow it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: _check_size decides
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            with _LIFT_LOCK:
                saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
                try:
                    return Image.open(io.BytesIO(data))
                finally:
                    Image.MAX_IMAGE_PIXELS = saved


def open_guarded(data: bytes, *, allow_large: bool = False) -> Image.Image:
    """Image.open on bytes, refused from its header when over the decompression-bomb limit.

    For readers that need Pillow's own modes rather than decode_image's arrays (a label map's
    palette indices, a labelme mask), with the same guard and override as decode_image. The
    caller closes the image.
    """
    try:
        im = _pil_open(data)
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image format segstudio can read (unrecognised content)") from None
    except Exception as e:  # Pillow plugins raise assorted errors on hostile headers  # noqa: BLE001
        raise ImageDecodeError(f"corrupt image: {type(e).__name__}: {e}") from None
    try:
        _check_size(im.width, im.height, allow_large)
    except ImageDecodeError:
        im.close()
        raise
    return im


def _decode_pillow(data: bytes, allow_large: bool) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = _pil_open(data)
            _check_size(im.width, im.height, allow_large)
            if FAST_PATH and im.format is not None and im.mode in _FAST_MODES.get(im.format, ()):
                fast = _decode_opencv(data, im)
                if fast is not None:
                    return fast
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # no copy of a big image
            return _pillow_to_array(im)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image format segstudio can read (unrecognised content)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg:
            msg = "the file is truncated (incomplete download or copy?)"
        raise ImageDecodeError(f"corrupt image: {msg}") from None
    except MemoryError:
        raise ImageDecodeError("not enough memory to decode this image") from None
    except Exception as e:  # Pillow plugins raise assorted errors on hostile files  # noqa: BLE001
        raise ImageDecodeError(f"corrupt image: {type(e).__name__}: {e}") from None


# JPEG and PNG in the common modes decode with OpenCV (the same libjpeg-turbo / libpng) straight
# into one numpy array: ~40% faster than Pillow plus its array copy, and a 16k x 16k photo needs
# half the peak memory (Pillow keeps 4 bytes per RGB pixel, then copies). Pillow still reads the
# header (size, mode, EXIF orientation) and decodes everything else. Which path a file takes
# depends only on its header, so display, models and export always see the same pixels (the
# tests check both paths give identical arrays).
FAST_PATH = True
_FAST_MODES = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "RGBA", "L", "I;16", "I;16B"}}


def _decode_opencv(data: bytes, im: Image.Image) -> np.ndarray | None:
    import cv2
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # hostile EXIF raises assorted errors: no orientation then  # noqa: BLE001
        orientation = 1
    if im.format == "JPEG":
        flags = cv2.IMREAD_GRAYSCALE if im.mode == "L" else cv2.IMREAD_COLOR
    else:
        flags = cv2.IMREAD_UNCHANGED
    a = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if a is None:
        return None
    if a.ndim == 3 and a.shape[2] == 3:
        cv2.cvtColor(a, cv2.COLOR_BGR2RGB, dst=a)  # in place
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)
    return apply_orientation(a, orientation)


def _pillow_to_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "L":
        return np.asarray(im)
    if mode == "LA":
        return np.asarray(im.getchannel("L"))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im)
        return a.astype(np.uint16, copy=False) if a.dtype != np.uint16 else a
    if mode == "I":
        a = np.asarray(im)
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return a.astype(np.uint16)
        return a.astype(np.float32)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode == "P":
        # A palette image is shown in its colours; a palette *label map* is read by the
        # label-map importer, which keeps the indices.
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, RGBA, RGBX, YCbCr, LAB, HSV, PA
    return np.asarray(im)


def _decode_tiff(data: bytes, allow_large: bool) -> np.ndarray | None:
    """TIFF through tifffile; None to let Pillow try (e.g. a compression tifffile lacks)."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile is a dependency
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            page = tf.pages[0]
            shape = page.shape
            axes = page.axes
            if "Y" in axes and "X" in axes:
                _check_size(shape[axes.index("X")], shape[axes.index("Y")], allow_large)
            arr = page.asarray()
            orientation = page.tags.get("Orientation")
            orientation = int(orientation.value) if orientation is not None else 1
    except ImageDecodeError:
        raise
    except MemoryError:
        raise ImageDecodeError("not enough memory to decode this image") from None
    except Exception as e:  # tifffile raises assorted errors on files it cannot read: Pillow tries next  # noqa: BLE001
        log.debug("tifffile could not read the file (%s); trying Pillow", e)
        return None
    arr = _normalise_tiff_array(np.asarray(arr), axes)
    if arr is None:
        return None
    return apply_orientation(arr, orientation)


def _normalise_tiff_array(a: np.ndarray, axes: str) -> np.ndarray | None:
    if a.ndim == 3 and axes.startswith("S") and a.shape[0] in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # planar RGB
    if a.ndim == 3:
        c = a.shape[2]
        if c == 1:
            a = a[:, :, 0]
        elif c == 2:
            a = a[:, :, 0]  # gray + alpha
        elif c >= 3:
            a = a[:, :, :3]
    if a.ndim != 2 and not (a.ndim == 3 and a.shape[2] == 3):
        return None  # a stack or an odd layout: let Pillow take the first frame
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8 or a.dtype == np.uint16:
        return np.ascontiguousarray(a)
    if a.dtype.kind in "iu":
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return a.astype(np.uint16)
    return a.astype(np.float32)


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an array as EXIF/TIFF orientation 1..8 says (the same transforms Pillow uses)."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    else:
        return a
    return np.ascontiguousarray(a)


def read_image_info(path: str | Path) -> ImageInfo:
    """Width and height after orientation, from the header only (no pixel decoding)."""
    data = read_bytes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = _pil_open(data)  # a size only: a large file is refused when it is decoded
            w, h = im.size
            try:
                o = im.getexif().get(0x0112, 1)
            except Exception:  # hostile EXIF: no orientation then  # noqa: BLE001
                o = 1
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image format segstudio can read (unrecognised content)") from None
    except Exception as e:  # Pillow plugins raise assorted errors on hostile headers  # noqa: BLE001
        raise ImageDecodeError(f"corrupt image: {e}") from None
    if o in (5, 6, 7, 8):
        w, h = h, w
    return ImageInfo(w, h)


# ----------------------------------------------------------------------------- display helpers
def bit_depth(a: np.ndarray) -> int:
    return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(a.dtype, 32)


def auto_window(a: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display window from percentiles of a subsample (fast on any size)."""
    if a.dtype == np.uint8:
        return 0.0, 255.0
    step = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / 250_000)))
    sample = a[::step, ::step]
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        hi = lo + 1
    return float(lo), float(hi)


def to_display(a: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """8-bit view for the screen: uint8 passes through untouched; others through the window."""
    if a.dtype == np.uint8 and window is None:
        return a
    lo, hi = window if window is not None else auto_window(a)
    scale = 255.0 / max(hi - lo, 1e-12)
    out = (a.astype(np.float32) - lo) * scale
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def to_rgb_u8(a: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    d = to_display(a, window)
    if d.ndim == 2:
        d = np.repeat(d[:, :, None], 3, axis=2)
    return d
