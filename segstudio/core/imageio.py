"""The one image decoder: display, models and exports all read pixels through here.

Files are read as bytes and decoded from memory (never `cv2.imread` on a path: non-ASCII
paths break it on some platforms). Pillow decodes, with EXIF orientation applied; TIFF goes
through tifffile first (16-bit RGB, large and tiled files), with its Orientation tag applied.

Result arrays: (H, W) or (H, W, 3); dtype uint8, uint16 (kept 16-bit) or float32.

Regular files only. `open_regular` opens with O_NONBLOCK (a FIFO then opens at once instead of
waiting for a writer) and judges the *opened* descriptor with fstat: a FIFO, a device, a socket
or a folder is refused for what it is, whatever its name, and a swap between a stat and the
open cannot slip one in. A link is judged by what it points to: links to regular files are
followed (a folder assembled from links is ordinary, and reading writes nothing through them);
the read is bounded by the size fstat gave.

Formats: only the Pillow plugins for the formats segstudio lists (`SUPPORTED_FORMATS`: JPEG,
PNG, TIFF, BMP, GIF, WebP, PNM) are ever asked to identify a file. PostScript/EPS (which Pillow
hands to Ghostscript, an outside program) and every other plugin are never consulted, whatever
the file's name: such a file is refused as an unsupported format.

Decompression-bomb guard: Pillow's own limit is kept — an image over 2 x
`PIL.Image.MAX_IMAGE_PIXELS` pixels (Pillow's error threshold, ~179 Mpx) is refused from its
header before any pixel is decoded. `allow_large=True` is the explicit override; it is logged.
Headers are read by calling the plugins directly, without Image.open's size check, so Pillow's
process-wide MAX_IMAGE_PIXELS is never changed (a plain Image.open on another thread keeps its
guard) and the size is checked here, per call. `read_header` / `declared_size` give a file's
declared size and layout that way, for any reader that must check a size before decoding.

Memory: decoding needs about `decode_cost` bytes — the file plus the decoder's arrays, from
pixels x samples x bytes per sample, not pixels alone. `load` reserves that much from a
MemoryBudget shared by every thread that decodes (check's workers, the window's loaders, the
model decoders) and waits while others hold it. An image that needs more than the whole budget,
or a MemoryError while decoding, raises NotEnoughMemory: a fact about this machine, not about
the file, so callers never store it as the image's error.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import numpy as np
from PIL import (  # noqa: F401  (importing a plugin registers it; these are the only ones used)
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
)

# errors and the regular-file reader live in image_files; imported here too, where callers look for them
from segstudio.core.image_files import (  # noqa: F401
    ImageDecodeError,
    NotEnoughMemory,
    _read_all,
    is_transient,
    open_regular,
    read_bytes,
)
from segstudio.core.memory import MemoryBudget, default_budget, format_bytes

try:  # a Pillow built without libwebp has no WebP plugin: WebP files are then unsupported
    from PIL import WebPImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover
    pass

log = logging.getLogger(__name__)


def _no_outside_programs() -> None:
    """Pillow's EPS plugin runs Ghostscript (an outside program, and a PostScript interpreter)
    on any file it identifies. segstudio never reads EPS; besides identifying files with its own
    plugins only, it takes EPS out of Pillow's registry and tells the plugin there is no
    Ghostscript, so that no Image.open in this process (a library's included) can start it."""
    from PIL import EpsImagePlugin
    EpsImagePlugin.gs_binary = False  # has_ghostscript() is False (on Windows too); Ghostscript() refuses
    Image.OPEN.pop("EPS", None)
    if "EPS" in Image.ID:
        Image.ID.remove("EPS")


_no_outside_programs()

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif",
    ".pgm", ".ppm", ".pbm", ".pnm",
})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# The Pillow formats (Image.OPEN keys) of those extensions, in the order they are tried
SUPPORTED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "PPM")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS; we apply that limit.
PILLOW_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)

Source = Union[str, os.PathLike, bytes, IO[bytes]]


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


