"""Every pretrained weights file segstudio knows, where it is expected, and whether it is there
and intact: the catalogue behind `segstudio weights` and the Model panel's *Get weights…* dialog.

The entries come from the registry: each family's `catalog` function lists the files it loads,
from the sources the models themselves load from, never typed a second time: torchvision's
weights enums (Mask R-CNN v1/v2 COCO in `maskrcnn.versions.VERSIONS`; FCN / DeepLabV3 COCO-VOC
weights and their ImageNet backbones in `semantic.nets.TV_NETS`; the ResNet encoders of the
ResNet-UNet in `semantic.nets.RESNETS`) and Segment Anything's `sam.spec.MODELS`. Every file
lives where torchvision and `sam_spec.weights_file` look for it, the torch hub cache
(`torch.hub.get_dir()/checkpoints`, moved by $TORCH_HOME), so a pip install and the PyInstaller
bundle find the same files.

How much each file can be checked:

- Meta's Segment Anything files: exact size and full sha256 (from `sam_spec`): "hash ok".
- torchvision's files: the file name carries the first hex digits of the sha256 (torch.hub's
  `check_hash` convention, `resnet18-f37072fd.pth`), and the enum's meta gives the size in MiB
  to three decimals: "hash prefix ok" (prefix checked, the full hash is not known here).
- Light HQ-SAM's tiny file: neither size nor hash is known ("unverified"); a file that is to be
  placed under its name must at least read as a TinyViT SAM state dict with HQ-SAM's layers
  (`torch.load(weights_only=True)`: a file holding code is refused, never run).

Downloads and added files are written to a temporary file in the destination folder, verified,
flushed and then renamed into place: a failed, refused or cancelled transfer never leaves
anything under the final name. An existing file is replaced only when it is verified wrong
(size or hash mismatch, unreadable), and the result says so. An added file is copied, never
moved. No Qt; torch and torchvision are imported when the catalogue is first built.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Callable

from segstudio.core.errors import UserError
from segstudio.inference.hub import hub_dir
from segstudio.inference.runtime.weights_offer import HASH_REGEX as _HASH_REGEX
from segstudio.inference.runtime.torch_archive import archive_problem
from segstudio.io.common import Cancelled

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # bytes done, bytes in all (0: not known), what
CancelCheck = Callable[[], bool]

CHUNK = 1 << 20
MIB = 1 << 20
SIZE_TOLERANCE_MIB = 0.002  # torchvision's meta gives the size in MiB rounded to 3 decimals
MIN_WEIGHTS_BYTES = 1024  # smaller: a git-LFS pointer or an error page saved under the weights' name
DOWNLOAD_TIMEOUT_S = 60

# what a file can be found to be
MISSING = "missing"
PRESENT = "present"  # quick look: there, size plausible, hash not computed
SIZE_MISMATCH = "size mismatch"
HASH_OK = "hash ok"  # full sha256 checked
PREFIX_OK = "hash prefix ok"  # the sha256 prefix in the file name checked (the full hash is not known)
UNVERIFIED = "unverified"  # no hash known; it reads as the expected kind of state dict
HASH_MISMATCH = "hash MISMATCH"
CORRUPT = "unusable"  # not a readable state dict of the expected kind (corrupt, truncated, other)
NO_ACCESS = "cannot read"  # a folder, no permission: nothing is known about the file
WRONG = (SIZE_MISMATCH, HASH_MISMATCH, CORRUPT)  # verified wrong: the only files get/add replace
GOOD = (HASH_OK, PREFIX_OK, UNVERIFIED)


class WeightsFileError(UserError):
    """A weights file cannot be downloaded, identified, verified or put in place; the message says
    which file and why, and that nothing was written under the final name."""


# ----------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class WeightsEntry:
    name: str  # the name `segstudio weights get NAME` takes
    title: str
    used_by: tuple[str, ...]  # what in segstudio loads it
    file: str  # file name in the torch hub cache (the name torchvision / sam_spec look for)
    url: str
    size: int | None = None  # exact bytes, when known
    approx_mib: float | None = None  # torchvision meta's size in MiB (3 decimals), when known
    sha256: str | None = None  # full hash, when known
    hash_prefix: str | None = None  # from the file name (torch.hub's check_hash convention)
    models: tuple[str, ...] = ()  # the family's model names that read this file
    reads: str | None = None  # the family's check of a file with no known hash (weights_offer.Offer.reads)
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def path(self) -> Path:
        """Where the app looks for it (computed now: TORCH_HOME may have changed)."""
        return checkpoints_dir() / self.file

    @property
    def check(self) -> str:
        """How far a file can be verified: "sha256", "sha256 prefix" or "none"."""
        return "sha256" if self.sha256 else "sha256 prefix" if self.hash_prefix else "none"

    def size_text(self) -> str:
        if self.size is not None:
            return mib_text(self.size)
        if self.approx_mib is not None:
            return f"~{self.approx_mib:.1f} MiB"
        return "size unknown"

    def size_problem(self, size: int) -> str | None:
        """Why a file of `size` bytes cannot be this one, or None."""
        if size < MIN_WEIGHTS_BYTES:
            return f"it has only {size} bytes: not a weights file (a git-LFS pointer or a web page?)"
        if self.size is not None and size != self.size:
            return f"it has {size} bytes, the official file {self.size}"
        if self.approx_mib is not None and abs(size / MIB - self.approx_mib) > SIZE_TOLERANCE_MIB:
            return f"it has {size / MIB:.3f} MiB, torchvision's file {self.approx_mib:.3f} MiB"
        return None

    def hash_problem(self, digest: str) -> str | None:
        """Why a file with this sha256 cannot be this one, or None (also None when no hash is known)."""
        if self.sha256 is not None and digest != self.sha256:
            return f"its sha256 is {digest[:16]}…, the official file's {self.sha256[:16]}…"
        if self.sha256 is None and self.hash_prefix and not digest.startswith(self.hash_prefix):
            return f"its sha256 is {digest[:16]}…, but the name {self.file} says it starts with {self.hash_prefix}"
        return None

    def hash_status(self, digest: str) -> str:
        if self.hash_problem(digest):
            return HASH_MISMATCH
        return HASH_OK if self.sha256 else PREFIX_OK if self.hash_prefix else UNVERIFIED

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "used_by": list(self.used_by), "file": self.file,
                "url": self.url, "path": str(self.path), "size": self.size, "approx_mib": self.approx_mib,
                "sha256": self.sha256, "sha256_prefix": self.hash_prefix, "check": self.check}


def mib_text(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB / 10 else f"{n} bytes"


def checkpoints_dir() -> Path:
    """The torch hub cache's checkpoints folder (torch.hub.get_dir()/checkpoints; $TORCH_HOME
    moves it): where torchvision's loaders and `sam_spec.weights_file` look."""
    return hub_dir() / "checkpoints"


