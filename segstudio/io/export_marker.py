"""The export marker: what says "segstudio wrote this folder, and exactly these files".

Format: a first line that starts with MARKER_HEAD, then one line per file the export wrote,
relative to the folder, '/'-separated, in the file system's encoding (os.fsencode), so a name that
is not UTF-8 round-trips byte for byte.

The marker is read back from disk, so it is hostile input. A line counts only as a plain relative
path inside the folder: no '..' or '.' parts, no empty parts ('a//b'), not absolute, no NUL, no
longer than a path can be. The folder is then checked entry by entry with lstat: a listed link, a
listed path through a link, a FIFO or device, or any entry the marker does not list means the
folder is not only ours, and an export refuses it and names the entries. Nothing here deletes.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from segstudio.core.errors import UserError
from segstudio.core.project import EXPORT_MARKER, MARKER_HEAD

MARKER_TEXT = (f"{MARKER_HEAD}; image scans skip this folder. A later export to this folder "
               "replaces only the files listed below.\n")
MARKER_LIMIT = 64 << 20  # a million files of 60 characters; a larger marker is not one segstudio wrote
PATH_LIMIT = 4096  # PATH_MAX: a longer line names no file
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_SHOWN = 3  # entries named in one message


class ExportTargetError(UserError):
    """The export output would replace or sit among files segstudio did not write."""


def shown(text: str, limit: int = 80) -> str:
    """A hostile name for a one-line message: escaped (NUL, newlines, undecodable bytes) and short."""
    text = text[:limit + 1]  # a huge line is never copied whole
    r = text if text.isprintable() else ascii(text)[1:-1]
    return r if len(r) <= limit else r[:limit - 1] + "…"


def marker_bytes(files: list[str]) -> bytes:
    """The marker for an export that wrote `files` (relative '/' paths)."""
    return MARKER_TEXT.encode() + b"".join(os.fsencode(f) + b"\n" for f in files)


# any of the problems _line_problem names, found in one C-level search (most lines have none)
_SUSPECT = re.compile(rb"\x00|^/|(?:^|/)\.\.?(?:/|$)|//|/$" + (rb"|^[A-Za-z]:|\\" if os.name == "nt" else b""))


def _line_problem(line: str) -> str | None:
    if "\0" in line:
        return "holds a NUL byte"
    if len(os.fsencode(line)) > PATH_LIMIT:
        return f"is longer than any path ({len(line)} characters)"
    if line.startswith("/") or (os.name == "nt" and (line.startswith("\\") or line[1:2] == ":")):
        return "is an absolute path"
    parts = line.split("/")
    if ".." in parts:
        return "goes up with '..'"
    if "." in parts or "" in parts:
        return "is not a plain relative path ('.' or an empty part)"
    for sep in (os.sep, os.altsep):
        if sep and sep != "/" and any(sep in p for p in parts):
            return f"holds the separator {sep!r}"
    return None


@dataclass
class Audit:
    """A folder checked against its marker.

    is_export: the folder holds a marker whose first line is segstudio's head. problem: why that
    marker cannot be read as one (a link, not a plain file, too large, unreadable). bad: lines that
    are not plain relative paths. foreign: entries the marker does not list. unsafe: listed
    entries that are links, special files, or reached through a link. files: the listed plain
    files that are there, the only ones a replacing export deletes. Lists keep a few, counts all.
    """
    is_export: bool = False
    problem: str | None = None
    listed: int = 0
    files: set[str] = field(default_factory=set)
    bad: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    bad_count: int = 0
    foreign_count: int = 0
    unsafe_count: int = 0

    def add(self, kind: str, text: str) -> None:
        items = getattr(self, kind)
        if len(items) < _SHOWN:
            items.append(text)
        setattr(self, f"{kind}_count", getattr(self, f"{kind}_count") + 1)

    @property
    def clean(self) -> bool:
        """A segstudio export that holds only plain files its marker lists."""
        return (self.is_export and self.problem is None
                and not (self.bad_count or self.foreign_count or self.unsafe_count))


_FILE, _LINK, _SPECIAL = 0, 1, 2


def _entries(folder: Path) -> tuple[dict[bytes, int], set[bytes]]:
    """Every entry under folder that is not a folder ('/' path as bytes -> _FILE, _LINK or
    _SPECIAL), and the links. Never follows a link; the entry types come with the listing (no stat
    per file). A folder that cannot be listed raises OSError (what it holds would be unknown)."""
    entries: dict[bytes, int] = {}
    links: set[bytes] = set()
    stack = [(os.fsencode(folder), b"")]
    while stack:
        d, prefix = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                rel = prefix + e.name
                if e.is_symlink():
                    entries[rel] = _LINK
                    links.add(rel)
                elif e.is_dir(follow_symlinks=False):
                    stack.append((e.path, rel + b"/"))
                else:
                    entries[rel] = _FILE if e.is_file(follow_symlinks=False) else _SPECIAL
    entries.pop(os.fsencode(EXPORT_MARKER), None)
    return entries, links


def _decode(raw: bytes) -> str:
    return os.fsdecode(raw) if os.name != "nt" else raw.decode("utf-8", "replace")


def _lines(f) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each line after the first, read in 1 MB chunks; None for a line
    over PATH_LIMIT, which is skipped without being held whole."""
    n, rest, skipping = 1, b"", False
    while chunk := f.read(1 << 20):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            n += 1
            yield n, (None if skipping else part)
            skipping = False
        if skipping or len(rest) > PATH_LIMIT:
            skipping, rest = True, b""
    if rest or skipping:
        yield n + 1, (None if skipping else rest)


