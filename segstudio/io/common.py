"""What every importer and exporter shares: atomic output, image matching, class mapping,
progress and cancel, reports."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Sequence

import numpy as np

from segstudio.core import imageio, maskops, review_filter, rle, sequences
from segstudio.core.classes import LabelClass
from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS, ImageRecord
from segstudio.core.region import IMPORTED, Region
from segstudio.io.export_target import ExportTargetError, atomic_dir, atomic_file  # noqa: F401 (re-exported)

Progress = Callable[[int, int, str], None]  # (done, total, current item)
CancelCheck = Callable[[], bool]
MAX_MESSAGES = 1000  # errors and notes kept in a report; a hostile file can make millions


def counted(n: int, noun: str) -> str:
    """'1 image', '2 images': a count and its noun, singular for one (nouns that add an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Cancelled(Exception):
    """The user cancelled; nothing was written (exports) or what was committed stays (imports)."""


class FormatError(UserError):
    """The source cannot be read as the format asked for; the message says why."""


class ClassClash(FormatError):
    """A source class and the project's class of the same name differ in being an ignore class:
    taking one for the other would turn a class's pixels into ignore, or ignore into a class."""


@dataclass
class Report:
    """What an import or export did, for the CLI's summary and the GUI's dialog."""
    images: int = 0
    regions: int = 0
    skipped_duplicates: int = 0
    unmatched: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    notes: list[str] = field(default_factory=list)
    out: str | None = None
    # export: images left out because they cannot be read (path, why); images whose file is
    # gone (path, annotations kept in the project but not exported)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    missing: list[tuple[str, int]] = field(default_factory=list)
    # import: source annotations that failed validation, and the images that had them (never
    # marked done by the import); errors and notes past MAX_MESSAGES, counted only
    rejected: int = 0
    incomplete: list[str] = field(default_factory=list)
    dropped_messages: int = 0
    # import: what a person should check (how a source was read), and the pixels that became
    # ignore (training skips them, exports leave them out): never silent
    warnings: list[str] = field(default_factory=list)
    ignore_pixels: int = 0

    def error(self, item: str, message: str) -> None:
        if len(self.errors) < MAX_MESSAGES:
            self.errors.append((item, message))
        else:
            self.dropped_messages += 1

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_MESSAGES:
            self.warnings.append(message)
        else:
            self.dropped_messages += 1

    def note(self, message: str) -> None:
        if len(self.notes) < MAX_MESSAGES:
            self.notes.append(message)
        else:
            self.dropped_messages += 1

    def summary(self) -> str:
        parts = [counted(self.images, "image"), counted(self.regions, "region")]
        if self.skipped_duplicates:
            parts.append(f"{counted(self.skipped_duplicates, 'duplicate region')} skipped")
        if self.ignore_pixels:
            parts.append(f"{self.ignore_pixels:,} pixel{'' if self.ignore_pixels == 1 else 's'} imported as ignore")
        if self.warnings:
            parts.append(counted(len(self.warnings), "warning"))
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} unmatched")
        if self.errors:
            parts.append(counted(len(self.errors), "error"))
        if self.rejected:
            parts.append(f"{counted(self.rejected, 'annotation')} rejected "
                         f"({counted(len(self.incomplete), 'image')} not marked done)")
        if self.dropped_messages:
            parts.append(f"{counted(self.dropped_messages, 'more message')} not listed")
        if self.left_out:
            parts.append(f"{counted(len(self.left_out), 'unreadable image')} left out")
        if self.missing:
            n = sum(k for _, k in self.missing)
            parts.append(f"{counted(len(self.missing), 'missing image')} left out "
                         f"({counted(n, 'annotation')} kept in the project)")
        return ", ".join(parts)

    def lines(self, limit: int = 50) -> list[str]:
        """The report's details, one line an item, at most `limit` of each kind and then a line
        counting the rest: what the CLI prints and the GUI's dialog shows under summary()."""
        out: list[str] = []

        def add(texts: list[str], more: str) -> None:
            out.extend(texts[:limit])
            if len(texts) > limit:
                out.append(f"... and {len(texts) - limit} more {more}")

        add([f"warning: {w}" for w in self.warnings], "warnings")
        add([f"note: {n}" for n in self.notes], "notes")
        add([f"error: {f}: {e}" for f, e in self.errors], "errors")
        add([f"not marked done (annotations rejected): {f}" for f in self.incomplete], "images not marked done")
        add([f"left out (unreadable): {f}: {e}" for f, e in self.left_out], "unreadable images left out")
        add([f"left out (file missing): {f}: its {n} annotations are kept in the project, not exported"
             for f, n in self.missing], "missing images left out")
        add([f"unmatched (no such image in the folder): {u}" for u in self.unmatched], "unmatched")
        return out


