"""Where an export may write, and how it lands there without ever losing a user's file.

Rules (checked before any work and again under the swap), all on the output path with its
links followed (a link to a folder is judged, and replaced, as the folder it leads to):

- The output is never the image folder, a folder inside it, or a folder above it; the same for
  the folder that holds the project store (`--project` elsewhere).
- A folder output that exists and is not empty is replaced only when it is a previous segstudio
  export: its marker (export_marker: hostile input, checked line by line) lists every entry
  in it, and every listed entry is a plain file inside it, not a link or reached through one.
  A marker without a list licenses nothing. Anything else is refused, named; nothing is renamed
  or deleted.
- A single-file output (COCO JSON) replaces a file only when segstudio wrote that file (or it
  is empty); it never replaces a folder.
- What is written is complete before it becomes visible: files and folders are flushed
  (fsync) and the finished temporary folder or file is renamed onto the output in one step.
  The previous export is renamed aside and checked again there (a file that appeared since is
  seen: the folder goes back, the export is refused); then only the plain files its marker
  lists are deleted, never through a link.
- A killed export leaves recognisable names beside the output; the next export to it recovers
  them first (export_leftovers), and what it did (restored, removed, kept) goes into the
  export's report. A write that fails (a full disk) leaves the previous export
  as it was and says so (ExportWriteError).
- Output gets the permissions of any file the user creates (umask), not the owner-only mode
  of a temporary folder.
"""

from __future__ import annotations

import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from segstudio.core.errors import UserError
from segstudio.core.project import EXPORT_MARKER, Project
from segstudio.io import export_leftovers as leftovers
from segstudio.io.export_marker import Audit, ExportTargetError, audit_folder, marker_bytes, shown

__all__ = ["ExportTargetError", "ExportWriteError", "atomic_dir", "atomic_file", "audit_folder", "check_dir_target",
           "check_file_target", "check_placement", "collect_messages", "real_path"]

log = logging.getLogger(__name__)

COCO_HEAD = b'{"info":{"description":"exported by segstudio'


class ExportWriteError(UserError, OSError):
    """Writing the export failed (a full disk, a read-only folder); what was there is unchanged.

    Still an OSError, so callers that catch OSError keep working."""


# what recovering a killed export's leftovers did, and what a swap kept: collected for the
# export's report (registry.run_export) when a collector is active, else logged as warnings
_messages: ContextVar[leftovers.Recovery | None] = ContextVar("export_messages", default=None)


@contextmanager
def collect_messages() -> Iterator[leftovers.Recovery]:
    """Collect the notes and warnings of the exports run inside (per thread and context)."""
    box = leftovers.Recovery([], [])
    token = _messages.set(box)
    try:
        yield box
    finally:
        _messages.reset(token)


def _tell(notes: list[str], warnings: list[str]) -> None:
    box = _messages.get()
    for m in notes + warnings:  # logged as warnings only where no report carries them to the person
        log.log(logging.INFO if box is not None else logging.WARNING, "%s", m)
    if box is not None:
        box.notes.extend(notes)
        box.warnings.extend(warnings)


def _recover(real: Path) -> None:
    done = leftovers.recover(real, _partial_coco_is_ours)
    _tell(done.notes, done.warnings)


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


_UMASK = _umask()


def real_path(out: str | Path) -> Path:
    """`out` with every link in it followed: the place the rules are checked on and the export
    lands. A loop of links is refused."""
    out = Path(out).expanduser()
    try:
        return out.resolve()
    except (OSError, RuntimeError):
        raise ExportTargetError(f"{out} leads into a loop of links; give a plain path") from None


def _named(out: Path, real: Path) -> str:
    """The path as the user gave it, and where it leads when a link made it differ."""
    given = Path(os.path.abspath(out.expanduser()))
    return str(out) if given == real else f"{out} (which leads to {real})"


def check_placement(out: Path, project: Project) -> None:
    target = real_path(out)
    name = _named(Path(out), target)
    images = real_path(project.folder)
    if target == images:
        raise ExportTargetError(f"{name} is the image folder; export to a folder outside it")
    if images in target.parents:
        raise ExportTargetError(f"{name} is inside the image folder ({images}); export to a folder outside it")
    if target in images.parents:
        raise ExportTargetError(f"{name} contains the image folder ({images}); replacing it would delete "
                                "your images and annotations; choose an empty or new folder")
    # a store kept elsewhere (--project): never replace it or a folder holding it. A server's store has
    # no file here (its db_path is its URL, never a path to check): this machine's data folder instead
    db = real_path(project.store.db_path if project.store.kind == "sqlite" else project.data_dir)
    if target == db or target in db.parents:
        raise ExportTargetError(f"{name} holds the project store ({db}); choose an empty or new folder")