@dataclass(frozen=True)
class ImageHeader:
    """What a file declares about its first image, read without decoding a pixel."""

    width: int  # as stored, before orientation
    height: int
    format: str  # "PNG", "JPEG", "TIFF", ...
    samples: int  # values per pixel (bands)
    bits: int  # per sample
    bytes_per_pixel: int  # as the decoder holds a pixel (Pillow keeps RGB in 4 bytes)
    orientation: int = 1  # EXIF / TIFF orientation 1..8
    decoder: str = "pillow"  # which path decode_image takes: "pillow", "opencv" or "tifffile"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) after orientation: the size decode_image returns."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoder's first full array: pixels x bytes per pixel."""
        return self.pixels * self.bytes_per_pixel

    def describe(self) -> str:
        return f"{self.width}x{self.height}, {self.samples} x {self.bits}-bit samples"


_EXT_NAMES = frozenset(e[1:] for e in IMAGE_EXTENSIONS)


def is_image_name(name: str) -> bool:
    base, dot, ext = name.rpartition(".")
    return bool(dot and base) and ext.lower() in _EXT_NAMES


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- headers
_FOREIGN = ((b"%!PS", "PostScript"), (b"\xc5\xd0\xd3\xc6", "EPS (PostScript)"), (b"%PDF", "PDF"))


def _unsupported(prefix: bytes) -> ImageDecodeError:
    name = next((n for magic, n in _FOREIGN if prefix.startswith(magic)), None)
    if name:
        return ImageDecodeError(f"not an image format segstudio can read: {name} "
                                "(only JPEG, PNG, TIFF, BMP, GIF, WebP and PNM images are opened)")
    return ImageDecodeError("not an image format segstudio can read (unrecognised content)")


def _open_pillow(fp: IO[bytes]) -> ImageFile.ImageFile:
    """Identify fp with the supported plugins only, and read its header (no pixels).

    What Image.open does, less its process-wide size check (`_decompression_bomb_check` reads
    the global MAX_IMAGE_PIXELS; the caller checks the size with _check_size) and less every
    plugin that segstudio does not support. Raises ImageDecodeError when no plugin takes it.
    """
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in SUPPORTED_FORMATS:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        ok = accept(prefix) if accept else True
        if not ok or isinstance(ok, str):  # a str: the plugin's reason it cannot (e.g. no libwebp)
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # this plugin declines the file, as in Image.open: the next may take it
        except Image.DecompressionBombError as e:  # a GIF frame checked while its header is read
            raise ImageDecodeError(f"over the decompression-bomb limit: {e}") from None
    raise _unsupported(prefix)


def _pil_open(data: bytes) -> ImageFile.ImageFile:
    """A Pillow image on bytes (header only), whatever its size: the caller checks the size."""
    return _open_pillow(io.BytesIO(data))


# Pillow's storage per pixel by mode (ImagingNew: 1, 2 or 4 bytes a pixel); 4 for the rest
_PIL_BPP = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def _png_late_exif(fp: IO[bytes]) -> int:
    """Orientation from an eXIf chunk after IDAT, found by walking chunk headers (Pillow's
    getexif would decode the whole image to reach it)."""
    fp.seek(8)
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return 1
        n, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            ex = Image.Exif()
            ex.load(fp.read(min(n, 1 << 20)))
            return int(ex.get(0x0112, 1))
        if kind == b"IEND":
            return 1
        fp.seek(n + 4, io.SEEK_CUR)


def _orientation(im: ImageFile.ImageFile, fp: IO[bytes]) -> int:
    try:
        if im.format == "PNG" and "exif" not in im.info:
            o = _png_late_exif(fp)
        else:
            o = int(im.getexif().get(0x0112, 1))
    except Exception:  # hostile EXIF raises assorted errors: no orientation then  # noqa: BLE001
        return 1
    return o if 1 <= o <= 8 else 1


def _bits(mode: str) -> int:
    return 1 if mode == "1" else 16 if mode.startswith("I;16") else 32 if mode in ("I", "F") else 8


def _pillow_header(im: ImageFile.ImageFile, fp: IO[bytes]) -> ImageHeader:
    mode, bands = im.mode, len(im.getbands())
    fast = FAST_PATH and im.format is not None and mode in _FAST_MODES.get(im.format, ())
    bpp = bands * (2 if mode.startswith("I;16") else 1) if fast else _PIL_BPP.get(mode, 4)
    return ImageHeader(im.width, im.height, im.format or "?", bands, _bits(mode), bpp,
                       _orientation(im, fp), "opencv" if fast else "pillow")