def step(progress: Progress | None, cancel: CancelCheck | None, done: int, total: int, item: str = "") -> None:
    if cancel is not None and cancel():
        raise Cancelled()
    if progress is not None:
        progress(done, total, item)


# ----------------------------------------------------------------------------- matching images
class ImageMatcher:
    """Find a project image for a name from a dataset: relative path first, then base name."""

    def __init__(self, project: Project):
        recs = project.store.images(include_missing=False)
        self.by_path = {r.path: r for r in recs}
        # a frame is also found by the image name exports give it (REL/NNNNNN.png): no file has
        # that path (REL is a file), so the alias never hides an image
        self.by_path.update({image_name(r.path): r for r in recs if r.path != image_name(r.path)})
        self.by_lower = {p.lower(): r for p, r in self.by_path.items()}
        self.by_relstem = {os.path.splitext(p)[0]: r for p, r in self.by_lower.items()}
        self.by_name: dict[str, list[ImageRecord]] = {}
        self.by_stem: dict[str, list[ImageRecord]] = {}
        for r in recs:
            names = {r.name.lower(), image_name(r.path).rsplit("/", 1)[-1].lower()}
            for n in names:
                self.by_name.setdefault(n, []).append(r)
            self.by_stem.setdefault(os.path.splitext(r.name)[0].lower(), []).append(r)

    def match(self, name: str) -> ImageRecord | None:
        n = name.replace("\\", "/").lstrip("./")
        while n.startswith("../"):
            n = n[3:]
        if n in self.by_path:
            return self.by_path[n]
        if n.lower() in self.by_lower:
            return self.by_lower[n.lower()]
        # a dataset path may carry a prefix (images/train/a.jpg): try its suffixes
        parts = n.split("/")
        for k in range(1, len(parts)):
            sub = "/".join(parts[k:])
            if sub in self.by_path:
                return self.by_path[sub]
        cands = self.by_name.get(parts[-1].lower(), [])
        return cands[0] if len(cands) == 1 else None

    def match_stem(self, stem: str) -> ImageRecord | None:
        """Match by file name without extension (YOLO labels, label-map PNGs)."""
        key = stem.replace("\\", "/").lower()
        if "/" in key:
            if key in self.by_relstem:
                return self.by_relstem[key]
            key = key.rsplit("/", 1)[-1]
        cands = self.by_stem.get(key, [])
        return cands[0] if len(cands) == 1 else None


def matched_files(matcher: "ImageMatcher", src: Path, files: list[Path], report: Report,
                  progress: Progress | None, cancel: CancelCheck | None) -> Iterator[tuple[str, Path, ImageRecord]]:
    """(name relative to src, file, image) for each dataset file whose image is in the project,
    matched by relative path without extension, then by stem; the rest go to report.unmatched."""
    for k, f in enumerate(files):
        rel = f.relative_to(src).as_posix()
        step(progress, cancel, k, len(files), rel)
        rec = matcher.match_stem(os.path.splitext(rel)[0])
        if rec is None:
            report.unmatched.append(rel)
            continue
        yield rel, f, rec
    step(progress, None, len(files), len(files))