@lru_cache(maxsize=1)
def _build() -> tuple[WeightsEntry, ...]:
    """Every family's files (`Family.catalog`, in the registry's order), one entry per file name."""
    import torch.hub

    from segstudio.inference import registry
    from segstudio.inference.family import resolve
    assert _HASH_REGEX.pattern == torch.hub.HASH_REGEX.pattern  # the convention torch.hub checks
    found: dict[str, dict[str, Any]] = {}  # file name -> fields, in catalogue order
    refs = list(dict.fromkeys(f.catalog for f in registry.FAMILIES.values() if f.catalog))
    for ref in refs:
        for o in resolve(ref)():
            file = o.file or os.path.basename(o.url)
            if file in found:
                found[file]["used_by"].append(o.user)
                found[file]["models"].extend(m for m in o.models if m not in found[file]["models"])
                continue
            found[file] = {"name": o.name, "title": o.title, "used_by": [o.user], "file": file, "url": o.url,
                           "size": o.size, "approx_mib": o.approx_mib, "sha256": o.sha256,
                           "hash_prefix": o.hash_prefix, "models": list(o.models), "reads": o.reads}
    out = []
    for d in found.values():
        d["used_by"] = tuple(d["used_by"])
        d["models"] = tuple(d["models"])
        d["aliases"] = tuple(a for a in (d["file"], *d["models"]) if a != d["name"])
        out.append(WeightsEntry(**d))
    return tuple(out)


