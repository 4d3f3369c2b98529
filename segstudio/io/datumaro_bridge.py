"""Every other segmentation format, through datumaro: one mapping between datumaro's dataset
model and segstudio's regions, not a module per format (bridge_formats names them).

Import: datumaro parses the source; each item is matched to a project image (path, then name
without extension, as the native importers match); each mask or polygon becomes a region after
the same checks as the native importers (a mask must be the image's size, polygon coordinates
finite and near the image, rasterised clipped to it), one bad annotation an error in the report,
never the file. The gates datumaro's own reading goes through: the source holds regular files
only, and no image larger than the project's is decoded (bridge_source.py); RLE masks are
decoded by segstudio's checked decoder, never by datumaro (bridge_masks.py); SA-1B is read by
segstudio itself (bridge_sa1b.py); an item's image path must stay inside the dataset folder.
Boxes, points, lines and captions are not segmentation and are counted, not imported. An item
without any mask or polygon leaves its image as it was (never marked done).

Export: each region is one datumaro `Mask` (lazily made full-size, so memory follows one image),
classes as label categories with an `is_crowd` attribute, images copied in by datumaro; the
result lands atomically like every export (export_target). Formats whose label maps reserve 0
for the background get a "background" label first.

Cityscapes: datumaro 1.13 reads and writes its label PNGs only (instances merged per class).
segstudio writes `*_gtFine_instanceIds.png` the Cityscapes way (class id x 1000 + instance; the
class id alone for crowd), and splits each class mask by that file on import, so instances and
crowd survive a round trip.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from contextvars import ContextVar
from functools import cache, partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from segstudio.core import imageio, maskops
from segstudio.core.classes import BACKGROUND_NAMES
from segstudio.core.labelmap import z_sorted
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.core.region import Region
from segstudio.io import bridge_masks, bridge_mots, bridge_sa1b, bridge_source, validate
from segstudio.io.bridge_formats import BRIDGE_EXPORT, BRIDGE_IMPORT, EXTRA
from segstudio.io.export_names import check_export_names, stem
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, RegionWriter,
                                 Report, atomic_dir, copy_bytes, count_export_items, export_classes, export_items,
                                 export_paths, image_name, imported_region, is_frame, is_regular, relative_stem,
                                 step)
from segstudio.io.frame_images import write_image

log = logging.getLogger(__name__)

BACKGROUND_FIRST = {"cityscapes", "camvid", "kitti_segmentation"}  # label 0 is the background there
SPACE_SPLIT = {"cityscapes", "camvid", "kitti_segmentation"}  # label files of "r g b name" lines
NO_CLASS = bridge_sa1b.NO_CLASS  # what a class-less source (SA-1B) imports as


def datumaro(fmt: str):
    """The datumaro package, or one clear line saying which extra brings it."""
    try:
        import datumaro as dm
    except ImportError:
        raise FormatError(f"the {fmt} format needs datumaro: {EXTRA}") from None
    logging.getLogger("datumaro").setLevel(logging.ERROR)  # it warns through the root logger
    return dm


# ============================================================================= import
def import_via_datumaro(fmt: str, project: Project, source: str | Path, status: str | None = DONE,
                        progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    if fmt not in BRIDGE_IMPORT:
        raise FormatError(f"unknown format {fmt!r}")
    dm = datumaro(fmt)
    from datumaro.components.annotation import AnnotationType
    src = Path(source)
    dm_fmt = BRIDGE_IMPORT[fmt][0]
    kwargs: dict[str, Any] = {}
    if dm_fmt == "open_images":  # its masks need the image sizes, which its files may not hold
        kwargs["image_meta"] = _image_meta(project)
    bridge_source.source_files_checked(src, dm_fmt)  # a FIFO would hang datumaro
    if dm_fmt == "segment_anything":  # read here: datumaro hands its RLE to pycocotools unchecked
        return bridge_sa1b.import_sa1b(project, src, status, progress, cancel)
    limit = bridge_source.image_limit(project)
    # Cityscapes' PNGs are read by segstudio (_cityscapes_regions), each checked against its
    # image: datumaro need not decode them, and a bad one is that image's error, not the import's
    with tempfile.TemporaryDirectory(prefix="segstudio-cvat-") as staging, \
            bridge_source.guarded_decoding(limit, skip=dm_fmt == "cityscapes"):
        read_from = src
        if dm_fmt == "cvat" and not (src if src.is_dir() else src.parent).joinpath("images").is_dir():
            # datumaro's CVAT reader wants the images in images/ beside the XML, as CVAT exports
            # them; an "annotations only" export has none: the XML is read beside a link to
            # the project's own folder instead (nothing is written to either)
            read_from = _cvat_staging(src, project, Path(staging))
        try:
            ds = dm.Dataset.import_from(str(read_from), dm_fmt, **kwargs)
            items = list(ds)
            labels = ds.categories().get(AnnotationType.label)
        except Exception as e:  # noqa: BLE001  (datumaro raises its own error types for every kind of bad source)
            refused = bridge_source.refused_images(e, src, limit)
            named = f" (refused: {', '.join(refused)})" if refused else ""
            raise FormatError(f"cannot read {src} as {fmt}: {_brief_error(e)}{named}") from None
        names = [c.name for c in labels] if labels is not None else []
        return _import_items(project, items, names, read_from, dm_fmt, status, progress, cancel)


def _import_items(project: Project, items: list, names: list[str], src: Path, dm_fmt: str, status: str | None,
                  progress: Progress | None, cancel: CancelCheck | None) -> Report:
    """Each datumaro item onto its project image (while the source can still be read)."""
    from datumaro.components.annotation import AnnotationType
    report = Report()
    mapper = ClassMapper(project)
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    other_kinds: dict[str, int] = {}
    empty = 0
    for k, item in enumerate(items):
        name = f"{item.subset}/{item.id}" if item.subset and item.subset != "default" else item.id
        step(progress, cancel, k, len(items), name)
        try:
            rec = _match(matcher, item, src if src.is_dir() else src.parent)
        except ValueError as e:  # a path outside the dataset, or not a regular file
            report.error(name, str(e))
            continue
        if rec is None:
            report.unmatched.append(name)
            continue
        try:
            w, h = project.image_size(rec)
            if dm_fmt == "cityscapes":
                regions, rejected = _cityscapes_regions(src, item, names, w, h, mapper, report, name), 0
            else:
                regions, rejected = _item_regions(item, names, w, h, mapper, name, report, other_kinds,
                                                  AnnotationType)
        except Exception as e:  # noqa: BLE001  (a broken item, e.g. an unreadable mask file: that item's error)
            report.error(name, _brief_error(e))
            if dm_fmt == "cityscapes" or _has_masks(item):
                writer.add(rec, [], rejected=1)  # counted as refused; its status stays as it was
            continue
        if not regions and not rejected:
            empty += 1
            continue
        writer.add(rec, regions, rejected=rejected, size=(w, h))
    step(progress, None, len(items), len(items))
    if other_kinds:
        report.note("not segmentation, not imported: " + ", ".join(f"{n} {k}" for k, n in sorted(other_kinds.items())))
    if empty:
        report.note(f"{empty} images had no mask or polygon in the source; left as they were")
    return report


_DISK_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_error(e: BaseException) -> OSError | None:
    """The failed write (a full disk, an I/O error) behind what datumaro raised, found through
    the causes it wraps it in; None when the failure is something else."""
    seen: set[int] = set()
    err: BaseException | None = e
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def _brief_error(e: BaseException) -> str:
    """One line: the error and what caused it (datumaro wraps the reason in two layers)."""
    parts: list[str] = []
    seen: set[int] = set()
    err: BaseException | None = e
    while err is not None and id(err) not in seen and len(parts) < 4:
        seen.add(id(err))
        text = str(err).strip().splitlines()
        line = text[0][:300] if text else ""
        if line and not any(line in p for p in parts):
            parts.append(line)
        err = err.__cause__ or err.__context__
    return f"{type(e).__name__}: {' <- '.join(parts)}"


def _image_meta(project: Project) -> dict[str, tuple[int, int]]:
    """{image id (file name without extension): (height, width)} for the project's images."""
    meta = {}
    for rec in project.store.images(include_missing=False):
        try:
            w, h = (rec.width, rec.height) if rec.width and rec.height else project.image_size(rec)
        except Exception:  # noqa: BLE001  (an unreadable image: its items are unmatched or fail alone)
            continue
        meta[Path(rec.path).stem] = (h, w)
        meta[os.path.splitext(image_name(rec.path))[0]] = (h, w)  # an item id with its folders (a frame's)
    return meta