# ----------------------------------------------------------------------------- classes
class ClassMapper:
    """Project classes by name, found or created: the one mapper for importers and model output.

    Names match as the store keeps them: surrounding whitespace stripped, case kept (the store's
    names are case-sensitive, so `Cat` and `cat` are two classes). A class the project lacks is
    created on first use (with the source's colour and ignore flag when it has them) unless
    `create` is False; then `get` returns None and counts the miss in `dropped`. A name that
    is an ignore class on one side and a real class on the other is never merged: `get` raises
    ClassClash, whose message says how to settle it.

    `model_classes`: a model's class names, label k being name k - 1; calling the mapper with a
    label gives the project class id (None for a label out of range, a background or "N/A" slot,
    or a dropped class). Thread-safe: predict threads share one mapper.
    """

    MODEL_SKIP = frozenset({"N/A", "__background__"})  # torchvision's placeholder slots

    def __init__(self, project: Project, model_classes: Sequence[str] = (), create: bool = True):
        self.store = project.store
        self.names = list(model_classes)
        self.create = create
        self.by_name = {c.name.strip(): c for c in self.store.classes()}
        self.lock = threading.Lock()
        self.dropped: dict[str, int] = {}

    def get(self, name: str, color=None, ignore: bool | None = False) -> LabelClass | None:
        """The project class `name` (created when missing). `ignore`: whether the source means
        an ignore class; None takes the project's class as it is (a model's output)."""
        key = name.strip()
        with self.lock:
            c = self.by_name.get(key)
            if c is not None and ignore is not None and c.ignore != ignore:
                raise ClassClash(_clash_message(key, project_ignores=c.ignore))
            if c is None:
                if not self.create:
                    self.dropped[key] = self.dropped.get(key, 0) + 1
                    return None
                # ensure_class, not add_class: another mapper may have added it since we read
                c = self.store.ensure_class(key, color, ignore=bool(ignore))
                if ignore is not None and c.ignore != ignore:  # made by someone else meanwhile
                    raise ClassClash(_clash_message(key, project_ignores=c.ignore))
                self.by_name[key] = c
            return c

    def __call__(self, label: int) -> int | None:
        if not 1 <= label <= len(self.names):
            return None
        name = self.names[label - 1]
        if name in self.MODEL_SKIP:
            return None
        c = self.get(name, ignore=None)
        return None if c is None else c.id


def _clash_message(name: str, project_ignores: bool) -> str:
    if project_ignores:
        return (f"the project's class {name!r} is an ignore class (training skips its pixels, exports leave "
                f"them out) and the source's {name!r} is a real class: they are not merged. Switch "
                f"“ignore” off for {name!r} in the Classes panel (or rename it), then import again")
    return (f"the source's {name!r} marks ignore pixels and the project's class {name!r} is a real class: "
            f"they are not merged. Rename the project's class (or switch “ignore” on for it in the "
            f"Classes panel), then import again")


def export_classes(project: Project) -> tuple[list[LabelClass], dict[int, int], list[LabelClass]]:
    """Classes for an export: real classes numbered 1..N in class order, and ignore classes.

    Returns (real classes in order, {class id: export value}, ignore classes).
    """
    classes = project.store.classes()
    real = [c for c in classes if not c.ignore]
    ignore = [c for c in classes if c.ignore]
    return real, {c.id: i for i, c in enumerate(real, start=1)}, ignore


