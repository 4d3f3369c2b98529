"""Gates on the source datumaro reads: its folder holds regular files only, and datumaro
decodes no image larger than the project's images.

datumaro opens what it finds: it would read a FIFO until it ends (never), and it decodes label
PNGs eagerly while listing a dataset (a 25000x25000 Cityscapes or CamVid PNG of 1.5 MB is
2.5 GB decoded before segstudio sees it). So, before datumaro is called:

- the source folder is walked (without opening anything) and refused, naming them, when it
  holds anything that is not a regular file (FIFOs, devices, sockets);
- while the import runs, every image datumaro decodes has its header read first (without
  decoding) and is refused when it is larger than every image in the project: it cannot be
  any image's mask. The check wraps datumaro's one decoder (datumaro.util.image.decode_image,
  which every loader calls) and applies only inside `guarded_decoding` in this thread, so
  nothing else in the process changes.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import stat
from pathlib import Path
from typing import Iterator

import numpy as np

from segstudio.core import imageio
from segstudio.core.project import Project
from segstudio.io.common import FormatError

# what datumaro decodes as images (datumaro.util.image.IMAGE_EXTENSIONS, the raster ones)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".bmp", ".dib", ".tif", ".tiff", ".tga", ".webp",
                  ".pbm", ".pgm", ".ppm", ".pxm", ".pnm", ".gif", ".exr", ".hdr", ".pic", ".sr", ".ras"}


class Limit:
    """The largest side and area among the project's images: no mask can be larger. Given
    outright, or read from the project on first use (a source whose images datumaro never
    decodes costs no look at the project's images)."""

    def __init__(self, side: int = 0, area: int = 0, project: Project | None = None):
        self._project = project
        self._side, self._area = side, area

    @property
    def side(self) -> int:
        self._read()
        return self._side

    @property
    def area(self) -> int:
        self._read()
        return self._area

    def _read(self) -> None:
        if self._project is None:
            return
        project, self._project = self._project, None
        for rec in project.store.images(include_missing=False):
            try:
                w, h = (rec.width, rec.height) if rec.width and rec.height else project.image_size(rec)
            except Exception:  # noqa: BLE001  (an unreadable image bounds nothing)
                continue
            self._side, self._area = max(self._side, w, h), max(self._area, w * h)


def image_limit(project: Project) -> Limit:
    return Limit(project=project)


def source_files_checked(src: Path, dm_fmt: str) -> None:
    """FormatError naming the special files (FIFOs, devices, sockets) in what datumaro will read:
    the source folder; for a file, the file and its folder (a CVAT XML: the XML and its images/)."""
    if not src.exists():
        raise FormatError(f"not found: {src}")
    bad: list[str] = []
    if src.is_dir():
        _walk(src, src, bad)
    else:
        _check_file(src, src.parent, bad)
        if dm_fmt == "cvat":
            if (src.parent / "images").is_dir():
                _walk(src.parent / "images", src.parent, bad)
        else:
            _walk(src.parent, src.parent, bad)
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise FormatError(f"{src} holds files that are not regular files: {'; '.join(bad[:5])}{more}; "
                          "nothing was read (remove them, or import from a copy without them)")


MAX_DEPTH = 12  # datumaro walks 10 levels down (datumaro.util.os_util.DEFAULT_MAX_DEPTH), through links


def _walk(top: Path, base: Path, bad: list[str]) -> None:
    """Every file datumaro could reach from `top`: through links (as it goes), as deep as it goes."""
    seen: set[tuple[int, int]] = set()
    level = str(top).count(os.sep)
    for folder, dirs, files in os.walk(top, followlinks=True):
        try:
            s = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (s.st_dev, s.st_ino) in seen or folder.count(os.sep) - level >= MAX_DEPTH:  # a loop, or deeper
            dirs[:] = []
            continue
        seen.add((s.st_dev, s.st_ino))
        for name in files:
            _check_file(Path(folder) / name, base, bad)


def _check_file(path: Path, base: Path, bad: list[str]) -> None:
    try:
        mode = os.stat(path).st_mode  # through links: where it leads is what would be read
    except OSError:
        return  # a broken link: nothing to read, datumaro says so if it needs it
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        bad.append(f"{os.path.relpath(path, base)} is {_kind(mode)}")


_LIMIT: contextvars.ContextVar[Limit | None] = contextvars.ContextVar("segstudio_datumaro_limit", default=None)
_SKIP: contextvars.ContextVar[bool] = contextvars.ContextVar("segstudio_datumaro_skip", default=False)


@contextlib.contextmanager
def guarded_decoding(limit: Limit, skip: bool = False) -> Iterator[None]:
    """Inside the block (this thread only), datumaro decodes no image larger than `limit`.
    With `skip`, it decodes nothing: every image is a 1x1 placeholder, for a format whose
    pixels segstudio reads itself (Cityscapes: datumaro decodes each instance PNG while it lists
    the dataset, only to name the classes in it, which segstudio does not use).

    Also gives this thread datumaro's image backend: datumaro sets that context variable only in
    the thread that first imported it, so in any other (the window's import worker) every label
    PNG failed to load with a bare LookupError."""
    _install()
    from datumaro.util import image as dm_image
    backend = None
    try:
        dm_image.IMAGE_BACKEND.get()
    except LookupError:
        backend = dm_image.IMAGE_BACKEND.set(_default_backend(dm_image))
    token, skipping = _LIMIT.set(limit), _SKIP.set(skip)
    try:
        yield
    finally:
        _LIMIT.reset(token)
        _SKIP.reset(skipping)
        if backend is not None:
            dm_image.IMAGE_BACKEND.reset(backend)


def _default_backend(dm_image):
    """What datumaro picks at import: OpenCV when it is there, else Pillow."""
    return dm_image.ImageBackend.cv2 if importlib.util.find_spec("cv2") else dm_image.ImageBackend.PIL


def _install() -> None:
    from datumaro.util import image as dm_image
    original = dm_image.decode_image
    if getattr(original, "_segstudio_guard", False):
        return

    def decode_image(image_bytes, *args, **kwargs):
        if _SKIP.get():
            return np.zeros((1, 1), dtype=kwargs.get("dtype", args[0] if args else np.uint8))
        limit = _LIMIT.get()
        if limit is not None:
            check_header(bytes(image_bytes), limit)
        return original(image_bytes, *args, **kwargs)

    decode_image._segstudio_guard = True  # type: ignore[attr-defined]
    dm_image.decode_image = decode_image


def file_header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, read without decoding; None if unknown."""
    return _header_size(path)


def _header_size(source: Path | bytes) -> tuple[int, int] | None:
    """core/imageio's header reader: regular files only, Pillow's global guard left alone."""
    try:
        return imageio.declared_size(source)
    except imageio.ImageDecodeError:  # not an image segstudio reads, or a broken header
        return None


class ImageRefused(ValueError):
    """An image datumaro was about to decode, refused from its header."""


def check_header(data: bytes, limit: Limit) -> None:
    """ImageRefused unless the image's header gives a size no larger than the project's images."""
    size = _header_size(data)
    if size is None:
        raise ImageRefused("an image whose size cannot be read from its header; not decoded")
    if too_large(size, limit):
        raise ImageRefused(f"an image of {size[0]}x{size[1]} (from its header), larger than every image in the "
                           f"project (at most {limit.side} on a side); not decoded")


def too_large(size: tuple[int, int], limit: Limit) -> bool:
    return max(size) > limit.side or size[0] * size[1] > limit.area


def refused_images(err: BaseException | None, src: Path, limit: Limit, most: int = 5) -> list[str]:
    """When `err` comes from an image check_header refused: the image files in `src` (a folder,
    or a file's folder) whose headers are too large or unreadable, named for the message."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen and not isinstance(err, ImageRefused):
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    if not isinstance(err, ImageRefused):
        return []
    top = src if src.is_dir() else src.parent
    out: list[str] = []
    for folder, _, files in os.walk(top):
        for name in files:
            p = Path(folder) / name
            if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
                continue
            size = file_header_size(p)
            if size is None or too_large(size, limit):
                what = "unreadable header" if size is None else f"{size[0]}x{size[1]}"
                out.append(f"{p.relative_to(top).as_posix()} ({what})")
                if len(out) >= most:
                    return out
    return out


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"