def _more(count: int, shown_items: list[str]) -> str:
    return f" and {count - len(shown_items)} more" if count > len(shown_items) else ""


def _audit(name: str, folder: Path) -> Audit:
    try:
        return audit_folder(folder)
    except OSError as e:
        raise ExportTargetError(f"cannot read {name}: {e.strerror or e} ({shown(os.fsdecode(e.filename or ''))}); "
                                "nothing was replaced") from None


def _refusal(name: str, audit: Audit) -> str | None:
    """Why a non-empty folder may not be replaced; None when it is a segstudio export that holds
    only plain files its marker lists."""
    if not audit.is_export:
        return (f"{name} is not empty and is not a segstudio export; choose an empty or new folder "
                "(segstudio replaces only folders it wrote)")
    untrusted = f"{name} has a segstudio marker that cannot be trusted"
    keep = "nothing was replaced (move the folder away or choose another)"
    if audit.problem:
        return f"{untrusted}: {audit.problem}; {keep}"
    if audit.bad_count:
        return f"{untrusted}: {'; '.join(audit.bad)}{_more(audit.bad_count, audit.bad)}; {keep}"
    if audit.unsafe_count:
        return (f"{name} has a segstudio marker that lists what an export never writes: "
                f"{'; '.join(audit.unsafe)}{_more(audit.unsafe_count, audit.unsafe)}; {keep}")
    if audit.foreign_count:
        what = ("its marker lists no files (an older or hand-made marker), so these are not known to be "
                "segstudio's" if not audit.listed else "it also holds files it did not write")
        return (f"{name} is a segstudio export but {what}: {', '.join(audit.foreign)}"
                f"{_more(audit.foreign_count, audit.foreign)}; move them or choose another folder")
    return None


def _parent_is_folder(out: Path, real: Path) -> None:
    """The nearest existing folder above `real` must be a folder (it is created up to there)."""
    for up in real.parents:
        if os.path.lexists(up):
            if not up.is_dir():
                raise ExportTargetError(f"{_named(out, real)} is under {up}, which is a file, not a folder")
            return


def _check_dir(out: Path, real: Path, project: Project) -> Audit | None:
    """check_dir_target on the resolved path; returns the audit of an export to replace."""
    name = _named(out, real)
    check_placement(real, project)
    _parent_is_folder(out, real)
    if not os.path.lexists(real):
        return None
    if not real.is_dir():
        raise ExportTargetError(f"{name} exists and is a file, not a folder; choose a folder")
    try:
        empty = next(os.scandir(real), None) is None
    except OSError as e:
        raise ExportTargetError(f"cannot read {name}: {e.strerror or e}") from None
    if empty:
        return None
    audit = _audit(name, real)
    why = _refusal(name, audit)
    if why:
        raise ExportTargetError(why)
    return audit


def check_dir_target(out: str | Path, project: Project) -> None:
    """Raise ExportTargetError unless a folder export may write (or replace) `out`.

    Every rule is checked on the path with its links followed."""
    out = Path(out)
    _check_dir(out, real_path(out), project)


def check_file_target(out: str | Path, project: Project) -> None:
    """Raise ExportTargetError unless a single-file export may write (or replace) `out`."""
    out = Path(out)
    _check_file(out, real_path(out), project)


def _check_file(out: Path, real: Path, project: Project) -> None:
    name = _named(out, real)
    check_placement(real, project)
    _parent_is_folder(out, real)
    if not os.path.lexists(real):
        return
    if real.is_dir():
        raise ExportTargetError(f"{name} is a folder; give a file name")
    if not real.is_file():
        raise ExportTargetError(f"{name} is not a plain file; give a new file name")
    if not _coco_file_is_ours(real):
        raise ExportTargetError(f"{name} exists and was not written by segstudio; choose a new file name "
                                "(segstudio replaces only files it wrote)")


def _coco_file_is_ours(p: Path) -> bool:
    """A file segstudio's COCO export wrote (or an empty one); raises ExportTargetError if unreadable."""
    try:
        with open(p, "rb") as f:
            head = f.read(len(COCO_HEAD))
    except OSError as e:
        raise ExportTargetError(f"cannot read {p}: {e.strerror or e}") from None
    return not head or head == COCO_HEAD


def _partial_coco_is_ours(p: Path) -> bool:
    """For a killed COCO export's temporary file: empty, or begun with segstudio's head."""
    try:
        with open(p, "rb") as f:
            head = f.read(len(COCO_HEAD))
    except OSError:
        return False
    return COCO_HEAD.startswith(head) or head == COCO_HEAD


