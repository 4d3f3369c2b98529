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
import stat
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Manifest:
    """What a marker claims. `files`: the well-formed lines; `bad`: why the rest cannot be trusted."""
    files: frozenset[str]
    bad: list[str] = field(default_factory=list)


def _line_problem(line: str) -> str | None:
    if "\0" in line:
        return "holds a NUL byte"
    if len(os.fsencode(line)) > PATH_LIMIT:
        return f"is longer than any path ({len(line)} characters)"
    if line.startswith(("/", "\\")) or (len(line) > 1 and line[1] == ":"):
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


def read_manifest(folder: Path) -> Manifest | None:
    """The marker in `folder`, parsed; None when there is none (no entry of that name, or a file
    whose first line is not the marker's head: a user's file, not segstudio's)."""
    marker = folder / EXPORT_MARKER
    try:
        st = os.lstat(marker)
    except FileNotFoundError:
        return None
    except OSError as e:
        return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} cannot be read ({e.strerror or e})"])
    if stat.S_ISLNK(st.st_mode):
        return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} is a link"])
    if not stat.S_ISREG(st.st_mode):
        return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} is not a plain file"])
    try:
        fd = os.open(marker, _OPEN_FLAGS)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the lstat
                return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} is not a plain file"])
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(MARKER_LIMIT + 1)
        finally:
            os.close(fd)
    except OSError as e:
        return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} cannot be read ({e.strerror or e})"])
    if not data.startswith(MARKER_HEAD.encode()):
        return None
    if len(data) > MARKER_LIMIT:
        return Manifest(frozenset(), [f"its marker {EXPORT_MARKER} is over {MARKER_LIMIT >> 20} MB"])
    files: set[str] = set()
    bad: list[str] = []
    for n, raw in enumerate(data.split(b"\n")[1:], start=2):
        if not raw:
            continue
        line = os.fsdecode(raw) if os.name != "nt" else raw.decode("utf-8", "replace")
        why = _line_problem(line)
        if why is None:
            files.add(line)
        else:
            bad.append(f"line {n} '{shown(line)}' {why}")
    return Manifest(frozenset(files), bad)


@dataclass
class Audit:
    """The folder checked against its marker: entries it does not list, and listed entries that
    are not plain files in plain folders (links, paths through links, FIFOs, devices)."""
    foreign: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    foreign_count: int = 0
    unsafe_count: int = 0

    def add(self, kind: str, text: str) -> None:
        items = self.foreign if kind == "foreign" else self.unsafe
        if len(items) < _SHOWN:
            items.append(text)
        if kind == "foreign":
            self.foreign_count += 1
        else:
            self.unsafe_count += 1


def audit_folder(folder: Path, manifest: Manifest) -> Audit:
    """Walk `folder` without following links and compare every entry with the marker.

    Raises OSError when a folder inside cannot be listed (what it holds is then unknown).
    """
    audit = Audit()
    links: list[str] = []

    def fail(e: OSError) -> None:
        raise e

    for root, dirs, files in os.walk(folder, onerror=fail):  # os.walk never follows links into folders
        rel_root = Path(root).relative_to(folder)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            rel = (rel_root / name).as_posix()
            if rel == EXPORT_MARKER:
                continue
            try:
                mode = os.lstat(os.path.join(root, name)).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                links.append(rel)
            if rel not in manifest.files:
                audit.add("foreign", shown(rel) + (" (a link)" if stat.S_ISLNK(mode) else ""))
            elif not stat.S_ISREG(mode):
                audit.add("unsafe", f"'{shown(rel)}' is " + ("a link" if stat.S_ISLNK(mode) else "not a plain file"))
    if links:  # a listed path that goes through a link reaches outside the folder
        prefixes = tuple(p + "/" for p in links)
        for rel in sorted(manifest.files):
            if rel.startswith(prefixes):
                audit.add("unsafe", f"'{shown(rel)}' goes through a link")
    return audit