def _open_marker(folder: Path, audit: Audit):
    """The marker opened for reading (never through a link, never a FIFO), or None with audit set."""
    marker = folder / EXPORT_MARKER
    try:
        st = os.lstat(marker)
    except FileNotFoundError:
        return None
    except OSError as e:
        audit.is_export, audit.problem = True, f"its marker {EXPORT_MARKER} cannot be read ({e.strerror or e})"
        return None
    what = "a link" if stat.S_ISLNK(st.st_mode) else None if stat.S_ISREG(st.st_mode) else "not a plain file"
    if what is None:
        try:
            fd = os.open(marker, _OPEN_FLAGS)
            if stat.S_ISREG(os.fstat(fd).st_mode):  # not swapped since the lstat
                return os.fdopen(fd, "rb")
            os.close(fd)
            what = "not a plain file"
        except OSError as e:
            what = f"unreadable ({e.strerror or e})"
    audit.is_export, audit.problem = True, f"its marker {EXPORT_MARKER} is {what}"
    return None


def audit_folder(folder: Path) -> Audit:
    """Compare every entry under `folder` with its marker, reading the marker line by line.

    Memory is bounded by the entries really there, whatever the marker says. Raises OSError
    when a folder inside cannot be listed."""
    audit = Audit()
    f = _open_marker(folder, audit)
    if f is None:
        return audit
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.readline(len(MARKER_TEXT) + 2)
        if not head.startswith(MARKER_HEAD.encode()):
            return audit  # a user's file of that name: not an export
        audit.is_export = True
        if size > MARKER_LIMIT:
            audit.problem = f"its marker {EXPORT_MARKER} is over {MARKER_LIMIT >> 20} MB"
            return audit
        while head and not head.endswith(b"\n"):
            head = f.readline(1 << 16)
        entries, links = _entries(folder)
        seen: set[bytes] = set()
        for n, raw in _lines(f):
            if raw is None:
                audit.add("bad", f"line {n} is longer than any path")
                continue
            if not raw:
                continue
            if len(raw) > PATH_LIMIT or _SUSPECT.search(raw):
                line = _decode(raw)
                audit.add("bad", f"line {n} '{shown(line)}' {_line_problem(line) or 'is not a plain relative path'}")
                continue
            audit.listed += 1
            if raw in entries:
                seen.add(raw)
            elif links and b"/" in raw:  # through a link: reaches outside the folder
                parts = raw.split(b"/")
                if any(b"/".join(parts[:i]) in links for i in range(1, len(parts))):
                    audit.add("unsafe", f"'{shown(_decode(raw))}' goes through a link")
    for rel in sorted(entries):
        kind = entries[rel]
        name = _decode(rel)
        if rel not in seen:
            audit.add("foreign", shown(name) + (" (a link)" if kind == _LINK else ""))
        elif kind != _FILE:
            audit.add("unsafe", f"'{shown(name)}' is " + ("a link" if kind == _LINK else "not a plain file"))
        else:
            audit.files.add(name)
    return audit
