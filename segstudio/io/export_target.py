"""Where an export may write, and how it lands there without ever losing a user's file.

Rules (checked before any work and again just before the final rename):

- The output is never the image folder, a folder inside it, or a folder above it; the same for
  the folder that holds the project store (`--project` elsewhere).
- A folder output that exists and is not empty is replaced only when it is a previous segstudio
  export: it holds the marker file, and every file in it is one that export wrote (the marker
  lists them). A folder that holds anything else is refused; nothing is renamed or deleted.
- A single-file output (COCO JSON) replaces a file only when segstudio wrote that file (or it
  is empty); it never replaces a folder.
- What is written is complete before it becomes visible: files and folders are flushed
  (fsync) and the finished temporary folder or file is renamed onto the output in one step.
  When an old export is swapped out, only the files its marker lists are removed.
- Output gets the permissions of any file the user creates (umask), not the owner-only mode
  of a temporary folder.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from segstudio.core.errors import UserError
from segstudio.core.project import EXPORT_MARKER, Project

log = logging.getLogger(__name__)

MARKER_HEAD = "written by segstudio"
_MARKER_TEXT = (f"{MARKER_HEAD}; image scans skip this folder. A later export to this folder "
                "replaces only the files listed below.\n")
COCO_HEAD = b'{"info":{"description":"exported by segstudio'


class ExportTargetError(UserError):
    """The export output would replace or sit among files segstudio did not write."""


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


_UMASK = _umask()


def _resolved(p: Path) -> Path:
    try:
        return p.expanduser().resolve()
    except (OSError, RuntimeError):  # a link loop: compare as written
        return Path(os.path.abspath(p.expanduser()))


def check_placement(out: Path, project: Project) -> None:
    target = _resolved(out)
    images = _resolved(project.folder)
    if target == images:
        raise ExportTargetError(f"{out} is the image folder; export to a folder outside it")
    if images in target.parents:
        raise ExportTargetError(f"{out} is inside the image folder ({images}); export to a folder outside it")
    if target in images.parents:
        raise ExportTargetError(f"{out} contains the image folder ({images}); replacing it would delete "
                                "your images and annotations; choose an empty or new folder")
    # a store kept elsewhere (--project): never replace it or a folder holding it
    db = _resolved(project.store.db_path)
    if target == db or target in db.parents:
        raise ExportTargetError(f"{out} holds the project store ({db}); choose an empty or new folder")


def read_manifest(folder: Path) -> set[str] | None:
    """Relative paths a segstudio export wrote into `folder`; None when it is not an export.

    A marker without a list (segstudio before 0.2) claims the whole folder.
    """
    marker = folder / EXPORT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        with open(marker, encoding="utf-8", errors="replace") as f:
            lines = f.read(64 << 20).splitlines()
    except OSError:
        return None
    if not lines or not lines[0].startswith(MARKER_HEAD):
        return None
    files = {ln for ln in lines[1:] if ln and not ln.startswith("#")}
    return files if len(lines) > 1 else {"*"}


def _foreign_files(folder: Path, manifest: set[str]) -> list[str]:
    """Files (and links) in folder that the export's marker does not list."""
    if manifest == {"*"}:
        return []
    foreign = []
    for root, dirs, files in os.walk(folder):  # never follows links into other folders
        rel_root = Path(root).relative_to(folder)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = (rel_root / name).as_posix()
            if rel != EXPORT_MARKER and rel not in manifest:
                foreign.append(rel)
                if len(foreign) >= 3:
                    return foreign
    return foreign