def _cvat_staging(src: Path, project: Project, staging: Path) -> Path:
    xmls = [src] if src.is_file() else sorted(src.glob("*.xml"))
    if not xmls:
        raise FormatError(f"no CVAT XML file in {src}")
    for x in xmls:
        (staging / x.name).symlink_to(x.resolve())
    (staging / "images").symlink_to(project.folder.resolve(), target_is_directory=True)
    return staging


def _match(matcher: ImageMatcher, item, root: Path):
    """The project image of an item: by its media path inside the dataset (a path that leaves
    the dataset folder, or names something other than a regular file, is refused: ValueError),
    then by file name, then by id."""
    path = getattr(item.media, "path", None) if item.media is not None else None
    if path:
        rel = os.path.relpath(os.path.normpath(os.path.join(root, path)), root)
        if rel == ".." or rel.startswith(".." + os.sep):
            raise ValueError(f"image name {validate.brief(path, 120)} is outside the dataset folder; refused")
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None  # not there: matched by name, as an annotations-only export is
        if mode is not None and not stat.S_ISREG(mode):
            raise ValueError(f"image {validate.brief(rel, 120)} is not a regular file; refused")
        p = Path(rel)
        rec = matcher.match(p.as_posix())  # images/train/a.jpg: tried with its prefixes dropped too
        if rec is None:
            rec = matcher.match(p.name)
        if rec is not None:
            return rec
    return matcher.match_stem(item.id)


