"""What a torch file will cost to read, judged before `torch.load` reads it. No torch here.

A file written by `torch.save` is a zip archive: `data.pkl` (the pickle) and one record per tensor
storage (`data/0`, `data/1`, ...). `torch.load` allocates each record at the size the archive's
central directory declares and inflates it there, so a small file whose records are compressed
(torch itself always stores them uncompressed) can make it allocate gigabytes: a 2.9 MB `.pth`
whose zeros inflate to 3 GB. The declared sizes are read here from the central directory (what
torch's reader uses too) and refused when

- their sum exceeds the caller's bound (what the largest file of its kind can hold), or
- they inflate past MAX_RATIO times the file's size (beyond a small allowance): no real weights
  file compresses like that, and none that torch wrote is compressed at all.

Files in torch's legacy format (not a zip) are stored as they are: reading them costs their size.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

GIB = 1 << 30
MIB = 1 << 20
MAX_RATIO = 4  # declared bytes per byte of file; torch.save's own archives are ~1, and float weights
# deflate to ~0.9 at best, so 4 leaves room for any real file and still stops a 500 MB file declaring 8 GB
SMALL = 64 * MIB  # up to this much, any ratio (a small archive inflating cannot hurt)
MAX_WEIGHTS_BYTES = 8 * GIB  # the default bound: Segment Anything ViT-H is 2.4 GiB, a Mask R-CNN checkpoint
# with its optimizer state under 1 GiB


def size_text(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} bytes"


def archive_problem(source: str | os.PathLike | BinaryIO, max_bytes: int = MAX_WEIGHTS_BYTES) -> str | None:
    """Why reading this torch file would cost too much memory, or None. `source`: a path or a
    seekable binary file (left at its start). Only the archive's directory is read."""
    if isinstance(source, (str, os.PathLike)):
        try:
            file_size = Path(source).stat().st_size
        except OSError:
            return None  # the loader says what is wrong with a missing file
        try:  # non-blocking: a FIFO named like weights must not hang the check
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return "it is not a regular file (a pipe, device or folder)"
        opened = os.fdopen(fd, "rb")
        try:
            return _problem(opened, file_size, max_bytes)
        finally:
            opened.close()
    pos = source.tell()
    file_size = source.seek(0, os.SEEK_END)
    source.seek(pos)
    try:
        return _problem(source, file_size, max_bytes)
    finally:
        source.seek(pos)


def _problem(f: BinaryIO, file_size: int, max_bytes: int) -> str | None:
    if file_size > max_bytes:
        return f"it is {size_text(file_size)}, more than the {size_text(max_bytes)} a file of its kind can hold"
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None  # torch's legacy format, or not a torch file: the loader says which
    declared = sum(i.file_size for i in infos)
    biggest = max(infos, key=lambda i: i.file_size, default=None)
    where = "" if biggest is None else f" (the largest record, {biggest.filename}, {size_text(biggest.file_size)})"
    if declared > max_bytes:
        return (f"it declares {size_text(declared)} of data{where}, more than the {size_text(max_bytes)} a file "
                "of its kind can hold; refused before reading it")
    if declared > SMALL and declared > MAX_RATIO * file_size:
        return (f"its {size_text(file_size)} inflate to {size_text(declared)}{where}: a compressed bomb, "
                "not weights torch wrote (torch stores tensors uncompressed); refused before reading it")
    return None


__all__ = ["MAX_RATIO", "MAX_WEIGHTS_BYTES", "archive_problem", "size_text"]