# ----------------------------------------------------------------------------- writing imports
class RegionWriter:
    """Adds imported regions image by image, each image in its own transaction.

    Regions identical to one the image already has (same class, box and pixels) are skipped,
    so importing the same source twice adds nothing.
    """

    def __init__(self, project: Project, status: str | None = DONE, report: Report | None = None):
        self.project, self.status = project, status
        self.report = report or Report()
        self._seen_images: set[int] = set()

    def add(self, rec: ImageRecord, regions: Sequence[Region], rejected: int = 0,
            size: tuple[int, int] | None = None) -> int:
        """Add one image's imported regions; returns how many were new.

        `rejected`: how many of the source's annotations for this image failed validation
        (their errors are in the report already). Such an image is never marked done, which
        would teach a model that the missing objects are background: with every annotation
        rejected nothing is written and its status stays as it was; with some, it becomes
        in_progress for a person to look at. `size` (width, height): regions are clipped to it.
        """
        store = self.project.store
        keys = store.region_keys(rec.id)
        fresh = []
        kept = 0
        for r in regions:
            if size is not None:
                r.clip_to_image(*size)
            r.tighten()
            if r.empty:
                continue
            kept += 1
            h, w = r.mask.shape
            key = (r.class_id, r.x, r.y, w, h, rle.encode(r.mask))
            if key in keys:
                self.report.skipped_duplicates += 1
                continue
            keys.add(key)
            fresh.append(r)
        status = self.status
        if rejected:
            self.report.rejected += rejected
            self.report.incomplete.append(rec.path)
            if not kept:
                self.report.note(f"{rec.path}: all {rejected} of its annotations rejected; nothing "
                                 f"imported, status left as {rec.status}")
                return 0
            if status == DONE:
                status = IN_PROGRESS
                self.report.note(f"{rec.path}: {rejected} of its annotations rejected; marked "
                                 "in_progress, not done")
        ids = store.reserve_region_ids(len(fresh)) if fresh else []
        z0 = store.max_z(rec.id) if fresh else 0
        for i, (r, rid) in enumerate(zip(fresh, ids, strict=True)):
            r.id = rid
            r.z = z0 + 1 + i
        store.save_regions(rec.id, fresh, status=status)
        if rec.id not in self._seen_images:
            self._seen_images.add(rec.id)
            self.report.images += 1
        self.report.regions += len(fresh)
        return len(fresh)


def imported_region(class_id: int, mask: np.ndarray, x: int = 0, y: int = 0, iscrowd: bool = False,
                    extra: dict | None = None) -> Region:
    return Region(0, class_id, mask, x, y, source=IMPORTED, iscrowd=iscrowd, extra=extra or {})


# ----------------------------------------------------------------------------- reading for export
@dataclass
class ExportItem:
    record: ImageRecord
    width: int
    height: int
    regions: list[Region]


def export_items(project: Project, statuses: Sequence[str] | None, report: Report,
                 need_size: bool = True) -> Iterator[ExportItem]:
    """Images to export (not missing, in the statuses asked for) with their regions.

    Images known to be unreadable (an error stored by any earlier decode) are left out and go
    to report.left_out; so does one whose header cannot be read now (its error is stored).
    Image size comes from the store, or from the file header the first time. After the last
    item, images of those statuses whose file has vanished but which hold annotations go to
    report.missing: their annotations stay in the project and are not exported.
    """
    store = project.store
    for rec in review_filter.select_images(store, statuses):  # "accepted" among statuses: done and accepted
        if rec.error:
            report.left_out.append((rec.path, rec.error))
            continue
        try:
            w, h = project.image_size(rec) if need_size else (rec.width or 0, rec.height or 0)
        except imageio.ImageDecodeError as e:
            store.set_error(rec.id, str(e))
            report.left_out.append((rec.path, str(e)))
            continue
        regions = store.regions(rec.id)
        for r in regions:
            if maskops.box_clip(r.box, w, h) != r.box:  # stored crops are tight; clip the rare overhang
                r.clip_to_image(w, h)
                r.tighten()
        yield ExportItem(rec, w, h, [r for r in regions if r.mask.size])
    report.missing.extend(review_filter.missing_with_regions(store, statuses))


def export_paths(project: Project, statuses: Sequence[str] | None) -> list[str]:
    """The paths of the images an export may write (known-unreadable ones are left out), for a
    check before anything is read or written."""
    return [r.path for r in review_filter.select_images(project.store, statuses) if not r.error]


def count_export_items(project: Project, statuses: Sequence[str] | None) -> int:
    return len(review_filter.select_ids(project.store, statuses))


