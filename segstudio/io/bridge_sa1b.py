"""SA-1B (Segment Anything's JSON, one file per image) read by segstudio itself, not by datumaro.

datumaro's reader hands the RLE to pycocotools while it lists the dataset (to make a box when
an annotation has none), and pycocotools trusts its input: a truncated counts string is read
past its end, and counts summing short decode from uninitialised memory. The format is small
enough to read here with the COCO importer's rules: each JSON file bounded in size and parsed
with NaN and huge numbers caught (validate.py); each annotation's RLE decoded by core/rle.py,
its size checked against the project image and every count checked before a pixel is written;
one bad annotation an error in the report (its image never marked done), one bad file an error.
"""

from __future__ import annotations

from pathlib import Path

from segstudio.core import maskops, rle
from segstudio.core.project import Project
from segstudio.io import validate
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, RegionWriter,
                                 Report, imported_region, step)

NO_CLASS = "object"  # SA-1B holds no classes


def import_sa1b(project: Project, source: str | Path, status: str | None,
                progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    files = [src] if src.is_file() else sorted(src.glob("*.json"))
    if not files:
        raise FormatError(f"no SA-1B JSON file in {src}")
    report = Report()
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    mapper = ClassMapper(project)
    for k, f in enumerate(files):
        step(progress, cancel, k, len(files), f.name)
        try:
            doc = validate.load_json(f)
        except FormatError as e:
            report.error(f.name, str(e))
            continue
        try:
            _import_file(project, f.name, doc, matcher, writer, mapper, report)
        except validate.BAD_INPUT as e:
            report.error(f.name, f"{type(e).__name__}: {e}")
    step(progress, None, len(files), len(files))
    return report


def _import_file(project: Project, fname: str, doc, matcher: ImageMatcher, writer: RegionWriter,
                 mapper: ClassMapper, report: Report) -> None:
    image = doc.get("image") if isinstance(doc, dict) else None
    anns = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(image, dict) or not isinstance(anns, list):
        report.error(fname, "not an SA-1B file: no 'image' object and 'annotations' list")
        return
    name = image.get("file_name")
    if not isinstance(name, str) or not name:
        report.error(fname, "image has no file_name; skipped")
        return
    norm = name.replace("\\", "/")
    if norm.startswith("/") or ".." in norm.split("/") or ":" in norm.split("/")[0]:
        report.error(fname, f"image name {validate.brief(name, 120)} is outside the dataset folder; refused")
        return
    rec = matcher.match(norm) or matcher.match_stem(norm.rsplit(".", 1)[0])
    if rec is None and "__" in norm:  # datumaro's SA-1B writer flattens an image's folders with "__"
        rec = matcher.match(norm.replace("__", "/"))
    if rec is None:
        report.unmatched.append(name)
        return
    w, h = project.image_size(rec)
    if image.get("width") is not None and image.get("height") is not None:
        stated = validate.as_size(image["width"], "width"), validate.as_size(image["height"], "height")
        if stated != (w, h):
            report.error(fname, f"the file says the image is {stated[0]}x{stated[1]}, it is {w}x{h}: "
                                f"{len(anns)} masks refused")
            writer.add(rec, [], rejected=len(anns))
            return
    cls = mapper.get(NO_CLASS)
    regions, rejected = [], 0
    for i, a in enumerate(anns):
        aid = validate.brief(a.get("id") if isinstance(a, dict) else None)
        try:
            if not isinstance(a, dict):
                raise ValueError("not an object")
            seg = a.get("segmentation")
            if not isinstance(seg, dict):
                raise ValueError("no RLE 'segmentation' object")
            crop = maskops.crop_to_content(rle.from_coco(seg, h, w))
        except validate.BAD_INPUT as e:
            report.error(fname, f"annotation {i} (id {aid}): {e}")
            rejected += 1
            continue
        if crop is not None and cls is not None:
            regions.append(imported_region(cls.id, *crop))
    writer.add(rec, regions, rejected=rejected, size=(w, h))