def entries() -> list[WeightsEntry]:
    """The catalogue (imports torchvision the first time)."""
    return list(_build())


def find(name: str) -> WeightsEntry:
    """An entry by its name, its file name, or a Segment Anything model name that reads it."""
    es = entries()
    for e in es:
        if name == e.name or name in e.aliases:
            return e
    raise WeightsFileError(f"no weights named {name!r}; use one of {', '.join(e.name for e in es)}")


# ----------------------------------------------------------------------------- hashing
_hashed: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process
_hashed_lock = threading.Lock()


def file_sha256(path: Path, progress: Progress | None = None, cancelled: CancelCheck | None = None) -> str:
    """sha256 of a file, remembered for this process while its size and mtime stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hashed_lock:
        if key in _hashed:
            return _hashed[key]
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, st.st_size, path.name)
            if cancelled is not None and cancelled():
                raise Cancelled()
    digest = h.hexdigest()
    with _hashed_lock:
        _hashed[key] = digest
    return digest


# ----------------------------------------------------------------------------- status
@dataclass(frozen=True)
class EntryStatus:
    entry: WeightsEntry
    path: Path
    status: str
    size: int | None = None  # bytes on disk, when present
    sha256: str | None = None  # computed, when hashed
    detail: str = ""  # why it is wrong, or what was checked

    @property
    def present(self) -> bool:
        return self.status != MISSING

    @property
    def wrong(self) -> bool:
        return self.status in WRONG

    def as_dict(self) -> dict[str, Any]:
        return {**self.entry.as_dict(), "path": str(self.path), "status": self.status, "present": self.present,
                "size_on_disk": self.size, "sha256_on_disk": self.sha256, "detail": self.detail}


def check(entry: WeightsEntry, deep: bool = True, progress: Progress | None = None,
          cancelled: CancelCheck | None = None) -> EntryStatus:
    """What is at the entry's place. `deep`: compute the sha256 (and, for a file with no known
    hash, read its keys weights-only); else size only ("present"). Never raises for a bad file."""
    return check_file(entry, entry.path, deep, progress, cancelled)


def check_file(entry: WeightsEntry, path: Path, deep: bool = True, progress: Progress | None = None,
               cancelled: CancelCheck | None = None) -> EntryStatus:
    try:
        if not path.exists():
            return EntryStatus(entry, path, MISSING)
        if not path.is_file():
            return EntryStatus(entry, path, NO_ACCESS, detail="not a regular file")
        size = path.stat().st_size
    except OSError as e:
        return EntryStatus(entry, path, NO_ACCESS, detail=e.strerror or str(e))
    problem = entry.size_problem(size)
    if problem:
        return EntryStatus(entry, path, SIZE_MISMATCH, size, detail=problem)
    if not deep:
        return EntryStatus(entry, path, PRESENT, size)
    try:
        digest = file_sha256(path, progress, cancelled)
    except OSError as e:
        return EntryStatus(entry, path, NO_ACCESS, size, detail=e.strerror or str(e))
    status = entry.hash_status(digest)
    if status == HASH_MISMATCH:
        return EntryStatus(entry, path, status, size, digest, entry.hash_problem(digest) or "")
    if status == UNVERIFIED:
        problem = keys_problem(entry, path)
        if problem:
            return EntryStatus(entry, path, CORRUPT, size, digest, problem)
        return EntryStatus(entry, path, status, size, digest, "no official hash known; reads as the expected "
                                                              "kind of state dict")
    return EntryStatus(entry, path, status, size, digest,
                       "sha256 checked" if status == HASH_OK else
                       f"sha256 prefix {entry.hash_prefix} checked (the full hash is not known)")


def status_list(deep: bool = True, progress: Progress | None = None,
                cancelled: CancelCheck | None = None) -> list[EntryStatus]:
    """Every entry with its status; `progress(i, n, file)` per file."""
    es = entries()
    out = []
    for i, e in enumerate(es):
        if progress is not None:
            progress(i, len(es), e.file)
        if cancelled is not None and cancelled():
            raise Cancelled()
        out.append(check(e, deep, cancelled=cancelled))
    if progress is not None:
        progress(len(es), len(es), "")
    return out


_CACHE: dict[tuple[str, int, int, str], str | None] = {}  # keys_problem per (path, size, mtime, entry)


def keys_problem(entry: WeightsEntry, path: Path) -> str | None:
    """For a file whose hash is not known: why it cannot be this entry's weights, from reading it
    with `torch.load(weights_only=True)` (code in a pickle is refused, never run), or None."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, entry.name)
    if key in _CACHE:
        return _CACHE[key]
    from segstudio.inference.family import resolve
    from segstudio.inference.runtime.checkpoint import CheckpointError
    problem: str | None = None
    try:
        with warnings.catch_warnings():  # torch's notes about pickle protocols: the verdict is what counts
            warnings.simplefilter("ignore", UserWarning)
            if entry.reads is not None:  # the family that loads the file says what it must hold
                problem = resolve(entry.reads)(path, entry.models, entry.title, entry.file)
            else:
                import torch
                torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError as e:
        problem = str(e)
    except Exception as e:  # whatever a hostile file makes torch raise: reported, never a crash  # noqa: BLE001
        problem = f"{path} cannot be read as weights ({type(e).__name__}: {str(e)[:120]})"
    _CACHE[key] = problem
    return problem


