"""What an export leaves beside its output while it runs, and how the next export cleans it up.

An export to OUT writes `.OUT.segstudio-tmp-PID-RUN-HEX` and, while it swaps, renames the previous
export to `.OUT.segstudio-old-PID-RUN-HEX` (PID: the process, RUN: a token of this process's life,
so a later process with the same PID is told apart). A process killed half-way leaves these;
the next export to OUT recovers them, but only those whose process is gone:

- OUT missing and an old export beside it (killed between the two renames): the old export goes
  back to OUT.
- Any other old export: the files its marker lists are deleted (plain files only, never through
  a link), then the folders left empty. Anything it does not list is kept and named.
- A temporary folder holds only what the export wrote (it is created empty, owner-only, with an
  "in progress" marker): it is deleted. One without that marker is kept and named.

Names of an older segstudio (`.OUT.old-PID-HEX`, `.OUT.tmp-XXXXXXXX`) are recovered the same way
when what they hold proves they are ours (a marker that lists every file); otherwise kept and named.
Nothing that does not match these names is ever touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from segstudio.core.project import EXPORT_MARKER, MARKER_HEAD, is_export_marker
from segstudio.io.export_marker import audit_folder, shown


RUN = secrets.token_hex(4)  # this process's life: a later process with the same PID has another
IN_PROGRESS = f"{MARKER_HEAD}; export in progress, not finished\n".encode()
LEGACY_QUIET_S = 60.0  # an older segstudio's temporary folder younger than this may still be written
_DIR_FD = os.unlink in os.supports_dir_fd and os.stat in os.supports_dir_fd and os.open in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _stem(name: str) -> str:
    """OUT's name as it appears in a leftover's name (a long one shortened, with a hash to keep it unique)."""
    if len(name) <= 40:
        return name
    return name[:24] + "~" + hashlib.sha1(os.fsencode(name)).hexdigest()[:12]


def leftover_path(out: Path, kind: str) -> Path:
    """A new, unused leftover name beside `out`; kind is 'tmp' or 'old'."""
    while True:
        p = out.parent / f".{_stem(out.name)}.segstudio-{kind}-{os.getpid()}-{RUN}-{secrets.token_hex(4)}"
        if not os.path.lexists(p):
            return p


def make_tmp_dir(out: Path) -> Path:
    """An empty owner-only folder beside `out`, stamped as an export in progress."""
    while True:
        p = leftover_path(out, "tmp")
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            continue
        break
    fd = os.open(p / EXPORT_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, IN_PROGRESS)
    finally:
        os.close(fd)
    return p


def remove_tmp_dir(tmp: Path) -> None:
    """Delete a temporary export folder, its stamp last: killed half-way, what is left is still
    recognisable as ours. shutil.rmtree never follows links (fd-based where the OS allows)."""
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        if name == EXPORT_MARKER:
            continue
        p = tmp / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    (tmp / EXPORT_MARKER).unlink(missing_ok=True)
    try:
        os.rmdir(tmp)
    except OSError:
        pass


def make_tmp_file(out: Path) -> Path:
    """A new empty owner-only file beside `out`."""
    while True:
        p = leftover_path(out, "tmp")
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return p


# ----------------------------------------------------------------------------- whose leftover
def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        import ctypes
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        h = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not h:
            return ctypes.GetLastError() == 5  # type: ignore[attr-defined]  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(h, ctypes.byref(code))
        kernel32.CloseHandle(h)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def _writer_alive(pid: int, run: str | None) -> bool:
    """Whether the process that made a leftover may still be working on it."""
    if pid == os.getpid():
        return run == RUN  # our PID but another run: an earlier process, gone
    return _pid_alive(pid)


@dataclass
class Leftover:
    path: Path
    kind: str  # 'tmp' or 'old'
    legacy: bool
    is_dir: bool


def find_leftovers(out: Path) -> list[Leftover]:
    """Leftovers of exports to `out` whose process is gone (links and live writers excluded)."""
    stem, name = re.escape(_stem(out.name)), re.escape(out.name)
    ours = re.compile(rf"\.{stem}\.segstudio-(tmp|old)-(\d+)-([0-9a-f]{{8}})-[0-9a-f]{{8}}")
    legacy_old = re.compile(rf"\.{name}\.old-(\d+)-[0-9a-f]{{8}}")
    legacy_tmp = re.compile(rf"\.{name}\.tmp-[a-z0-9_]{{8}}")
    found = []
    try:
        with os.scandir(out.parent) as it:
            entries = [e for e in it if e.name.startswith(".")]
    except OSError:
        return []
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue  # a link or a special file is never ours
        is_dir = stat.S_ISDIR(st.st_mode)
        if m := ours.fullmatch(e.name):
            if not _writer_alive(int(m.group(2)), m.group(3)):
                found.append(Leftover(Path(e.path), m.group(1), False, is_dir))
        elif (m := legacy_old.fullmatch(e.name)) and is_dir:
            if not _writer_alive(int(m.group(1)), None):
                found.append(Leftover(Path(e.path), "old", True, is_dir))
        elif legacy_tmp.fullmatch(e.name) and time.time() - st.st_mtime > LEGACY_QUIET_S:
            found.append(Leftover(Path(e.path), "tmp", True, is_dir))
    return found


# ----------------------------------------------------------------------------- deleting safely
def _open_dirs(root_fd: int, parts: list[str]) -> int | None:
    """A descriptor of root/parts..., each opened without following a link; None if one is not a folder."""
    fd = root_fd
    try:
        for part in parts:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = nfd
    except OSError:
        if fd != root_fd:
            os.close(fd)
        return None
    return fd


def _remove_files_fd(root: Path, rels: list[str]) -> None:
    root_fd = os.open(root, _DIR_FLAGS)
    cur_dir: str | None = None
    cur_fd: int | None = None
    try:
        for rel in rels:
            parts = rel.split("/")
            d = "/".join(parts[:-1])
            if d != cur_dir:  # sorted paths keep a folder's files together: one open per folder
                if cur_fd is not None and cur_fd != root_fd:
                    os.close(cur_fd)
                cur_dir, cur_fd = d, _open_dirs(root_fd, parts[:-1])
            if cur_fd is None:
                continue
            try:
                if stat.S_ISREG(os.stat(parts[-1], dir_fd=cur_fd, follow_symlinks=False).st_mode):
                    os.unlink(parts[-1], dir_fd=cur_fd)
            except OSError:
                pass
        if cur_fd is not None and cur_fd != root_fd:
            os.close(cur_fd)
        for _top, dirs, _files, dfd in os.fwalk(".", dir_fd=root_fd, topdown=False, follow_symlinks=False):
            for d in dirs:
                try:
                    os.rmdir(d, dir_fd=dfd)  # only an empty folder; never through a link
                except OSError:
                    pass
    finally:
        os.close(root_fd)


def _remove_files_paths(root: Path, rels: list[str]) -> None:  # where there are no dir_fd calls
    for rel in rels:
        p, ok = root, True
        for part in rel.split("/")[:-1]:
            p = p / part
            try:
                ok = stat.S_ISDIR(os.lstat(p).st_mode)
            except OSError:
                ok = False
            if not ok:
                break
        p = root.joinpath(*rel.split("/"))
        try:
            if ok and stat.S_ISREG(os.lstat(p).st_mode):
                os.unlink(p)
        except OSError:
            pass
    for r, _dirs, _files in os.walk(root, topdown=False):
        if r != str(root):
            try:
                os.rmdir(r)
            except OSError:
                pass


def remove_listed(root: Path, files: Iterable[str]) -> list[str]:
    """Delete the regular files `files` (relative '/' paths, checked by the marker's rules) under
    `root`, the marker last, then the folders left empty and `root` itself. A link or anything
    that is not a plain file is never deleted or followed. Returns a few entries left when `root` stays."""
    rels = sorted(set(files) - {EXPORT_MARKER}) + [EXPORT_MARKER]  # the list goes last: a kill keeps it
    if _DIR_FD:
        _remove_files_fd(root, rels)
    else:
        _remove_files_paths(root, rels)
    try:
        os.rmdir(root)
        return []
    except FileNotFoundError:
        return []
    except OSError:
        return _some_entries(root)


def _some_entries(root: Path, limit: int = 3) -> list[str]:
    left: list[str] = []
    for r, dirs, files in os.walk(root):
        for n in files + [d for d in dirs if os.path.islink(os.path.join(r, d))]:
            left.append(shown(Path(os.path.relpath(os.path.join(r, n), root)).as_posix()))
            if len(left) >= limit:
                return left
    return left


def _only_an_empty_stamp(root: Path) -> bool:
    try:
        return os.listdir(root) == [EXPORT_MARKER] and os.lstat(root / EXPORT_MARKER).st_size == 0
    except OSError:
        return False


def _only_empty_folders(root: Path) -> bool:
    for _r, dirs, files in os.walk(root):
        if files or any(os.path.islink(os.path.join(_r, d)) for d in dirs):
            return False
    return True


# ----------------------------------------------------------------------------- recovery
def _clean_export(folder: Path) -> set[str] | None:
    """The files a finished export folder lists, when every entry in it is one of them; else None."""
    try:
        audit = audit_folder(folder)
    except OSError:
        return None
    return audit.files if audit.clean else None


def _remove_old(old: Path, notes: list[str]) -> None:
    files = _clean_export(old)
    if files is None:
        if _only_empty_folders(old):  # killed after the marker went, before the empty folders did
            remove_listed(old, [])
            return
        notes.append(f"kept {old}: an interrupted export's previous copy that holds files its marker "
                     f"does not list ({', '.join(_some_entries(old))}); look through it, then delete it")
        return
    left = remove_listed(old, files)
    if left:
        notes.append(f"kept {old}: it holds files the previous export did not write ({', '.join(left)})")


def _remove_tmp(t: Leftover, file_is_ours: Callable[[Path], bool], notes: list[str]) -> None:
    if not t.is_dir:
        if file_is_ours(t.path):
            t.path.unlink(missing_ok=True)
        else:
            notes.append(f"kept {t.path}: an unfinished export file whose content is not segstudio's")
        return
    if t.legacy:  # an older segstudio stamped nothing: only a finished, fully listed one is provably ours
        files = _clean_export(t.path)
        if files is not None:
            remove_listed(t.path, files)
        elif _only_empty_folders(t.path):
            remove_listed(t.path, [])
        else:
            notes.append(f"kept {t.path}: an unfinished export of an older segstudio; delete it if you "
                         "do not need it")
        return
    if is_export_marker(t.path / EXPORT_MARKER):  # made empty and stamped by us: all of it is ours
        remove_tmp_dir(t.path)
    elif _only_empty_folders(t.path) or _only_an_empty_stamp(t.path):  # killed while it was made
        remove_listed(t.path, [])
    else:
        notes.append(f"kept {t.path}: its export-in-progress marker is missing")


@dataclass
class Recovery:
    """What recovering the leftovers beside an output did, for the export's report: notes (what
    was restored or removed) and warnings (what was kept, and why: the person decides)."""
    notes: list[str]
    warnings: list[str]


def recover(out: Path, file_is_ours: Callable[[Path], bool]) -> Recovery:
    """Clean up what killed exports to `out` left (see the module's doc). Returns what was
    restored, removed, and kept and why (the caller reports it; see export_target)."""
    notes: list[str] = []
    kept: list[str] = []
    leftovers = find_leftovers(out)
    olds = [x for x in leftovers if x.kind == "old"]
    restored = None
    if olds and not os.path.lexists(out):
        # killed between the two renames of the swap: the previous export goes back
        candidates = [o for o in olds if _clean_export(o.path) is not None]
        if candidates:
            back = max(candidates, key=lambda o: os.lstat(o.path).st_ctime)
            try:
                os.rename(back.path, out)
                notes.append(f"put the previous export back in {out} (an earlier export was interrupted "
                             "while it swapped the folders)")
                olds.remove(back)
                restored = back
            except OSError as e:
                kept.append(f"could not put the previous export {back.path} back to {out}: {e.strerror or e}")
    for o in olds:
        _remove_old(o.path, kept)
    for t in leftovers:
        if t.kind == "tmp":
            _remove_tmp(t, file_is_ours, kept)
    removed = [t.path.name for t in leftovers if t is not restored and not os.path.lexists(t.path)]
    if removed:
        notes.append(f"removed {len(removed)} leftover{'s' * (len(removed) > 1)} of killed or interrupted "
                     f"exports to {out} ({', '.join(sorted(removed)[:3])}{', ...' * (len(removed) > 3)})")
    return Recovery(notes, kept)