def _has_masks(item) -> bool:
    try:
        return any(a.type.name in ("mask", "polygon") for a in item.annotations)
    except Exception:  # noqa: BLE001
        return True


def _item_regions(item, names: list[str], w: int, h: int, mapper: ClassMapper, name: str, report: Report,
                  other_kinds: dict[str, int], AT) -> tuple[list[Region], int]:
    anns = list(item.annotations)
    from datumaro.components.annotation import ExtractedMask
    # ADE20K gives class-level masks beside the instance masks, and polygons for some masked
    # instances: the instances (and the masks) win
    declared = _declared_size(item)
    if declared is not None and declared != (h, w) and any(a.type == AT.mask for a in anns):
        # a mask is decoded at the size the source declares: refuse before a pixel is made
        n = sum(a.type == AT.mask for a in anns)
        report.error(name, f"the source says the image is {declared[1]}x{declared[0]}, it is {w}x{h}: "
                           f"{n} masks refused")
        anns = [a for a in anns if a.type != AT.mask]
        rejected_early = n
    else:
        rejected_early = 0
    has_instances = any(a.type == AT.mask and not isinstance(a, ExtractedMask) for a in anns)
    masked_groups = {a.group for a in anns if a.type == AT.mask and a.group}
    out: list[tuple[int, int, Region]] = []
    rejected = rejected_early
    for i, a in enumerate(anns):
        if a.type not in (AT.mask, AT.polygon):
            other_kinds[a.type.name] = other_kinds.get(a.type.name, 0) + 1
            continue
        if a.type == AT.mask and isinstance(a, ExtractedMask) and has_instances:
            continue
        if a.type == AT.polygon and a.group and a.group in masked_groups:
            continue
        try:
            cls_name = _class_name(a.label, names)
            if cls_name is None:
                continue  # the background of a label map
            crop = bridge_masks.mask_crop(a, w, h) if a.type == AT.mask else _polygon_crop(a.points, w, h)
        except validate.BAD_INPUT as e:
            report.error(name, f"annotation {i} ({a.type.name}): {e}")
            rejected += 1
            continue
        if crop is None:
            continue
        m, x, y = crop
        cls = mapper.get(cls_name)
        if cls is None:
            continue
        crowd = bool((a.attributes or {}).get("is_crowd", False))
        out.append((int(getattr(a, "z_order", 0) or 0), i, imported_region(cls.id, m, x, y, iscrowd=crowd)))
    out.sort(key=lambda t: (t[0], t[1]))  # datumaro's z_order is the painting order
    return [r for _, _, r in out], rejected


def _declared_size(item) -> tuple[int, int] | None:
    """(height, width) the source gives for the item's image, when it gives one (never read
    from the file: datumaro would open it, and it may be a FIFO or a bomb)."""
    try:
        size = item.media.size if item.media is not None and item.media.has_size else None
    except Exception:  # noqa: BLE001  (a size datumaro cannot read: none declared)
        return None
    if not size or len(size) != 2 or not all(isinstance(v, (int, np.integer)) for v in size):
        return None
    return int(size[0]), int(size[1])