# ----------------------------------------------------------------------------- putting files in place
@dataclass(frozen=True)
class PlaceResult:
    entry: WeightsEntry
    path: Path
    action: str  # "downloaded", "copied", "already present"
    status: str  # the placed file's: HASH_OK, PREFIX_OK, UNVERIFIED
    sha256: str | None
    replaced: str = ""  # what the file it replaced was found to be ("" when none was replaced)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.entry.name, "path": str(self.path), "action": self.action, "status": self.status,
                "sha256": self.sha256, "replaced": self.replaced or None, "message": self.message}


PARTIAL = ".segstudio-partial"  # the suffix of this module's temporary files
STALE_PARTIAL_S = 6 * 3600  # a temporary file this old was left by a crash, not by a download in progress


def _temp_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}{PARTIAL}"


def _remove_stale_partials(dest: Path) -> None:
    """Temporary files of earlier downloads of this file that a crash or a power cut left behind."""
    import time
    try:
        old = [p for p in dest.parent.glob(f".{dest.name}.*{PARTIAL}")
               if time.time() - p.stat().st_mtime > STALE_PARTIAL_S]
    except OSError:
        return
    for p in old:
        _remove(p)


def _verify_temp(entry: WeightsEntry, tmp: Path, size: int, digest: str, what: str) -> str:
    """The status a transferred file earns, or WeightsFileError (nothing is placed)."""
    problem = entry.size_problem(size) or entry.hash_problem(digest)
    if problem:
        raise WeightsFileError(f"{what} is not the expected {entry.file}: {problem}; nothing was written to "
                               f"{entry.path}")
    status = entry.hash_status(digest)
    if status == UNVERIFIED:
        problem = keys_problem(entry, tmp)
        if problem:
            raise WeightsFileError(f"{what} is not usable as {entry.file}: {problem}; nothing was written to "
                                   f"{entry.path}")
    return status


def _place(tmp: Path, dest: Path, replace: bool) -> None:
    """Rename the verified temporary file to its final name: atomically, and without overwriting a
    file that appeared meanwhile unless `replace` (the file there was verified wrong)."""
    try:
        _rename(tmp, dest, replace)
    except OSError as e:
        raise WeightsFileError(f"cannot put {dest.name} into {dest.parent}: {_reason(e)}; "
                               + ("the file there was left as it was" if dest.exists() else "nothing was written")) \
            from None