def _write_failed(e: OSError, out: Path, tmp: Path, had_previous: bool) -> ExportWriteError:
    """The user's message for a write that failed: what, where, and that nothing was replaced."""
    why = "the disk is full" if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else (e.strerror or str(e))
    where = ""
    if e.filename:
        try:
            where = f" (writing {Path(os.fsdecode(e.filename)).relative_to(tmp).as_posix()})"
        except ValueError:
            where = f" ({shown(os.fsdecode(e.filename))})"
    kept = (f"the previous export in {out} is unchanged" if had_previous else f"nothing was written to {out}")
    err = ExportWriteError(f"could not write the export: {why}{where}; {kept}")
    err.errno = e.errno
    return err


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
        written.extend(r for r in ((rel_root / f).as_posix() for f in found) if r != EXPORT_MARKER)
    written.sort()
    new = tmp / (EXPORT_MARKER + ".new")
    with open(new, "wb") as f:
        f.write(marker_bytes(written))
    os.chmod(new, 0o666 & ~_UMASK)
    os.replace(new, tmp / EXPORT_MARKER)  # the "in progress" stamp is never missing, even if killed here
    os.chmod(tmp, 0o777 & ~_UMASK)  # made owner-only
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


def _swap_in(tmp: Path, out: Path, real: Path, project: Project) -> tuple[Path, set[str]] | None:
    """Put the finished `tmp` in place of `real`. Returns the previous export, moved aside, and
    the files of it to delete.

    The previous export is renamed aside first and checked again there: once it no longer has
    its name, nothing written by path can join it, so a file that appeared since the last check
    is seen, the folder goes back, and the export is refused with the file named.
    """
    audit = _check_dir(out, real, project)  # the folder may have changed while we wrote
    old = None
    if os.path.lexists(real):
        if audit is None:  # checked empty just above; rmdir refuses anything else
            try:
                os.rmdir(real)
            except OSError:
                raise ExportTargetError(f"{_named(out, real)} is no longer empty; nothing was replaced") from None
        else:
            old = leftovers.leftover_path(real, "old")
            os.rename(real, old)
            try:
                audit = _audit(_named(out, real), old)
                why = _refusal(_named(out, real), audit)
            except BaseException:
                os.rename(old, real)
                raise
            if why:
                os.rename(old, real)  # nothing was lost: the folder goes back as it was
                raise ExportTargetError(f"{why} (it changed while exporting)")
    try:
        os.rename(tmp, real)
    except BaseException:
        if old is not None and not os.path.lexists(real):
            os.rename(old, real)  # put the previous export back
        raise
    return (old, audit.files) if old is not None and audit is not None else None


# ----------------------------------------------------------------------------- atomic output
@contextmanager
def atomic_dir(out: str | Path, project: Project) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out` in one rename.

    Links in `out` are followed first: the rules hold on the real folder and the export lands
    there. What killed exports to it left is recovered first (export_leftovers). `out` is checked
    (check_dir_target) before any work and again under the swap. On any error (or cancel) the
    temporary folder is removed and `out` is left as it was; a write that fails (a full disk)
    raises ExportWriteError saying so.
    """
    out = Path(out)
    real = real_path(out)
    check_placement(real, project)  # before recovery touches anything beside it
    _recover(real)
    _check_dir(out, real, project)
    had_previous = os.path.lexists(real)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        tmp = leftovers.make_tmp_dir(real)
    except OSError as e:
        raise _write_failed(e, out, real.parent, had_previous) from e
    try:
        yield tmp
        _seal_tree(tmp)
        previous = _swap_in(tmp, out, real, project)
    except BaseException as e:
        leftovers.remove_tmp_dir(tmp)  # made empty by make_tmp_dir: ours alone
        if isinstance(e, OSError) and not isinstance(e, UserError):
            raise _write_failed(e, out, tmp, had_previous) from e
        raise
    _fsync_path(real.parent, directory=True)
    if previous is not None:
        old, files = previous
        left = leftovers.remove_listed(old, files)
        if left:  # written into the old folder after it was checked under the swap: kept, named
            _tell([], [f"kept {old}: it holds files the previous export did not write ({', '.join(left)}); "
                       "look through it, then delete it"])


@contextmanager
def atomic_file(out: str | Path, project: Project) -> Iterator[Path]:
    """Yield a temporary file path beside `out`; flushed and renamed onto `out` on success.

    Links in `out` are followed: the file they lead to is checked and replaced."""
    out = Path(out)
    real = real_path(out)
    check_placement(real, project)
    _recover(real)
    _check_file(out, real, project)
    had_previous = os.path.lexists(real)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        tmp = leftovers.make_tmp_file(real)
    except OSError as e:
        raise _write_failed(e, out, real.parent, had_previous) from e
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # made owner-only
        _fsync_path(tmp)
        _check_file(out, real, project)
        os.replace(tmp, real)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, UserError):
            raise _write_failed(e, out, tmp.parent, had_previous) from e
        raise
    _fsync_path(real.parent, directory=True)
