"""A project: a folder of images, its store and its data folder (`data_dir`: caches, model
versions). Opening scans the folder without decoding."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np

from segstudio.core import imageio, sequences
from segstudio.core.errors import UserError
from segstudio.core.imageio import ImageDecodeError
from segstudio.core.memory import MemoryBudget
from segstudio.core.records import ImageRecord
from segstudio.core.store.api import Store
from segstudio.core.store.sqlite import DB_NAME, SqliteStore

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
    def open(cls, folder: str | Path, project_path: str | Path | None = None, scan: bool = True) -> "Project":
        folder = Path(folder).expanduser()
        if not folder.exists():
            raise ProjectError(f"folder not found: {folder}")
        if not folder.is_dir():
            raise ProjectError(f"not a folder: {folder}")
        data_dir, db = project_location(folder, project_path)
        try:
            store = SqliteStore(db, folder)
        except OSError as e:
            raise ProjectError(f"cannot create the project store at {db}: {e.strerror or e} "
                               "(read-only folder? use --project PATH)") from None
        stored_root = store.get_setting("root")
        if stored_root != str(folder.resolve()):
            store.set_setting("root", str(folder.resolve()))
        p = cls(folder, store, data_dir)
        if scan:
            p.scan()
        return p

    def scan(self) -> tuple[int, int, int]:
        """Register new files, mark vanished ones missing. Returns (added, missing, restored)."""
        skipped: list[str] = []
        found = scan_folder(self.folder, skipped)
        self.skipped_folders = sorted(skipped)
        found, failed = self._expand_sequences(found)
        counts = self.store.sync_files(found)
        self._frames_cache.clear()
        for path, error in failed.items():
            rec = self.store.image_by_path(path)
            if rec is not None and rec.error != error:
                self.store.set_error(rec.id, error)
        return counts

    def _expand_sequences(self, found: list[str]) -> tuple[list[str], dict[str, str]]:
        """Each stack or video file among `found` becomes its frames' paths (core/sequences). A file
        is probed (headers only) when it is new or its size or mtime changed; the store keeps what
        the probe found. A video that cannot be read stays one record carrying the probe's error."""
        out: list[str] = []
        failed: dict[str, str] = {}
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
            if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
                frames, kind, error = known[2], known[3], known[4]
            else:
                from segstudio.core import frame_sources  # the decoders: only when a folder holds such files
                frame_sources.forget(self.abspath(rel))
                try:
                    info = frame_sources.probe(self.abspath(rel))
                    frames, kind, error = (1, "image", None) if info is None else (info.frames, info.kind, None)
                except ImageDecodeError as e:
                    frames, kind, error = 0, "video" if sequences.is_video_name(rel) else "image", str(e)
                self.store.set_container_info(rel, st.st_size, st.st_mtime_ns, frames, kind, error)
            if kind == "image":  # a single-image TIFF (or one that fails: its decode says why)
                out.append(rel)
            elif error is not None or frames < 1:
                out.append(rel)
                failed[rel] = error or "no frames"
            else:
                # the count is read back from the store or a header: bounded by the file's size
                # (every frame takes bytes), so no number makes the scan register more than it holds
                frames = min(frames, sequences.MAX_FRAMES, max(1, st.st_size // sequences.MIN_FRAME_BYTES))
                out.extend(sequences.frame_path(rel, i) for i in range(frames))
        return out, failed

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

    def decode(self, rec: ImageRecord, budget: MemoryBudget | None = None) -> tuple[np.ndarray, str]:
        """(pixels, content hash) of an image file or of a frame; ImageDecodeError when it fails.
        A file is decoded within `budget` (default: the shared one); a frame by the frame decoders,
        whose cache is bounded on its own; a frame's hash is that of its pixels."""
        frame = self.frame_of(rec)
        if frame is None:
            arr, data = imageio.load(self.abspath(rec), allow_large=self.allow_large, budget=budget)
            return arr, imageio.content_hash(data)
        from segstudio.core import frame_sources
        arr = frame_sources.read_frame(frame[0], frame[1], allow_large=self.allow_large)
        return arr, imageio.content_hash(np.ascontiguousarray(arr).tobytes())

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
            self.store.set_decoded(rec.id, w, h, digest)
        return arr

    def image_size(self, rec: ImageRecord) -> tuple[int, int]:
        """(width, height), from the store or the file header (stored for next time)."""
        if rec.width and rec.height:
            return rec.width, rec.height
        frame = self.frame_of(rec)
        if frame is not None:
            from segstudio.core import frame_sources
            seq = frame_sources.probe(frame[0])
            if seq is None:
                raise ImageDecodeError("this file holds a single image now, not frames (scan again)")
            w, h = seq.width, seq.height
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
        return key if len(self.sequence_ids(key)) >= 2 else None

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
            if recs:
                return recs  # the store's path order is the frame order (zero-padded numbers)
        recs = self.store.images(name_contains=key + "/" if key else None)
        mine = [r for r in recs if r.path.rpartition("/")[0] == key and sequences.split_frame_path(r.path) is None
                and sequences.sequence_key(r.path) == key]
        by_path = {r.path: r for r in mine}
        return [by_path[p] for p in sequences.order_frames(by_path)]

    def close(self) -> None:
        self.store.close()