def _rename(tmp: Path, dest: Path, replace: bool) -> None:
    # tmp's bytes were flushed to disk when it was written (_copy_hashing)
    if replace:
        os.replace(tmp, dest)
    else:
        try:
            os.link(tmp, dest)  # fails if dest exists: no clobbering a file someone else just wrote
        except FileExistsError:
            raise WeightsFileError(f"{dest} appeared while the file was being written (another download?); "
                                   "it was left as it is: run the check again") from None
        except OSError:  # a file system without hard links
            if dest.exists():
                raise WeightsFileError(f"{dest} appeared while the file was being written; it was left as it is") \
                    from None
            os.replace(tmp, dest)
        else:
            tmp.unlink()
    try:  # the rename itself survives a power cut once the folder is flushed
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # Windows cannot open a folder; nothing to flush there
        pass


def _copy_hashing(src: BinaryIO, tmp: Path, total: int, progress: Progress | None, cancelled: CancelCheck | None,
                  label: str) -> tuple[int, str]:
    h = hashlib.sha256()
    done = 0
    with open(tmp, "xb") as out:
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled()
            chunk = src.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total, label)
        out.flush()
        os.fsync(out.fileno())
    return done, h.hexdigest()


def open_url(url: str) -> tuple[BinaryIO, int]:
    """A stream of the file at `url` and its length in bytes (0: not known). Tests replace this."""
    from urllib.request import Request, urlopen
    r = urlopen(Request(url, headers={"User-Agent": "segstudio"}), timeout=DOWNLOAD_TIMEOUT_S)
    length = r.headers.get("Content-Length")
    return r, int(length) if length and length.isdigit() else 0


def _replace_note(before: EntryStatus) -> str:
    return f"replaced {before.path}, which was {before.status}" + (f" ({before.detail})" if before.detail else "")


def get(name: str, progress: Progress | None = None, cancelled: CancelCheck | None = None) -> PlaceResult:
    """Download an entry into the cache, verified; see the module's docstring for the guarantees.
    A file already there and not verified wrong is left alone ("already present")."""
    entry = find(name)
    dest = entry.path
    before = check(entry, cancelled=cancelled)
    if before.status == NO_ACCESS:
        raise WeightsFileError(f"cannot check {dest}: {before.detail}")
    if before.present and not before.wrong:
        return PlaceResult(entry, dest, "already present", before.status, before.sha256,
                           message=f"{dest} is already there ({before.status}); nothing downloaded")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsFileError(f"cannot create {dest.parent}: {e.strerror or e}") from None
    _remove_stale_partials(dest)
    tmp = _temp_path(dest)
    try:
        try:
            stream, length = open_url(entry.url)
        except Exception as e:  # no network, a proxy, an HTTP error: one line  # noqa: BLE001
            raise WeightsFileError(f"cannot download {entry.file} from {entry.url}: {_reason(e)}. Offline: get the "
                                   f"file on another machine and run `segstudio weights add FILE`") from None
        total = length or entry.size or int((entry.approx_mib or 0) * MIB)
        try:
            with stream:
                size, digest = _copy_hashing(stream, tmp, total, progress, cancelled, entry.file)
        except (Cancelled, WeightsFileError):
            raise
        except OSError as e:
            raise WeightsFileError(f"downloading {entry.file} failed: {_reason(e)}; nothing was written to "
                                   f"{dest}") from None
        if length and size != length:
            raise WeightsFileError(f"the download of {entry.file} stopped after {size} of {length} bytes; nothing "
                                   f"was written to {dest}")
        status = _verify_temp(entry, tmp, size, digest, f"the file downloaded from {entry.url}")
        _place(tmp, dest, replace=before.wrong)
    finally:
        _remove(tmp)
    note = _replace_note(before) if before.wrong else ""
    if status == UNVERIFIED:
        log.warning("downloaded %s (%d bytes, sha256 %s); no official hash is known to check it against",
                    dest, size, digest)
    return PlaceResult(entry, dest, "downloaded", status, digest, before.status if before.wrong else "",
                       f"downloaded {dest} ({mib_text(size)}, {status})" + (f"; {note}" if note else ""))