def check_dir_target(out: str | Path, project: Project) -> None:
    """Raise ExportTargetError unless a folder export may write (or replace) `out`."""
    out = Path(out)
    check_placement(out, project)
    if out.is_symlink():
        raise ExportTargetError(f"{out} is a link; give the folder it points to, or a new folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportTargetError(f"{out} exists and is a file, not a folder; choose a folder")
    try:
        empty = next(os.scandir(out), None) is None
    except OSError as e:
        raise ExportTargetError(f"cannot read {out}: {e.strerror or e}") from None
    if empty:
        return
    manifest = read_manifest(out)
    if manifest is None:
        raise ExportTargetError(f"{out} is not empty and is not a segstudio export; choose an empty or "
                                "new folder (segstudio replaces only folders it wrote)")
    foreign = _foreign_files(out, manifest)
    if foreign:
        raise ExportTargetError(f"{out} is a segstudio export but also holds files it did not write "
                                f"({', '.join(foreign)}); move them or choose another folder")


def check_file_target(out: str | Path, project: Project) -> None:
    """Raise ExportTargetError unless a single-file export may write (or replace) `out`."""
    out = Path(out)
    check_placement(out, project)
    if out.is_symlink():
        raise ExportTargetError(f"{out} is a link; give a new file name")
    if not out.exists():
        return
    if out.is_dir():
        raise ExportTargetError(f"{out} is a folder; give a file name")
    try:
        with open(out, "rb") as f:
            head = f.read(len(COCO_HEAD))
    except OSError as e:
        raise ExportTargetError(f"cannot read {out}: {e.strerror or e}") from None
    if head and head != COCO_HEAD:
        raise ExportTargetError(f"{out} exists and was not written by segstudio; choose a new file name "
                                "(segstudio replaces only files it wrote)")


# ----------------------------------------------------------------------------- flushing
def _fsync_path(p: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":  # Windows cannot open a folder for fsync
        return
    fd = os.open(p, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal_tree(tmp: Path) -> None:
    """Write the marker with the list of files, give normal permissions, flush everything."""
    written: list[str] = []
    for root, _dirs, found in os.walk(tmp):
        rel_root = Path(root).relative_to(tmp)
        written.extend((rel_root / f).as_posix() for f in found)
    written.sort()
    (tmp / EXPORT_MARKER).write_text(_MARKER_TEXT + "".join(f + "\n" for f in written), encoding="utf-8")
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp made it owner-only
    files: list[Path] = []
    dirs: list[Path] = []
    for root, _d, names in os.walk(tmp, topdown=False):
        files.extend(Path(root) / f for f in names)
        dirs.append(Path(root))
    # fsync waits on the disk, not the CPU: several at once take a fraction of the time
    with ThreadPoolExecutor(8, thread_name_prefix="segstudio-fsync") as pool:
        list(pool.map(_fsync_path, files))
    for d in dirs:  # deepest first, the export's own folder last
        _fsync_path(d, directory=True)


def _unique_beside(out: Path, tag: str) -> Path:
    while True:
        p = out.parent / f".{out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"
        if not os.path.lexists(p):
            return p


def _remove_old_export(old: Path, manifest: set[str]) -> None:
    """Delete a swapped-out export: the files its marker lists, then folders left empty."""
    if manifest == {"*"}:  # an older segstudio's export, checked whole before the swap
        shutil.rmtree(old, ignore_errors=True)
        return
    for rel in sorted(manifest | {EXPORT_MARKER}):
        p = old.joinpath(*rel.split("/"))
        if p.is_file() or p.is_symlink():
            try:
                p.unlink()
            except OSError:
                pass
    for root, _dirs, _files in os.walk(old, topdown=False):
        try:
            os.rmdir(root)
        except OSError:
            pass
    if old.exists():
        log.warning("kept %s: it holds files the previous export did not write", old)


# ----------------------------------------------------------------------------- atomic output
@contextmanager
def atomic_dir(out: str | Path, project: Project) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out` in one rename.

    `out` is checked first (check_dir_target). On any error (or cancel) the temporary folder
    is removed and `out` is left as it was.
    """
    out = Path(out)
    check_dir_target(out, project)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _seal_tree(tmp)
        check_dir_target(out, project)  # the folder may have changed while we wrote
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # made by mkdtemp above: ours alone
        raise
    old, manifest = None, None
    try:
        if out.exists():
            manifest = read_manifest(out)
            if manifest is not None:  # a previous export; an empty folder has none and is just replaced
                old = _unique_beside(out, "old")
                os.replace(out, old)
            else:
                os.rmdir(out)  # checked empty just above; rmdir refuses anything else
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not os.path.lexists(out):
            os.replace(old, out)  # put the previous export back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(out.parent, directory=True)
    if old is not None:
        assert manifest is not None  # old is set only when the folder had a manifest
        _remove_old_export(old, manifest)


@contextmanager
def atomic_file(out: str | Path, project: Project) -> Iterator[Path]:
    """Yield a temporary file path beside `out`; flushed and renamed onto `out` on success."""
    out = Path(out)
    check_file_target(out, project)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp made it owner-only
        _fsync_path(tmp)
        check_file_target(out, project)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    _fsync_path(out.parent, directory=True)
