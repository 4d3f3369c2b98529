"""A project: a folder of images, its store and its data folder (`data_dir`: caches, model
versions). Opening scans the folder without decoding."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Callable

import numpy as np

from segstudio.core import imageio, sequences
from segstudio.core.errors import UserError
from segstudio.core.imageio import ImageDecodeError, NotEnoughMemory
from segstudio.core.memory import MemoryBudget
from segstudio.core.records import NEW, ImageRecord
from segstudio.core.store.api import ContainerInfo, Store
from segstudio.core.store.api import StoreError
from segstudio.core.store.open import open_store
from segstudio.core.store.sqlite import DB_NAME

log = logging.getLogger(__name__)

# Every export folder gets this marker, so a dataset written inside the image folder is
# never registered as more images on the next scan. Its first line starts with the head; a file
# of that name that does not (a stray or foreign file) hides nothing.
EXPORT_MARKER = ".segstudio-export"
MARKER_HEAD = "written by segstudio"
STORE_DIR = ".segstudio"  # FOLDER/.segstudio: the data folder when --project is not given

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # never a link, never wait on a FIFO


class ProjectError(UserError):
    """The folder or project cannot be opened; the message says why."""


def is_export_marker(path: str | os.PathLike) -> bool:
    """True when `path` is a regular file (not a link) whose first line starts with the marker
    head. Reads a few bytes; a FIFO or device of that name is not opened for reading."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(MARKER_HEAD)) == MARKER_HEAD.encode()
    except OSError:
        return False
    finally:
        os.close(fd)


def scan_folder(root: Path, skipped: list[str] | None = None) -> list[str]:
    """Image files under root as relative '/' paths. Reads directory entries only (no stat, no
    decoding: 100,000 files list in well under a second). Subfolders that are segstudio exports
    (their marker reads as one) are not listed; their '/' paths go to `skipped`.

    Only regular files are listed: a FIFO, device or socket with an image's name never is (the
    entry's type comes with the listing; only a link costs a stat). A link is judged by what it
    points to, and links are followed wherever they point: a folder assembled from links to a
    dataset elsewhere is an ordinary layout, the app only reads through them, and every read
    checks again that what it opened is a regular file (imageio.open_regular). Writes never go
    through the image folder's links (exports write only under their own folder)."""
    found: list[str] = []
    stack = [(str(root), "")]
    is_image = imageio.is_image_name
    seen_links: set[str] = set()
    while stack:
        d, prefix = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            log.warning("cannot list %s: %s", d, exc)
            continue
        if prefix and any(e.name == EXPORT_MARKER for e in entries):
            if is_export_marker(os.path.join(d, EXPORT_MARKER)):
                if skipped is not None:
                    skipped.append(prefix.rstrip("/"))
                continue
            log.warning("%s is not a segstudio export marker; the folder's images are listed",
                        os.path.join(d, EXPORT_MARKER))
        for e in entries:
            name = e.name
            if name[0] == ".":
                continue
            try:
                if e.is_dir():
                    if e.is_symlink():  # a linked folder is followed once (no loops)
                        real = os.path.realpath(e.path)
                        if real in seen_links or str(root.resolve()).startswith(real):
                            continue
                        seen_links.add(real)
                    stack.append((e.path, prefix + name + "/"))
                elif is_image(name) or sequences.is_video_name(name):
                    if e.is_file():  # regular files only (a link: what it points to)
                        found.append(prefix + name)
                    else:
                        log.warning("%s is not a regular file (a FIFO, device, socket or broken link); "
                                    "not listed", e.path)
            except OSError:
                continue
    return found


def project_location(folder: str | Path, project_path: str | Path | None = None) -> tuple[Path, Path]:
    """(data folder, database file) of a project: FOLDER/.segstudio and its project.db; with
    `--project PATH` a folder PATH and PATH/project.db, or a file PATH and the folder it is in."""
    if not project_path:
        data_dir = Path(folder) / STORE_DIR
        return data_dir, data_dir / DB_NAME
    db = Path(project_path).expanduser()
    if db.is_dir():
        return db, db / DB_NAME
    return db.parent, db


def client_data_dir(location: str) -> Path:
    """This machine's data folder for a shared project: under XDG_DATA_HOME (~/.local/share),
    named by a digest of the store's location."""
    import hashlib
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "segstudio" / "projects" / hashlib.sha256(location.encode()).hexdigest()[:16]


