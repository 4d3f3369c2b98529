"""Checks on imported data before it becomes pixels or classes.

Every importer reads files made elsewhere, some of them broken or hostile. The rules:

- A JSON or text file over a size limit is refused before it is read. JSON that is nested too
  deeply (RecursionError), holds a number too long for Python (ValueError) or is not JSON is a
  per-file error.
- NaN and infinities parse (Python's json accepts them) and are refused per annotation, so
  one bad annotation does not cost a file of good ones (maskops.finite_points).
- Coordinates beyond maskops.coord_limit (100 image sizes) are refused; the rest are clipped
  to the image by the rasterisers, so memory follows the image, never the numbers.
- COCO RLE is decoded by core.rle, which checks every count before a pixel is written.
- Class names read from a dataset have their control characters escaped (a newline becomes
  the two characters backslash and n), so a name can never break a line-based class list.
- An export refuses (check_listable) a class name that still holds one, naming the class:
  a list file cannot hold it, and an escape would come back as another name.
- BAD_INPUT is what an importer catches around one file or one annotation: it becomes an
  error in the report, and the rest of the dataset imports.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Iterable

from segstudio.core.classes import UNLISTABLE_CHARS, unlistable
from segstudio.io.common import FormatError

MAX_JSON_BYTES = 2 << 30  # COCO train2017 instances is 0.45 GB, LVIS 1.1 GB
MAX_TEXT_BYTES = 256 << 20  # a YOLO label file or a class list
MAX_NAME_CHARS = 512

BAD_INPUT = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
             RecursionError, MemoryError, ZeroDivisionError)


def read_text(path: str | Path, limit: int | None = None) -> str:
    """A UTF-8 text file (BOM allowed), refused with FormatError when over `limit` bytes
    (MAX_TEXT_BYTES by default)."""
    p = Path(path)
    limit = MAX_TEXT_BYTES if limit is None else limit
    try:
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # a FIFO or a link to /dev/zero never ends
                raise FormatError(f"{p.name} is not a regular file")
            if st.st_size > limit:
                raise FormatError(f"{p.name} is {st.st_size / 2**20:.0f} MiB, over the "
                                  f"{limit / 2**20:.0f} MiB limit for this kind of file")
            data = f.read(st.st_size + 1)
            while len(data) <= limit and (more := f.read(1 << 20)):  # it grew since fstat
                data += more
        if len(data) > limit:
            raise FormatError(f"{p.name} is over the {limit / 2**20:.0f} MiB limit for this kind of file")
        return data.decode("utf-8-sig")
    except FileNotFoundError:
        raise FormatError(f"file not found: {p}") from None
    except UnicodeDecodeError:
        raise FormatError(f"{p.name} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FormatError(f"cannot read {p}: {e.strerror or e}") from None
    except MemoryError:
        raise FormatError(f"not enough memory to read {p.name}") from None


def parse_json(text: str, name: str):
    """json.loads with every way it can fail turned into a FormatError naming the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{name} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise FormatError(f"{name} is nested too deeply to be an annotation file") from None
    except MemoryError:
        raise FormatError(f"not enough memory to read {name}") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise FormatError(f"{name} is not valid JSON: {e}") from None


def load_json(path: str | Path, limit: int | None = None):
    p = Path(path)
    return parse_json(read_text(p, MAX_JSON_BYTES if limit is None else limit), p.name)


def brief(value, n: int = 60) -> str:
    """A short description of an untrusted value for a message (never a huge or deep repr)."""
    if value is None or isinstance(value, (bool, int, float)):
        s = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    elif isinstance(value, str):
        s = repr(value[:n])
    else:
        return f"a {type(value).__name__}"
    return s if len(s) <= n else s[:n] + "..."


def as_key(value) -> int | str | None:
    """An id to look things up by (COCO image, category and annotation ids), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    return value


def as_size(value, what: str) -> int:
    """A positive whole number (an image width or height from a file); ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {brief(value)}")
    if isinstance(value, float) and not value.is_integer():  # NaN and infinities included
        raise ValueError(f"{what} must be a whole number, got {brief(value)}")
    if not 0 < value < 2**31:
        raise ValueError(f"{what} out of range: {brief(value)}")
    return int(value)


_UNSAFE = UNLISTABLE_CHARS  # one definition, in core (Classes > Save... writes class lists too)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def line_safe_name(name: str) -> str:
    """A class name that fits on one line of a class list: control characters and line
    breaks written as visible escapes (\\n, \\x07, \\u2028), outer spaces stripped."""
    return _UNSAFE.sub(_escape, name).strip()


def check_listable(names: list[str], fmt: str) -> None:
    """FormatError naming each class whose name holds a line break or control character
    (including those str.splitlines() breaks at: \v \f \x1c-\x1e \x85 \u2028 \u2029): the
    class lists `fmt` writes are one name a line, so such a name would split or shift them.
    Refused before anything is written; the class is to be renamed."""
    bad = [(n, why) for n in names if (why := unlistable(n))]
    if not bad:
        return
    listed = ", ".join(f"{n!r} (holds {why})" for n, why in bad[:5])
    if len(bad) > 5:
        listed += f" and {len(bad) - 5} more"
    raise FormatError(f"cannot export to {fmt}: class names with a line break or control character cannot be "
                      f"written to its class list: {listed}; rename the class and export again")


def check_listable_images(paths: Iterable[str], fmt: str, lists: str, also: str = "") -> None:
    """FormatError naming each image whose path (relative to the image folder) holds a line
    break or control character, or one of `also` (characters the list's reader takes apart):
    `fmt` lists images one a line (`lists`), so such a name would split its line and read back
    as other images. Refused before anything is written, rather than leaving the image out of
    the dataset unseen; the file is to be renamed."""
    bad = [(p, why) for p in paths if (why := unlistable(p) or next((repr(c) for c in also if c in p), None))]
    if not bad:
        return
    listed = ", ".join(f"{p!r} (holds {why})" for p, why in bad[:5])
    if len(bad) > 5:
        listed += f" and {len(bad) - 5} more"
    extra = f" or {' '.join(map(repr, also))}" if also else ""
    raise FormatError(f"cannot export to {fmt}: image names with a line break or control character{extra} cannot "
                      f"be written to its image list ({lists}): {listed}; rename the file and export again")


def clean_class_name(value) -> str:
    """A class name from a dataset, made safe (line_safe_name); ValueError when it is not text,
    empty, or absurdly long."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a label must be text, got {brief(value)}")
    name = line_safe_name(str(value))
    if not name:
        raise ValueError("empty label")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"label of {len(name)} characters (the limit is {MAX_NAME_CHARS})")
    return name
