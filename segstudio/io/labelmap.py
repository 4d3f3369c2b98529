"""PNG label maps: one PNG per image, the class value of each pixel.

Values: 0 background; classes 1..N in class order; ignore pixels (regions of an ignore class)
255 in 8-bit maps and 65535 in 16-bit maps. Maps are `P` mode PNGs with the class colours as
palette while the classes fit in 8 bits (N <= 254), 16-bit grayscale (`I;16`) beyond. A
`class_names.txt` beside them lists `_background_` then the classes, line k = value k (the
layout labelme writes). Overlapping regions: the higher z wins.

Import reads palette PNGs as indices (never as colours), 8- and 16-bit grayscale as values,
each through the decompression-bomb guard and checked against its image's size from the header.
A class name with a line break or control character is refused at export, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from segstudio.core import imageio, maskops
from segstudio.core.classes import BACKGROUND_NAMES, LabelClass, read_class_file
from segstudio.core.labelmap import ignore_value, label_dtype, paint_label_map
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, matched_files,
                                 RegionWriter, Report, atomic_dir, count_export_items, export_classes,
                                 export_items, imported_region, palette_bytes, relative_stem, step,
                                 write_png)
from segstudio.io import validate

CLASS_NAMES_FILE = "class_names.txt"


def label_map_image(values: np.ndarray, colors: list[tuple[int, int, int]]) -> Image.Image:
    if values.dtype == np.uint8:
        im = Image.fromarray(values)
        im.putpalette(palette_bytes(colors))  # an L image with a palette becomes P, values kept
        return im
    return Image.fromarray(values.astype(np.uint16))


def export_labelmap(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                    progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    dtype = label_dtype(len(real))
    ign = ignore_value(dtype)
    value_of = dict(value_of)
    value_of.update({c.id: ign for c in ignore})
    colors = [c.color for c in real]
    total = count_export_items(project, statuses)
    validate.check_listable([c.name for c in real], "label maps")  # before a file is written
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            values = paint_label_map(item.regions, item.width, item.height, value_of, dtype)
            write_png(tmp / (relative_stem(item.record) + ".png"), label_map_image(values, colors))
            report.images += 1
            report.regions += len(item.regions)
        write_class_names(tmp / CLASS_NAMES_FILE, [c.name for c in real], report)
    return report


def write_class_names(path: Path, names: list[str], report: Report | None = None) -> None:
    """`_background_` then the class names, line k = value k, read back by import_labelmap as
    they were. A name with a line break or control character is refused (FormatError naming
    it, validate.check_listable): it would add or shift a line, and an escape would read back
    as another name."""
    validate.check_listable(names, "label maps")
    path.write_text("\n".join(["_background_"] + names) + "\n", encoding="utf-8")


MAX_UNNAMED_VALUES = 1024  # more values without a class name: an image or instance map, not labels


def read_label_png(path: Path, size: tuple[int, int] | None = None, allow_large: bool = False) -> np.ndarray:
    """Values of a label-map PNG: palette indices for P mode, raw values for L / I;16 / I.

    The file passes the decompression-bomb guard (imageio.open_guarded, `allow_large` its
    override), and with `size` (width, height) it is refused from its header, before any
    pixel is decoded, when it is not that size.
    """
    try:
        with imageio.open_guarded(imageio.read_bytes(path), allow_large=allow_large) as im:
            if size is not None and im.size != tuple(size):
                raise FormatError(f"label map is {im.width}x{im.height}, image is {size[0]}x{size[1]}")
            if im.mode in ("P", "L"):
                return np.array(im)  # P: indices, not colours
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.array(im).astype(np.int64)
            if im.mode == "1":
                return np.array(im).astype(np.uint8)
            raise FormatError(f"{im.mode} image: a label map must hold class values (palette or "
                              "grayscale PNG), not colours")
    except FormatError:
        raise
    except imageio.ImageDecodeError as e:
        raise FormatError(f"cannot read label map: {e}") from None
    except Exception as e:  # truncated or corrupt pixel data, out of memory  # noqa: BLE001
        raise FormatError(f"cannot read label map: {type(e).__name__}: {e}") from None


def _class_values(classes_file: Path, mapper: ClassMapper, report: Report) -> tuple[dict[int, int], LabelClass | None]:
    """{label value: class id} and the ignore class (or None) from a class list.

    A list whose first line is a background name is labelme's class_names.txt layout (what
    export writes): line k is value k, names taken as they are, so a class called `bg` or
    `# 1` cannot shift the lines after it. Any other list is read by read_class_file
    (labelme's labels.txt with `__ignore__` first, or names with colours).
    """
    value_class: dict[int, int] = {}
    ignore_cls = None
    lines = [ln.strip() for ln in validate.read_text(classes_file).split("\n")]
    lines = [ln for ln in lines if ln]
    if lines and lines[0].lower() in BACKGROUND_NAMES:
        entries: list[tuple[str, tuple[int, int, int] | None, bool]] = [(ln, None, False) for ln in lines[1:]]
    else:
        try:
            entries = [(e.name, e.color, e.ignore) for e in read_class_file(classes_file)]
        except (OSError, UnicodeDecodeError) as e:
            raise FormatError(f"cannot read class list {classes_file}: {e}") from None
    v = 1
    for raw, color, ignore in entries:
        try:
            name = validate.clean_class_name(raw)
        except ValueError as e:
            name = f"class_{v}"
            report.note(f"{Path(classes_file).name}: value {v}: {e}; imported as {name}")
        if name != raw:
            report.note(f"{Path(classes_file).name}: class {validate.brief(raw)} imported as {name!r}")
        c = mapper.get(name, color, ignore=ignore)
        assert c is not None  # ClassMapper(project) creates missing classes
        if ignore:
            ignore_cls = c
        else:
            value_class[v] = c.id
            v += 1
    return value_class, ignore_cls


def import_labelmap(project: Project, source: str | Path, classes_file: str | Path | None = None,
                    status: str | None = DONE, progress: Progress | None = None,
                    cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    if not src.is_dir():
        raise FormatError(f"{src} is not a folder of label-map PNGs")
    if classes_file is None and (src / CLASS_NAMES_FILE).exists():
        classes_file = src / CLASS_NAMES_FILE
    report = Report()
    mapper = ClassMapper(project)
    value_class: dict[int, int] = {}
    ignore_cls = None
    if classes_file is not None:
        value_class, ignore_cls = _class_values(Path(classes_file), mapper, report)
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    files = sorted(p for p in src.rglob("*.png") if not p.name.startswith("."))
    for rel, f, rec in matched_files(matcher, src, files, report, progress, cancel):
        try:
            w, h = project.image_size(rec)
            values = read_label_png(f, (w, h), project.allow_large)
            ign = 255 if values.dtype == np.uint8 else 65535
            found = [int(v) for v in np.unique(values) if v != 0]
            unnamed = [v for v in found if v not in value_class and v != ign]
            if len(unnamed) > MAX_UNNAMED_VALUES:
                raise FormatError(f"{len(unnamed)} different values without a class name: a photo or an "
                                  "instance map rather than a label map? (give the class list)")
            regions = []
            for v in found:
                if v == ign and v not in value_class:
                    if ignore_cls is None:
                        ignore_cls = mapper.get("__ignore__", ignore=True)
                    cid = ignore_cls.id  # type: ignore[union-attr]  # create=True: never None
                elif v in value_class:
                    cid = value_class[v]
                else:
                    cid = mapper.get(f"class_{v}").id  # type: ignore[union-attr]  # create=True: never None
                    value_class[v] = cid
                    report.note(f"value {v} has no name in the class list; imported as class_{v}")
                c = maskops.crop_to_content(values == v)
                if c is not None:
                    regions.append(imported_region(cid, *c))
        except (FormatError, imageio.ImageDecodeError) as e:  # one bad map; the folder goes on
            report.error(rel, str(e))
            continue
        except validate.BAD_INPUT as e:
            report.error(rel, f"{type(e).__name__}: {e}")
            continue
        writer.add(rec, regions, size=(w, h))
    return report