def copy_image(project: Project, rec: ImageRecord, dst: Path, report: Report) -> bool:
    """Copy an image file into an export; False (and the image left out, its error stored)
    when the file cannot be read any more.

    The source is opened by core/imageio's regular-file opener: a FIFO (which would hang the
    export) or a device such as /dev/zero (which would fill the disk), put where an image was,
    is refused for what it is. At most the size fstat gave is copied. A write that fails (a
    full disk) stops the export, naming the file it was writing."""
    try:
        src = imageio.open_regular(project.abspath(rec))
    except imageio.ImageDecodeError as e:
        return _left_out(project, rec, str(e), report)
    with src:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_bytes(src, dst)
        except _ReadFailed as e:
            dst.unlink(missing_ok=True)  # a part of an image is not exported
            return _left_out(project, rec, f"cannot read file: {e.reason.strerror or e.reason}", report)
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(dst)) from e
    return True


COPY_CHUNK = 1 << 20


class _ReadFailed(Exception):
    def __init__(self, reason: OSError):
        super().__init__(str(reason))
        self.reason = reason


def copy_bytes(src: IO[bytes], dst: Path) -> None:
    """Write the opened file `src` (at most its size now) to `dst`; a read error is _ReadFailed,
    a write error an OSError."""
    with open(dst, "wb") as out:
        left = os.fstat(src.fileno()).st_size
        while left > 0:
            try:
                chunk = src.read(min(left, COPY_CHUNK))
            except OSError as e:
                raise _ReadFailed(e) from e
            if not chunk:  # shrank meanwhile: what is there is copied
                break
            out.write(chunk)
            left -= len(chunk)


def is_regular(project: Project, rec: ImageRecord, report: Report) -> bool:
    """Whether the image's file is still a regular file, for a writer that hands paths to another
    library (datumaro opens them with plain open(): a FIFO would hang it). If not, the image is
    left out, its error stored and named in the report."""
    try:
        imageio.open_regular(project.abspath(rec)).close()
    except imageio.ImageDecodeError as e:
        return _left_out(project, rec, str(e), report)
    return True


def _left_out(project: Project, rec: ImageRecord, msg: str, report: Report) -> bool:
    project.store.set_error(rec.id, msg)
    report.left_out.append((rec.path, msg))
    return False


def write_png(path: Path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False, compress_level=6)


def relative_stem(rec: ImageRecord) -> str:
    return os.path.splitext(rec.path)[0]


FRAME_IMAGE_EXT = ".png"


def image_name(path: str) -> str:
    """The relative name an export gives an image's pixels: an image file keeps its own path;
    a stack's or video's frame `REL/NNNNNN` (core/sequences) is written as `REL/NNNNNN.png`.

    Why this name: it is the record path with an extension, so (1) it can never be the name of
    another image of the folder (REL is a file, so nothing of the folder lives under `REL/`) nor
    of another frame, and the stem-named outputs of every format (label maps, YOLO labels,
    labelme JSON, datumaro ids: `REL/NNNNNN`) stay as unique as the records; (2) it says which
    file and which frame it is (`run.mp4` and `run.avi` beside each other stay apart, where
    `run/000012.png` would meet them and a real folder `run/`); (3) the frames of one sequence
    sit in one folder in frame order, the layout video tools (MOTS, YouTube-VIS, DAVIS) use;
    (4) importers find the frame again by this name (ImageMatcher). PNG is lossless and keeps
    16-bit frames 16-bit. A numbered folder's frames are its own files and keep their names."""
    return path + FRAME_IMAGE_EXT if sequences.split_frame_path(path) is not None else path


def is_frame(path: str) -> bool:
    """Whether a record is a stack's or video's frame (pixels decoded, no file of its own)."""
    return sequences.split_frame_path(path) is not None


def palette_bytes(colors: Iterable[tuple[int, int, int]], ignore_color=(224, 224, 192)) -> list[int]:
    """A 256-entry PNG palette: 0 black, then the class colours, 255 the VOC ignore colour."""
    pal = [0, 0, 0]
    for c in colors:
        pal.extend(c)
    pal = pal[:255 * 3]
    pal.extend([0] * (255 * 3 - len(pal)))
    pal.extend(ignore_color)
    return pal