def identify(path: Path, digest: str, shown: str | None = None) -> WeightsEntry:
    """Which entry a file is: by file name (`shown`, else the path's), else by sha256 (full, or
    the prefix in a torchvision file name), else (for entries with no known hash) by its keys,
    read from `path` weights-only. WeightsFileError when none fits."""
    es = entries()
    shown = shown or path.name
    by_name = next((e for e in es if e.file == shown), None)
    if by_name is not None:
        return by_name
    by_hash = [e for e in es if e.sha256 == digest or (not e.sha256 and e.hash_prefix
                                                      and digest.startswith(e.hash_prefix))]
    if len(by_hash) == 1:
        return by_hash[0]
    for e in es:
        if e.sha256 is None and e.hash_prefix is None and keys_problem(e, path) is None:
            return e
    raise WeightsFileError(f"{shown} is none of the weights files segstudio knows: no known file is named so "
                           f"and its sha256 ({digest[:16]}…) matches none of the known ones (`segstudio weights` "
                           f"lists them; to use this file as it is, choose it with --weights FILE or the Model "
                           f"panel's …); nothing was copied")


def add(file: str | os.PathLike, name: str | None = None, progress: Progress | None = None,
        cancelled: CancelCheck | None = None) -> PlaceResult:
    """Copy a weights file brought from elsewhere (a USB stick) into the cache under its official
    name, after identifying and verifying it. The source is only read."""
    src = Path(file).expanduser()
    try:
        st = src.stat()
    except OSError as e:
        raise WeightsFileError(f"cannot read {src}: {e.strerror or e}") from None
    if not src.is_file():
        raise WeightsFileError(f"{src} is not a file")
    problem = archive_problem(src)  # before a byte is copied: a compressed bomb is refused from its sizes
    if problem:
        raise WeightsFileError(f"{src} cannot be a weights file: {problem}; nothing was copied")
    target = find(name) if name is not None else next((e for e in entries() if e.file == src.name), None)
    if target is not None:
        problem = target.size_problem(st.st_size)
        if problem:
            raise WeightsFileError(f"{src} is not the expected {target.file}: {problem}; nothing was copied")
        try:
            if target.path.exists() and os.path.samefile(src, target.path):
                now = check(target, cancelled=cancelled)
                return PlaceResult(target, target.path, "already present", now.status, now.sha256,
                                   message=f"{src} is the file in the cache already ({now.status}"
                                           + (f": {now.detail}" if now.wrong else "") + ")")
        except OSError:
            pass
    folder = checkpoints_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsFileError(f"cannot create {folder}: {e.strerror or e}") from None
    tmp = folder / f".add.{uuid.uuid4().hex[:12]}{PARTIAL}"
    try:
        try:
            with open(src, "rb") as f:
                size, digest = _copy_hashing(f, tmp, st.st_size, progress, cancelled, src.name)
        except OSError as e:
            raise WeightsFileError(f"cannot copy {src}: {_reason(e)}; nothing was copied") from None
        entry = target if target is not None else identify(tmp, digest, src.name)
        status = _verify_temp(entry, tmp, size, digest, str(src))
        dest = entry.path
        before = check(entry, cancelled=cancelled)
        if before.sha256 == digest:
            return PlaceResult(entry, dest, "already present", before.status, digest,
                               message=f"{dest} is already this file ({before.status}); nothing copied")
        if before.status == NO_ACCESS:
            raise WeightsFileError(f"cannot check {dest}: {before.detail}; nothing was copied")
        if before.present and not before.wrong:
            raise WeightsFileError(f"{dest} already holds another {entry.file} ({before.status}); it was left as it "
                                   f"is. Delete it first to put {src} in its place")
        _place(tmp, dest, replace=before.wrong)
    finally:
        _remove(tmp)
    how = "" if src.name == entry.file or name else f", identified as {entry.name} by its sha256"
    note = f"; {_replace_note(before)}" if before.wrong else ""
    return PlaceResult(entry, dest, "copied", status, digest, before.status if before.wrong else "",
                       f"copied {src} to {dest} ({mib_text(size)}, {status}{how}){note}")


def _remove(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove the temporary file %s: %s", p, e)


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    text = str(reason if reason is not None else e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]