def _class_name(label, names: list[str]) -> str | None:
    if label is None:
        return NO_CLASS
    if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < len(names):
        raise ValueError(f"label {validate.brief(label)} is not one of the {len(names)} classes")
    n = validate.clean_class_name(names[int(label)])
    return None if n.lower() in BACKGROUND_NAMES else n


def _polygon_crop(points, w: int, h: int) -> tuple[np.ndarray, int, int] | None:
    pts = maskops.finite_points(list(points), maskops.coord_limit(w, h), "polygon")
    if pts.size % 2:
        raise ValueError("a polygon needs x, y pairs")
    res = maskops.polygon_mask(pts.reshape(-1, 2), clip=(0, 0, w, h))
    if res is None:
        return None
    m, box = res
    return maskops.crop_to_content(m, box[0], box[1])


def _cityscapes_png(src: Path, item, kind: str, w: int, h: int) -> np.ndarray | None:
    """gtFine/<subset>/<id>_gtFine_<kind>.png as integers, or None when absent; its header is
    checked against the image first, so a hostile file is never decoded beyond the image's size."""
    p = src / "gtFine" / (item.subset or "default") / f"{item.id}_gtFine_{kind}.png"
    if not p.is_file():
        return None
    size = bridge_source.file_header_size(p)
    if size is not None and size != (w, h):
        raise ValueError(f"{p.name} is {size[0]}x{size[1]} (from its header), the image {w}x{h}; not decoded")
    with imageio.open_guarded(imageio.read_bytes(p)) as im:  # segstudio's formats only: never PostScript
        if im.size != (w, h):
            raise ValueError(f"{p.name} is {im.size[0]}x{im.size[1]}, the image {w}x{h}")
        return np.asarray(im).astype(np.int64)