class Project:
    """`folder`: the images (never written); `store`: what the project knows about them;
    `data_dir`: the folder of the project's own files (caches, model versions, run folders),
    which every module writes under instead of guessing from where the store keeps its database."""

    def __init__(self, folder: str | Path, store: Store, data_dir: str | Path):
        self.folder = Path(folder)
        self.store = store
        self.data_dir = Path(data_dir)
        self.allow_large = bool(store.get_setting("allow_large_images", False))
        self.skipped_folders: list[str] = []  # export folders the last scan did not list
        # sequence key -> (the image count it was worked out at, its frames' ids in frame order):
        # the window asks on every image it opens; a folder of 100k images is listed once per scan
        self._frames_cache: dict[str, tuple[int, list[int]]] = {}

    @classmethod
    def open(cls, folder: str | Path, project_path: str | Path | None = None, scan: bool = True,
             store: str | None = None) -> "Project":
        """Open the images in `folder` with their project: `store` names a PostgreSQL project (a URL or
        conninfo); else the SQLite file `project_path`; else SEGSTUDIO_STORE, FOLDER/store.toml, and
        last the SQLite file in FOLDER/.segstudio. The data folder (caches, model versions) is this
        machine's either way."""
        folder = Path(folder).expanduser()
        if not folder.exists():
            raise ProjectError(f"folder not found: {folder}")
        if not folder.is_dir():
            raise ProjectError(f"not a folder: {folder}")
        data_dir, db = project_location(folder, project_path)
        try:  # an explicit --project file wins over SEGSTUDIO_STORE and a store.toml; --store over both
            opened = open_store(store, folder, db, defaults=not project_path)
        except OSError as e:
            raise ProjectError(f"cannot create the project store at {db}: {e.strerror or e} "
                               "(read-only folder? use --project PATH)") from None
        if opened.kind == "sqlite":  # a shared store's root is each client's own mapping, not the project's
            moved = opened.get_setting("copied_to")
            if isinstance(moved, dict) and isinstance(moved.get("location"), str):
                log.warning("this project (%s) was copied to %s: work saved here does not reach that copy; "
                            "open the folder with --store to work on it", opened.location, moved["location"][:200])
            stored_root = opened.get_setting("root")
            if stored_root != str(folder.resolve()):
                opened.set_setting("root", str(folder.resolve()))
        else:
            if not project_path:  # the image folder is everyone's (a share): caches stay on this machine
                data_dir = client_data_dir(opened.location)
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                opened.close()
                raise StoreError(f"cannot create this client's data folder {data_dir}: {e.strerror or e} "
                                 "(use --project PATH)") from None
        p = cls(folder, opened, data_dir)
        if scan:
            p.scan()
        return p

    def scan(self) -> tuple[int, int, int]:
        """Register new files, mark vanished ones missing. Returns (added, missing, restored)."""
        skipped: list[str] = []
        found = scan_folder(self.folder, skipped)
        self.skipped_folders = sorted(skipped)
        found, failed, probed = self._expand_sequences(found)
        if self.store.exclusive_claims:
            self._check_mount(found)
        # a team's client sees the shared folder through its own mount: it adds files, never hides any
        counts = self.store.sync_files(found, mark_missing=not self.store.exclusive_claims)
        self._frames_cache.clear()
        for path, error in failed.items():
            rec = self.store.image_by_path(path)
            if rec is not None and rec.error != error:
                self.store.set_error(rec.id, error)
        for info in probed:
            if info.frames >= 1 and info.kind != "image":
                self.store.set_frame_sizes(info.path, info.width, info.height)
                self._carry_over(info.path)
        return counts

    def _check_mount(self, found: list[str], sample: int = 200) -> None:
        """A team's project that has images, opened on a folder that holds none of them, is the wrong
        folder (another project, a mount of the wrong share, a subfolder): its files would join the
        team's project for everyone. Refused before anything is added."""
        if not found:
            return
        known = self.store.image_count(include_missing=True)
        if not known:
            return
        step = max(1, len(found) // sample)
        if any(self.store.image_by_path(p) is not None for p in found[::step][:sample]):
            return
        raise ProjectError(f"{self.folder} holds none of the {known} images of the team's project "
                           f"{self.store.location} (it holds {len(found)} others): is it your mount of the "
                           "project's folder? Nothing was added")

    def _carry_over(self, rel: str) -> None:
        """A file that was one image (a TIFF before stacks opened as frames, or one that gained
        pages) and now opens as frames: what was annotated on it is its first page, frame 0."""
        old = self.store.image_by_path(rel)
        first = self.store.image_by_path(sequences.frame_path(rel, 0))
        if old is None or first is None or (old.status == NEW and not self.store.region_count(old.id)):
            return
        if self.store.move_annotations(old.id, first.id):
            log.info("%s opens as frames now: its annotations moved to its frame 0", rel)

    def _expand_sequences(self, found: list[str]) -> tuple[list[str], dict[str, str], list[ContainerInfo]]:
        """Each stack or video file among `found` becomes its frames' paths (core/sequences). A file
        is probed (headers only) when it is new, when its size or mtime changed, or while its last
        probe failed; what the probes found is stored in one transaction. A file whose probe fails
        stays one record carrying the error, unless it had frames before: those stay (each frame's
        decode then says what is wrong). Too little memory says nothing about the file: nothing of
        it is stored."""
        out: list[str] = []
        failed: dict[str, str] = {}
        probed: list[ContainerInfo] = []
        for rel in found:
            if not sequences.may_be_container(rel):
                out.append(rel)
                continue
            try:
                st = os.stat(self.abspath(rel))
            except OSError:
                out.append(rel)
                continue
            known = self.store.container_info(rel)
            info = known
            if known is None or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns) or known.error:
                from segstudio.core import frame_sources  # the decoders: only when a folder holds such files
                frame_sources.forget(self.abspath(rel))
                kind = "video" if sequences.is_video_name(rel) else "image"
                try:
                    seq = frame_sources.probe(self.abspath(rel))
                    info = ContainerInfo(rel, st.st_size, st.st_mtime_ns, 1, "image") if seq is None else \
                        ContainerInfo(rel, st.st_size, st.st_mtime_ns, seq.frames, seq.kind, seq.width, seq.height)
                except NotEnoughMemory:
                    info = known if known is not None and known.frames >= 1 else None
                except ImageDecodeError as e:
                    if known is not None and known.frames >= 1 and known.error is None and known.kind != "image":
                        info = known  # it had frames: they stay, and so does what was probed (probed again next scan)
                    else:
                        info = ContainerInfo(rel, st.st_size, st.st_mtime_ns, 0, kind, error=str(e))
                        probed.append(info)
                else:
                    probed.append(info)
            if info is None or info.kind == "image":  # a single-image TIFF (or not known: its decode says why)
                out.append(rel)
            elif info.error is not None or info.frames < 1:
                out.append(rel)
                failed[rel] = info.error or "no frames"
            else:
                # the count is read back from the store or a header: bounded by the file's size
                # (every frame takes bytes), so no number makes the scan register more than it holds
                frames = min(info.frames, sequences.MAX_FRAMES, max(1, st.st_size // sequences.MIN_FRAME_BYTES))
                out.extend(sequences.frame_path(rel, i) for i in range(frames))
        self.store.set_container_infos(probed)
        return out, failed, probed

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def abspath(self, rec: ImageRecord | str) -> Path:
        rel = rec.path if isinstance(rec, ImageRecord) else rec
        return self.folder.joinpath(*rel.split("/"))

    def frame_of(self, rec: ImageRecord | str) -> tuple[Path, int] | None:
        """(the stack or video file, frame number) when the record is a frame of one."""
        split = sequences.split_frame_path(rec.path if isinstance(rec, ImageRecord) else rec)
        return None if split is None else (self.abspath(split[0]), split[1])

    def decode(self, rec: ImageRecord, budget: MemoryBudget | None = None) -> tuple[np.ndarray, Callable[[], str]]:
        """(pixels, a function giving their content hash) of an image file or of a frame;
        ImageDecodeError when it fails. A file is decoded within `budget` (default: the shared
        one), its hash that of its bytes; a frame by the frame decoders, whose cache is bounded on
        its own, its hash that of its pixels (9 ms at 1080p: worked out only when asked for)."""
        frame = self.frame_of(rec)
        if frame is None and sequences.is_video_name(rec.path):
            # a video that did not open as frames: what its probe said, not "not an image"
            known = self.store.container_info(rec.path)
            raise ImageDecodeError(known.error if known is not None and known.error else
                                   "this video could not be opened (scan again once the file is complete)")
        if frame is None:
            arr, data = imageio.load(self.abspath(rec), allow_large=self.allow_large, budget=budget)
            return arr, lambda: imageio.content_hash(data)
        from segstudio.core import frame_sources
        pixels = frame_sources.read_frame(frame[0], frame[1], allow_large=self.allow_large)
        return pixels, lambda: imageio.content_hash(np.ascontiguousarray(pixels).tobytes())

    def load_image(self, rec: ImageRecord, record: bool = True) -> np.ndarray:
        """Decode an image or a frame; its size and hash go to the store, or its error when it fails."""
        try:
            arr, digest = self.decode(rec)
        except ImageDecodeError as e:
            # too little memory is this machine's state, not the file's: never stored on it
            if record and rec.error != str(e) and not imageio.is_transient(e):
                self.store.set_error(rec.id, str(e))
            raise
        h, w = arr.shape[:2]
        if record and (rec.width != w or rec.height != h or rec.error is not None or rec.hash is None):
            self.store.set_decoded(rec.id, w, h, digest())
        return arr

    def image_size(self, rec: ImageRecord) -> tuple[int, int]:
        """(width, height), from the store, the probe of a frame's file (kept in the store), or the
        image file's header (stored for next time)."""
        if rec.width and rec.height:
            return rec.width, rec.height
        split = sequences.split_frame_path(rec.path)
        if split is not None:
            known = self.store.container_info(split[0])
            if known is None or known.width <= 0 or known.height <= 0:
                from segstudio.core import frame_sources
                seq = frame_sources.probe(self.abspath(split[0]))
                if seq is None:
                    raise ImageDecodeError("this file holds a single image now, not frames (scan again)")
                w, h = seq.width, seq.height
            else:
                w, h = known.width, known.height
        else:
            info = imageio.read_image_info(self.abspath(rec))
            w, h = info.width, info.height
        self.store.set_decoded(rec.id, w, h, None)
        return w, h

    def sequence_key(self, rec: ImageRecord | str) -> str | None:
        """The sequence an image belongs to (core/sequences.sequence_key), None when it is in none:
        a container's frame always is; a numbered file when its folder holds another numbered one."""
        path = rec.path if isinstance(rec, ImageRecord) else rec
        key = sequences.sequence_key(path)
        if key is None or sequences.split_frame_path(path) is not None:
            return key
        rec_id = rec.id if isinstance(rec, ImageRecord) else getattr(self.store.image_by_path(path), "id", None)
        return key if rec_id in self.sequence_ids(key) else None

    def sequence_ids(self, key: str) -> list[int]:
        """The ids of a sequence's frames in frame order (see sequence_frames). Worked out once per
        scan and image count (a 100k-image numbered folder takes about a second the first time),
        then answered from memory: the window asks on every image it opens."""
        count = self.store.image_count()
        cached = self._frames_cache.get(key)
        if cached is None or cached[0] != count:
            cached = (count, [r.id for r in self._find_frames(key)])
            self._frames_cache[key] = cached
        return list(cached[1])

    def sequence_frames(self, key: str) -> list[ImageRecord]:
        """The frames of a sequence in frame order: a stack or video file's frames (key: its path),
        or a numbered folder's image files in numeric order (key: the folder, '' for the top)."""
        ids = self.sequence_ids(key)
        recs = self.store.images_by_ids(ids)
        return [recs[i] for i in ids if i in recs]

    def _find_frames(self, key: str) -> list[ImageRecord]:
        if sequences.may_be_container(key):
            recs = [r for r in self.store.images(name_contains=key + "/")
                    if (sequences.split_frame_path(r.path) or ("",))[0] == key]
            if recs:  # by frame number: the path order is it only up to 999,999 (6 digits)
                return sorted(recs, key=lambda r: (sequences.split_frame_path(r.path) or ("", 0))[1])
        recs = self.store.images(name_contains=key + "/" if key else None)
        mine = [r for r in recs if r.path.rpartition("/")[0] == key and sequences.split_frame_path(r.path) is None
                and sequences.sequence_key(r.path) == key]
        by_path = {r.path: r for r in mine}
        return [by_path[p] for p in sequences.numbered_run(list(by_path))]

    def close(self) -> None:
        self.store.close()
