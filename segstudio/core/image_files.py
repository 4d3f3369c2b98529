"""Image files are read only when they are regular files: a FIFO, device, socket or folder named
like an image is refused at once, never opened for a blocking read. And the errors every image
reader raises: ImageDecodeError (the file's fault) and NotEnoughMemory (this machine's, never stored).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from segstudio.core.errors import UserError
from segstudio.core.memory import format_bytes


class ImageDecodeError(UserError):
    """A file that is not a readable image. The message says why, in words for the user."""


class NotEnoughMemory(ImageDecodeError):
    """This machine cannot decode the image now: too little memory, not a fault of the file.
    An ImageDecodeError so that every reader fails cleanly on it; never stored as the image's error."""


def is_transient(e: BaseException) -> bool:
    """True for a failure that says nothing about the file (store nothing on the image)."""
    return isinstance(e, NotEnoughMemory)



_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a plain file")


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """Open a regular file for reading, or raise ImageDecodeError saying what it is instead.

    O_NONBLOCK: opening a FIFO returns at once (no writer needed) rather than hang; the opened
    descriptor is then judged with fstat, so what is read is what was checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a folder, not an image") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except OSError as e:  # ENXIO: a socket; ELOOP: a link loop; ...
        try:
            what = _kind(os.stat(path).st_mode)
        except OSError:
            what = ""
        if what and what != "not a plain file":
            raise ImageDecodeError(f"not a regular file: it is {what}") from None
        raise ImageDecodeError(f"cannot read file: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = _kind(mode)
            if what == "a folder":
                raise ImageDecodeError("is a folder, not an image")
            raise ImageDecodeError(f"not a regular file: it is {what}")
        if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_all(f: IO[bytes]) -> bytes:
    """The whole file, at most the size fstat gives (a file that grows meanwhile is cut there)."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    try:
        return f.read(size)
    except MemoryError:
        raise NotEnoughMemory(f"not enough memory to read this {format_bytes(size)} file") from None
    except OSError as e:
        raise ImageDecodeError(f"cannot read file: {e.strerror or e}") from None


def read_bytes(path: str | Path) -> bytes:
    """A regular file's bytes (ImageDecodeError for anything else: FIFO, device, folder, ...)."""
    with open_regular(path) as f:
        return _read_all(f)
