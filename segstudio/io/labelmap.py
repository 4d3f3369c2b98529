"""PNG label maps: one PNG per image, the class value of each pixel.

Values: 0 background; classes 1..N in class order; ignore pixels (regions of an ignore class)
255 in 8-bit maps and 65535 in 16-bit maps. Maps are `P` mode PNGs with the class colours as
palette while the classes fit in 8 bits (N <= 254), 16-bit grayscale (`I;16`) beyond. A
`class_names.txt` beside them lists `_background_` then the classes, line k = value k (the
layout labelme writes). Overlapping regions: the higher z wins.

Import reads palette PNGs as indices (never as colours), 8- and 16-bit grayscale as values,
each through the decompression-bomb guard and checked against its image's size from the header.
A folder of maps that hold only 0 and 255 is a folder of binary masks: 255 becomes a class (the
one name of a class list, the caller's choice, or BINARY_DEFAULT), with a warning; elsewhere
255 is ignore, and the report counts those pixels.
A class name with a line break or control character is refused at export, naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from segstudio.core import imageio, maskops
from segstudio.core.classes import BACKGROUND_NAMES, IGNORE_NAMES, LabelClass, read_class_file
from segstudio.core.labelmap import ignore_value, label_dtype, paint_label_map
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.common import (CancelCheck, Cancelled, ClassClash, ClassMapper, FormatError, ImageMatcher,
                                 Progress, matched_files, RegionWriter, Report, atomic_dir, count_export_items,
                                 export_classes, export_items, imported_region, palette_bytes, relative_stem,
                                 step, write_png)
from segstudio.io.export_names import check_export_names, stem
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
    check_export_names(project, statuses, "labelmap", lambda p: [stem(p) + ".png"])
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


@dataclass
class _ClassList:
    """What a class list says: {label value: class id}, its ignore entry, its real class names."""
    values: dict[int, int] = field(default_factory=dict)
    ignore: LabelClass | None = None
    names: list[str] = field(default_factory=list)


def _class_values(classes_file: Path, mapper: ClassMapper, report: Report) -> _ClassList:
    """{label value: class id}, the ignore class (or None) and the real names from a class list.

    A list whose first line is a background name is labelme's class_names.txt layout (what
    export writes): line k is value k, names taken as they are, so a class called `bg` or
    `# 1` cannot shift the lines after it. Any other list is read by read_class_file
    (labelme's labels.txt with `__ignore__` first, or names with colours).
    """
    out = _ClassList()
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
        try:
            c = mapper.get(name, color, ignore=ignore)
        except ClassClash as e:  # the whole list is refused before any image is touched
            raise ClassClash(f"class list {Path(classes_file).name}: {e}") from None
        assert c is not None  # ClassMapper(project) creates missing classes
        if ignore:
            out.ignore = c
        else:
            out.values[v] = c.id
            out.names.append(c.name)
            v += 1
    return out


# A label map holding only 0 and 255 is a binary mask (ISBI, most hand-made masks), not a
# label map whose objects are all "ignore": its 255 is imported as a class. Which class:
BINARY_DEFAULT = "foreground"  # when nothing names it (no class list, no answer)
BinaryClass = Callable[[str], "str | None"]  # asked with the first mask's name: a class name,
# a name of IGNORE_NAMES (255 stays ignore), or None (cancel the import)


class BadBinaryClass(FormatError):
    """The name given for the masks' 255 cannot be a class name."""


class _Binary:
    """Decides, once per import, what 255 means in maps that hold only 0 and 255.

    In a folder whose maps use other values as well (a VOC-style label map), 255 is ignore in
    all of them, the 0/255 ones included; such a folder is told apart by reading the maps'
    values ahead (it stops at the first map with another value, so a label-map folder costs one
    read more at most, and a folder of binary masks is read twice).
    """

    def __init__(self, files: list[Path], classes: _ClassList, choice: str | BinaryClass | None,
                 mapper: ClassMapper, report: Report, peek: Callable[[Path], "np.ndarray | None"],
                 cancel: CancelCheck | None):
        """`peek(f)`: the values of map `f` read as the import reads them (matched to its image,
        its header checked against the image's size first), or None for a map the import skips."""
        self.files, self.classes, self.choice = files, classes, choice
        self.mapper, self.report, self.peek, self.cancel = mapper, report, peek, cancel
        self.other_values_seen = False
        self.read: set[Path] = set()  # maps whose values the import has seen
        self.folder_binary: bool | None = None
        self.cls: LabelClass | None = None  # the class 255 becomes; None: ignore
        self.why = ""
        self.masks: list[str] = []  # maps whose 255 became `cls`

    def saw(self, f: Path, found: list[int], ign: int) -> None:
        self.read.add(f)
        if any(v != ign for v in found):
            self.other_values_seen = True

    def applies(self, found: list[int], ign: int, rel: str) -> bool:
        """Whether this map's `ign` value is a binary mask's class (not ignore)."""
        if found != [ign] or ign in self.classes.values or self.classes.ignore is not None:
            return False
        if len(self.classes.names) > 1:  # a multi-class list: a label map, whose 255 is ignore
            return False
        if self.folder_binary is None:
            self.folder_binary = not self.other_values_seen and not self._other_maps_hold_other_values()
            if self.folder_binary:
                self._decide(rel)
        return self.folder_binary and self.cls is not None

    def _other_maps_hold_other_values(self) -> bool:
        for f in self.files:
            if f in self.read:
                continue
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            try:
                values = self.peek(f)
            except (FormatError, imageio.ImageDecodeError, *validate.BAD_INPUT):
                continue  # its own error comes when the import reaches it
            if values is None:
                continue
            ign = 255 if values.dtype == np.uint8 else 65535
            if any(int(v) not in (0, ign) for v in np.unique(values)):
                return True
        return False

    def _decide(self, rel: str) -> None:
        name: str | None
        if isinstance(self.choice, str):
            name, self.why = self.choice, "as chosen"
        elif self.classes.names:
            name, self.why = self.classes.names[0], "named by the class list"
        elif self.choice is not None:
            name = self.choice(rel)
            if name is None:
                raise Cancelled()
            self.why = "as chosen"
        else:
            name = BINARY_DEFAULT
            self.why = ("no class list names it: give a class list of one line to name it, or rename the "
                        "class; a list with an __ignore__ line keeps 255 as ignore")
        name = name.strip()
        if not name:
            raise BadBinaryClass("no class name given for the masks' 255")
        if name.lower() in IGNORE_NAMES:
            self.cls = None  # asked for ignore: 255 stays ignore (and is counted as such)
            return
        try:
            name = validate.clean_class_name(name)
        except ValueError as e:
            raise BadBinaryClass(f"class name for the masks' 255: {e}") from None
        self.cls = self.mapper.get(name)

    def finish(self) -> None:
        if self.masks and self.cls is not None:
            n = len(self.masks)
            self.report.warn(f"{n} label map{'s' * (n > 1)} hold{'s' * (n == 1)} only 0 and 255 (binary "
                             f"mask{'s' * (n > 1)}, e.g. {self.masks[0]}): 255 imported as class "
                             f"{self.cls.name!r}, not as ignore ({self.why})")


def import_labelmap(project: Project, source: str | Path, classes_file: str | Path | None = None,
                    status: str | None = DONE, progress: Progress | None = None,
                    cancel: CancelCheck | None = None, binary_class: str | BinaryClass | None = None) -> Report:
    """Import a folder of label-map PNGs (values as in this module's docstring).

    `binary_class`: what 255 becomes in maps that hold only 0 and 255 (binary masks), when the
    class list does not say (a one-line list names it): a class name, or a function asked once
    with the first such map's name (the window's question). Without either: class
    BINARY_DEFAULT. Every such choice is a warning in the report, and the report counts the
    pixels that became ignore.
    """
    src = Path(source)
    if not src.is_dir():
        raise FormatError(f"{src} is not a folder of label-map PNGs")
    if classes_file is None and (src / CLASS_NAMES_FILE).exists():
        classes_file = src / CLASS_NAMES_FILE
    report = Report()
    mapper = ClassMapper(project)
    classes = _ClassList()
    if classes_file is not None:
        classes = _class_values(Path(classes_file), mapper, report)
    value_class = dict(classes.values)
    ignore_cls = classes.ignore
    ignored: dict[str, int] = {}  # map -> its pixels that became ignore
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    files = sorted(p for p in src.rglob("*.png") if not p.name.startswith("."))

    def peek(f: Path) -> np.ndarray | None:
        rec = matcher.match_stem(os.path.splitext(f.relative_to(src).as_posix())[0])
        return None if rec is None else read_label_png(f, project.image_size(rec), project.allow_large)

    binary = _Binary(files, classes, binary_class, mapper, report, peek, cancel)
    for rel, f, rec in matched_files(matcher, src, files, report, progress, cancel):
        try:
            w, h = project.image_size(rec)
            values = read_label_png(f, (w, h), project.allow_large)
            ign = 255 if values.dtype == np.uint8 else 65535
            found = [int(v) for v in np.unique(values) if v != 0]
            binary.saw(f, found, ign)
            unnamed = [v for v in found if v not in value_class and v != ign]
            if len(unnamed) > MAX_UNNAMED_VALUES:
                raise FormatError(f"{len(unnamed)} different values without a class name: a photo or an "
                                  "instance map rather than a label map? (give the class list)")
            as_class = binary.applies(found, ign, rel)
            regions = []
            n_ignored = 0
            for v in found:
                if v == ign and as_class:
                    assert binary.cls is not None  # applies() is True only with a class
                    cid = binary.cls.id
                    binary.masks.append(rel)
                elif v == ign and v not in value_class:
                    if ignore_cls is None:
                        ignore_cls = mapper.get("__ignore__", ignore=True)
                    cid = ignore_cls.id  # type: ignore[union-attr]  # create=True: never None
                    n_ignored = int(np.count_nonzero(values == v))
                elif v in value_class:
                    cid = value_class[v]
                else:
                    cid = mapper.get(f"class_{v}").id  # type: ignore[union-attr]  # create=True: never None
                    value_class[v] = cid
                    report.note(f"value {v} has no name in the class list; imported as class_{v}")
                c = maskops.crop_to_content(values == v)
                if c is not None:
                    regions.append(imported_region(cid, *c))
        except (ClassClash, BadBinaryClass):  # about the project's classes, not this map: the import stops
            raise
        except (FormatError, imageio.ImageDecodeError) as e:  # one bad map; the folder goes on
            report.error(rel, str(e))
            continue
        except validate.BAD_INPUT as e:
            report.error(rel, f"{type(e).__name__}: {e}")
            continue
        writer.add(rec, regions, size=(w, h))
        if n_ignored:
            ignored[rel] = n_ignored
    binary.finish()
    if ignored:
        report.ignore_pixels = sum(ignored.values())
        k = len(ignored)
        assert ignore_cls is not None  # ignored pixels went to it
        report.note(f"{report.ignore_pixels:,} pixels in {k} map{'s' * (k > 1)} (e.g. {next(iter(ignored))}) "
                    f"imported as ignore, class {ignore_cls.name!r}: training skips them and exports leave "
                    "them out (the Classes panel can switch “ignore” off)")
    return report