def _cityscapes_regions(src: Path, item, names: list[str], w: int, h: int, mapper: ClassMapper, report: Report,
                        name: str) -> list[Region]:
    """Cityscapes read from its PNGs (datumaro 1.13 takes every pixel of the instance file for a
    class id, so instances are lost): the class of each pixel from labelIds (or, without it,
    from instanceIds: the id below 1000, id // 1000 above), each class split by instanceIds
    (>= 1000 one instance each; the rest of a class that has instances is crowd). Class 0 is
    'unlabeled' in Cityscapes and ours: the background."""
    ids = _cityscapes_png(src, item, "instanceIds", w, h)
    labels = _cityscapes_png(src, item, "labelIds", w, h)
    if labels is None:
        if ids is None:
            return []
        labels = np.where(ids >= 1000, ids // 1000, ids)
    out = []
    for v in np.flatnonzero(np.bincount(labels.ravel().clip(0))):
        if v == 0:
            continue
        cls_name = _class_name(int(v), names)
        cls = mapper.get(cls_name) if cls_name is not None else None
        if cls is None:
            continue
        m = labels == v
        inst = ids[m] if ids is not None else np.zeros(0, np.int64)
        if not (inst >= 1000).any():
            c = maskops.crop_to_content(m)
            if c is not None:
                out.append(imported_region(cls.id, *c))
            continue
        for iv in np.unique(inst):
            c = maskops.crop_to_content(m & (ids == iv))
            if c is not None:
                out.append(imported_region(cls.id, *c, iscrowd=bool(iv < 1000)))
    return out


# ============================================================================= export
# formats that list their images one a line: the list, and characters its reader takes apart
# (CamVid reads '"' as the quotes around a name with spaces)
IMAGE_LISTS = {"camvid": ("default.txt", '"')}


def export_via_datumaro(fmt: str, project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                        progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    if fmt not in BRIDGE_EXPORT:
        raise FormatError(f"unknown format {fmt!r}")
    dm = datumaro(fmt)
    dm_fmt = BRIDGE_EXPORT[fmt][0]
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    if dm_fmt != "segment_anything":  # every other format writes its classes as a list (text or XML)
        validate.check_listable([c.name for c in real], fmt)  # before anything is read or written
    if dm_fmt in SPACE_SPLIT and (hashed := [c.name for c in real if c.name.startswith("#")]):
        raise FormatError(f"cannot export to {fmt}: its label file reads a line starting with '#' as a comment, "
                          f"so these classes would vanish: {', '.join(map(repr, hashed[:5]))}; rename them and "
                          "export again")
    if dm_fmt in IMAGE_LISTS:  # before anything is read or written
        validate.check_listable_images(export_paths(project, statuses), fmt, *IMAGE_LISTS[dm_fmt])
    # every format names an item's files by its id, the relative stem: two images of one id would be one item
    check_export_names(project, statuses, fmt, lambda p: [stem(p)], folders=False)
    if dm_fmt == "mots_png":
        bridge_mots.check_classes([c.name for c in real])
    total = count_export_items(project, statuses)
    with atomic_dir(out, project) as tmp:
        # a frame has no file: it is decoded to a PNG here, inside the export's own temporary
        # folder, and moved (not copied) to where the format puts its image; then this goes
        staging = tmp / FRAME_STAGING
        _write_via_datumaro(dm, fmt, dm_fmt, project, statuses, report, real, value_of, staging, tmp, total,
                            progress, cancel)
        shutil.rmtree(staging, ignore_errors=True)  # ours alone; empty unless a format left a frame unused
    if ignore:
        report.note(f"ignore classes not exported: {', '.join(c.name for c in ignore)}")
    if dm_fmt in ("segment_anything",):
        report.note("SA-1B files hold no classes: every region is written, its class is not")
    elif dm_fmt in ("camvid",):
        report.note("CamVid holds one class per pixel: instances of a class are merged")
    elif dm_fmt == "mots_png":
        report.note("MOTS holds one object per pixel: where objects overlap, the one on top is written")
    return report


def _write_via_datumaro(dm, fmt: str, dm_fmt: str, project: Project, statuses, report: Report, real: list,
                        value_of: dict, staging: Path, tmp: Path, total: int, progress, cancel) -> None:
    from datumaro.components.annotation import AnnotationType, LabelCategories
    exported = []
    for k, it in enumerate(export_items(project, statuses, report)):
        step(progress, cancel, k, total, it.record.path)
        if is_frame(it.record.path):
            staged = write_image(project, it.record, staging, report)  # None: left out, its error stored
            if staged is None:
                continue
            media = staging.joinpath(*staged.split("/"))
        elif not is_regular(project, it.record, report):  # datumaro copies it with plain open()
            continue
        else:
            media = project.abspath(it.record)
        exported.append((it, [r for r in z_sorted(it.regions) if r.class_id in value_of], media))
    if dm_fmt == "cityscapes":
        real = _instance_classes_first(real, exported)
        value_of = {c.id: i for i, c in enumerate(real, start=1)}
    offset = 1 if dm_fmt in BACKGROUND_FIRST else 0
    names = [c.name for c in real]
    if dm_fmt in SPACE_SPLIT:  # their label files are "r g b name" lines, read back split at spaces
        spaced = [n for n in names if any(ch.isspace() for ch in n)]
        names = ["_".join(n.split()) for n in names]
        if spaced:
            report.note(f"{fmt} label files cannot hold spaces in class names: {len(spaced)} written with "
                        f"underscores ({', '.join(spaced[:5])}{', ...' if len(spaced) > 5 else ''})")
    label_names = (["background"] if offset else []) + names
    categories = LabelCategories.from_iterable([(n, "", ["is_crowd"]) for n in label_names])
    tracks = bridge_mots.Tracks() if dm_fmt == "mots_png" else None
    seq_of = bridge_mots.sequence_of(it.record.path for it, _, _ in exported) if tracks is not None else {}
    items, layouts = [], []
    for it, regions, media in exported:
        anns = []
        for z, r in enumerate(regions):
            attrs: dict[str, Any] = {"is_crowd": bool(r.iscrowd)}
            if tracks is not None:  # MOTS: the object's track within its sequence (bridge_mots)
                attrs["track_id"] = tracks.number(seq_of[it.record.path], value_of[r.class_id], r)
            anns.append(dm.Mask(image=partial(_full_mask, r, it.width, it.height),
                                label=value_of[r.class_id] - 1 + offset, id=z + 1, group=z + 1, z_order=z,
                                attributes=attrs))
        item_id = relative_stem(it.record)
        items.append(dm.DatasetItem(id=item_id, media=_regular_image()(path=str(media), size=(it.height, it.width)),
                                    annotations=anns))
        layouts.append((item_id, it.width, it.height, [(r, value_of[r.class_id] + offset - 1) for r in regions]))
        report.images += 1
        report.regions += len(regions)
    ds = dm.Dataset.from_iterable(items, categories={AnnotationType.label: categories})
    step(progress, cancel, total, total, f"writing {fmt}")
    _STAGED.set(str(staging) + os.sep)
    try:
        ds.export(str(tmp), dm_fmt, save_media=True)
    except Exception as e:  # noqa: BLE001  (whatever datumaro raises: one line; the output is left as it was)
        if (disk := _disk_error(e)) is not None:
            # atomic_dir says the disk failed and the previous export is unchanged
            raise disk from (None if disk is e else e)
        raise FormatError(f"datumaro could not write {fmt}: {_brief_error(e)}") from None
    finally:
        _STAGED.set(None)
    if dm_fmt == "cityscapes":
        merged = 0
        for item_id, w, h, placed in layouts:
            merged += _write_cityscapes_ids(tmp / "gtFine" / "default" / f"{item_id}_gtFine_instanceIds.png",
                                            w, h, placed)
        if merged:
            report.note(f"Cityscapes instance ids are 16-bit (class x 1000 + instance, {CITYSCAPES_MAX_LABEL} "
                        f"classes): {merged} regions of later classes share their image with another of "
                        "their class and merge with it")


FRAME_STAGING = ".segstudio-frames"  # inside the export's temporary folder, removed before it is sealed
# the staging folder of the export running in this context: a file under it is moved into place
_STAGED: ContextVar[str | None] = ContextVar("segstudio_frame_staging", default=None)


@cache
def _regular_image() -> type:
    """datumaro's file-backed image, copied into the export through core/imageio's regular-file
    opener: a file swapped for a FIFO after is_regular checked it fails the export at once
    (datumaro's own copy would open it with plain open() and wait for a writer)."""
    from datumaro.components.media import ImageFromFile

    class RegularImage(ImageFromFile):
        def save(self, fp, ext=None):
            if isinstance(fp, str) and os.path.splitext(fp)[1].lower() == (self.ext or "").lower():
                os.makedirs(os.path.dirname(fp), exist_ok=True)
                staged = _STAGED.get()
                if staged and self.path.startswith(staged) and os.path.isfile(self.path):
                    os.replace(self.path, fp)  # a frame decoded by the export itself: moved, not copied
                    return
                try:
                    src = imageio.open_regular(self.path)
                except imageio.ImageDecodeError as e:
                    raise imageio.ImageDecodeError(f"{self.path}: {e}") from None
                with src:
                    copy_bytes(src, Path(fp))
                return
            super().save(fp, ext)  # another format: datumaro decodes and writes it

    return RegularImage


def _full_mask(r: Region, w: int, h: int) -> np.ndarray:
    return maskops.uncrop(r.mask, r.x, r.y, w, h)


CITYSCAPES_MAX_LABEL = 65  # 65 x 1000 + 999 is the largest instance id a 16-bit PNG holds


def _instance_classes_first(real: list, exported: list) -> list:
    """Classes reordered for Cityscapes' 16-bit instance ids: those with two regions or more in
    one image need an instance id each, so they take the first CITYSCAPES_MAX_LABEL labels; a
    class with one region per image is exact as its class alone."""
    several: set[int] = set()
    for _, regions, _media in exported:
        seen: set[int] = set()
        for r in regions:
            if not r.iscrowd:
                (several if r.class_id in seen else seen).add(r.class_id)
    return [c for c in real if c.id in several] + [c for c in real if c.id not in several]


def _write_cityscapes_ids(path: Path, w: int, h: int, placed: list[tuple[Region, int]]) -> int:
    """The Cityscapes instance-id PNG (16-bit, as Cityscapes' own): label x 1000 + instance
    number (per class, from 0) for regions, the label alone for crowd regions and for labels
    past CITYSCAPES_MAX_LABEL, 0 elsewhere; later regions over earlier ones. Returns how many
    regions merged with another of their class (a label past the limit, twice in the image)."""
    ids = np.zeros((h, w), np.uint16)
    count: dict[int, int] = {}
    merged = 0
    singles: dict[int, int] = {}
    for r, label in placed:
        if label > CITYSCAPES_MAX_LABEL and not r.iscrowd:
            singles[label] = singles.get(label, 0) + 1
    for r, label in placed:
        if r.iscrowd or label > CITYSCAPES_MAX_LABEL or count.get(label, 0) > 999:
            v = label
            merged += (not r.iscrowd) and (label <= CITYSCAPES_MAX_LABEL or singles.get(label, 0) > 1)
        else:
            v = label * 1000 + count.get(label, 0)
            count[label] = count.get(label, 0) + 1
        win = ids[r.y:r.y + r.mask.shape[0], r.x:r.x + r.mask.shape[1]]
        win[r.mask[:win.shape[0], :win.shape[1]]] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids).save(path)
    return merged