def _tiff_header(fp: IO[bytes]) -> ImageHeader | None:
    """The header of the page decode_image reads with tifffile; None where Pillow reads it."""
    import tifffile
    fp.seek(0)
    try:
        with tifffile.TiffFile(fp, name="image.tif") as tf:  # fdopen names a file by its number
            page = tf.pages[0]
            shape, axes, dtype = page.shape, page.axes, np.dtype(page.dtype)
            o = page.tags.get("Orientation")
            orientation = int(o.value) if o is not None else 1
        if "Y" not in axes or "X" not in axes:
            return None
        w, h = int(shape[axes.index("X")]), int(shape[axes.index("Y")])
        if w <= 0 or h <= 0:
            return None  # an empty page: Pillow's verdict
        samples = max(1, int(np.prod(shape, dtype=np.int64)) // max(1, w * h))
    except Exception:  # tifffile cannot read it: Pillow tries, as in decode_image  # noqa: BLE001
        return None
    return ImageHeader(w, h, "TIFF", samples, 8 * dtype.itemsize, samples * dtype.itemsize, orientation, "tifffile")


def _header(fp: IO[bytes], tiff_first: bool) -> ImageHeader:
    if tiff_first:
        head = _tiff_header(fp)
        if head is not None:
            return head
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = _open_pillow(fp)
            return _pillow_header(im, fp)
    except ImageDecodeError:
        raise
    except MemoryError:
        raise NotEnoughMemory("not enough memory to read this image's header") from None
    except Exception as e:  # Pillow plugins raise assorted errors on hostile headers  # noqa: BLE001
        raise ImageDecodeError(f"corrupt image: {e or type(e).__name__}") from None


def read_header(source: Source) -> ImageHeader:
    """Declared size, layout and orientation of an image, from its header: no pixel is decoded
    and Pillow's process-wide guard is neither consulted nor changed (safe on any thread).

    `source`: a path (a regular file only), bytes, or an open binary file (left open). No size
    limit is applied: check the size (`check_size`) before decoding. ImageDecodeError when the
    file is not an image segstudio reads.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _header(io.BytesIO(data), data[:4] in _TIFF_MAGIC)
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source) as f:
            return read_header(f)
    f = source
    f.seek(0)
    magic = f.read(4)
    return _header(f, magic in _TIFF_MAGIC)


def declared_size(source: Source) -> tuple[int, int]:
    """(width, height) an image file declares, as stored (before EXIF orientation; a mask's
    pixels are addressed that way), without decoding it or touching Pillow's global guard."""
    head = read_header(source)
    return head.width, head.height


def check_size(width: int, height: int, allow_large: bool = False) -> None:
    """The decompression-bomb guard: ImageDecodeError over PILLOW_LIMIT pixels unless allowed."""
    _check_size(width, height, allow_large)


def _check_size(width: int, height: int, allow_large: bool) -> None:
    n = int(width) * int(height)
    if n > PILLOW_LIMIT:
        if not allow_large:
            raise ImageDecodeError(
                f"{width}x{height} = {n / 1e6:.0f} Mpx is over the decompression-bomb limit of "
                f"{PILLOW_LIMIT / 1e6:.0f} Mpx; open it with 'allow large images' (--allow-large) "
                "if you trust the file")
        log.warning("decompression-bomb guard overridden for a %dx%d image (%.0f Mpx)", width, height, n / 1e6)


def decode_cost(head: ImageHeader, file_bytes: int) -> int:
    """Peak bytes that decoding this file holds at once: the file's bytes plus the decoder's
    arrays, from pixels x bytes per pixel. Upper bounds measured per path (Pillow, OpenCV,
    tifffile; see tests/core/test_check_memory.py), not exact figures."""
    px, full = head.pixels, head.decoded_bytes
    if head.decoder == "tifffile":
        # the page array, copies of the raw segments (up to the file), the 3-sample copy (float32 at most)
        per_sample = full // max(1, px * head.samples) if px else 1
        out = px * min(head.samples, 3) * (per_sample if per_sample in (1, 2) else 4)
        work = 2 * full + out + file_bytes
    elif head.decoder == "opencv":
        work = 2 * full + 3 * px  # OpenCV's array and a colour conversion or orientation copy
    else:
        # Pillow's storage (4 bytes for most modes), a conversion and a transpose of it, the numpy
        # copy; WebP's decoder keeps its own RGBA buffer besides
        work = px * (3 * max(head.bytes_per_pixel, 4) + 8) + (4 * px if head.format == "WEBP" else 0)
    return int(file_bytes) + int(work) + (1 << 20)


# ----------------------------------------------------------------------------- decoding
def load(path: str | Path, *, allow_large: bool = False,
         budget: MemoryBudget | None = None) -> tuple[np.ndarray, bytes]:
    """Decode a regular file within a memory budget: (array, the file's bytes).

    The header is read first (size guard, decode_cost); then the bytes are read and decoded
    while decode_cost bytes are reserved from `budget` (default: the process's shared one).
    NotEnoughMemory when the image needs more than the whole budget or decoding runs out.
    """
    budget = budget if budget is not None else default_budget()
    ext = os.path.splitext(str(path))[1].lower()
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ImageDecodeError("empty file (0 bytes)")
        head = read_header(f)
        _check_size(*head.upright_size, allow_large)
        cost = decode_cost(head, size)
        if cost > budget.total:
            raise NotEnoughMemory(
                f"{head.describe()} needs about "
                f"{format_bytes(cost)} to decode, more than the {format_bytes(budget.total)} segstudio "
                "allows itself on this machine (check: --memory)")
        with budget.reserve(cost):
            data = _read_all(f)
            return _decode(data, ext, allow_large), data


def decode_image(path: str | Path, *, allow_large: bool = False, data: bytes | None = None) -> np.ndarray:
    """Decode an image file to a numpy array, upright. Raises ImageDecodeError with a clear reason.

    Without `data` the file is read through `load` (regular files only, within the shared
    memory budget); with `data` those bytes are decoded (the caller read them).
    """
    if data is None:
        return load(path, allow_large=allow_large)[0]
    return _decode(data, os.path.splitext(str(path))[1].lower(), allow_large)


def _decode(data: bytes, ext: str, allow_large: bool) -> np.ndarray:
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        if ext in TIFF_EXTENSIONS or data[:4] in _TIFF_MAGIC:
            arr = _decode_tiff(data, allow_large)
            if arr is not None:
                return arr
        return _decode_pillow(data, allow_large)
    except MemoryError:  # a copy or conversion after the decoder proper
        raise NotEnoughMemory("not enough memory to decode this image") from None


def open_guarded(data: bytes, *, allow_large: bool = False) -> Image.Image:
    """A Pillow image on bytes, refused from its header when over the decompression-bomb limit.

    For readers that need Pillow's own modes rather than decode_image's arrays (a label map's
    palette indices, a labelme mask), with the same guard, override and supported formats as
    decode_image. The caller closes the image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = _pil_open(data)
    except ImageDecodeError:
        raise
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
            fp = io.BytesIO(data)
            im = _open_pillow(fp)
            _check_size(im.width, im.height, allow_large)
            if FAST_PATH and im.format is not None and im.mode in _FAST_MODES.get(im.format, ()):
                fast = _decode_opencv(data, im, _orientation(im, fp))
                if fast is not None:
                    return fast
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # no copy of a big image
            return _pillow_to_array(im)
    except ImageDecodeError:
        raise
    except MemoryError:
        raise NotEnoughMemory("not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg:
            msg = "the file is truncated (incomplete download or copy?)"
        raise ImageDecodeError(f"corrupt image: {msg}") from None
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


def _decode_opencv(data: bytes, im: Image.Image, orientation: int) -> np.ndarray | None:
    import cv2
    if im.format == "JPEG":
        flags = cv2.IMREAD_GRAYSCALE if im.mode == "L" else cv2.IMREAD_COLOR
    else:
        flags = cv2.IMREAD_UNCHANGED
    try:
        a = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
        if a is None:
            return None
        if a.ndim == 3 and a.shape[2] == 3:
            cv2.cvtColor(a, cv2.COLOR_BGR2RGB, dst=a)  # in place
        elif a.ndim == 3 and a.shape[2] == 4:
            a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)
    except cv2.error as e:
        # OpenCV reports a failed allocation as cv2.error (code -4, StsNoMem), not MemoryError:
        # that is this machine's memory, not the file, and must never be stored as "corrupt"
        if getattr(e, "code", None) == cv2.Error.StsNoMem or "Insufficient memory" in str(e):
            raise NotEnoughMemory("not enough memory to decode this image") from None
        return None  # anything else OpenCV could not read: Pillow decodes it (or says why it cannot)
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
        raise NotEnoughMemory("not enough memory to decode this image") from None
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
    """Width and height after orientation, from the header only (no pixel decoding, no size
    limit: a large file is refused when it is decoded)."""
    return ImageInfo(*read_header(path).upright_size)


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
