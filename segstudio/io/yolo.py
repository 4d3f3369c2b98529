"""YOLO segmentation text: one line per object, `class x1 y1 x2 y2 ...`, coordinates divided by
the image width/height, class index from 0 in the order of a class-names file.

Import takes a folder of .txt files (searched recursively) and the class names from
`--classes FILE`, or a classes.txt / data.yaml found in or above the folder. A line of exactly
4 coordinates is a YOLO detection box and is imported as a rectangle. A line with NaN, an
infinity or a coordinate beyond 100 image sizes is rejected on its own (see validate.py); the
rest are drawn on a canvas cut to the image.

Export writes `images/` (copies), `labels/` (one .txt per image, an empty file for an image
without objects), `classes.txt` and `data.yaml`. A region with several parts gives one line
per part; YOLO polygons have no holes, so holes are filled (the only loss, noted in the report).
Ignore classes are not exported.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from segstudio.core import maskops
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, matched_files,
                                 RegionWriter, Report, atomic_dir, count_export_items,
                                 export_classes, export_items, imported_region, relative_stem, step)
from segstudio.io.export_names import check_export_names, stem
from segstudio.io.frame_images import write_image
from segstudio.io import validate


def read_names(src: Path, classes_file: str | Path | None, report: Report | None = None) -> list[str]:
    """Class names by index. A name with control characters has them escaped; one that cannot
    be a class name (not text, too long) becomes class_<index>, so indices never shift."""
    if classes_file is not None:
        p = Path(classes_file)
        if not p.exists():
            raise FormatError(f"class-names file not found: {p}")
        return _names_from(p, report)
    for d in (src, src.parent, src.parent.parent):
        for fname in ("classes.txt", "obj.names", "data.yaml", "dataset.yaml"):
            if (d / fname).exists():
                return _names_from(d / fname, report)
    raise FormatError("YOLO labels need class names: give --classes FILE (one name per line)")


def _names_from(p: Path, report: Report | None = None) -> list[str]:
    text = validate.read_text(p)
    if p.suffix.lower() in (".yaml", ".yml"):
        raw = _yaml_names(text, p)
    else:  # one name a line; only "\n" ends a line (readers of .names files split there)
        raw = [ln.strip() for ln in text.split("\n") if ln.strip()]
    names = []
    for i, n in enumerate(raw):
        try:
            name = validate.clean_class_name(n)
        except ValueError as e:
            name = f"class_{i}"
            if report is not None:
                report.note(f"{p.name}: class {i}: {e}; imported as {name}")
        else:
            if name != n and report is not None:
                report.note(f"{p.name}: class {i} {validate.brief(n)} imported as {name!r}")
        names.append(name)
    return names


MAX_YAML_INDEX = 100_000  # `names: {999999999: x}` must not become a list that long


def _yaml_names(text: str, p: Path) -> list[str]:
    """The `names:` of a YOLO data.yaml (a list, an inline list, or an index: name map)."""
    lines = text.split("\n")
    for i, ln in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", ln.rstrip("\r"))
        if not m:
            continue
        rest = m.group(1).strip()
        if rest.startswith("["):
            items = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^,\[\]]+', rest.rsplit("]", 1)[0][1:])
            return [n for n in (_yaml_scalar(t) for t in items) if n]
        names: dict[int, str] = {}
        seq: list[str] = []
        for ln2 in lines[i + 1:]:
            if ln2.strip() and not ln2[0].isspace() and not ln2.startswith("- "):
                break
            s = ln2.strip()
            mm = re.match(r"^(\d+)\s*:\s*(.+)$", s)
            if mm:
                names[int(mm.group(1))] = _yaml_scalar(mm.group(2))
            elif s.startswith("- "):
                seq.append(_yaml_scalar(s[2:]))
        if names:
            top = max(names)
            if top > MAX_YAML_INDEX:
                raise FormatError(f"{p.name}: class index {top} in 'names:' is beyond any dataset")
            return [names.get(k, f"class_{k}") for k in range(top + 1)]
        return seq
    raise FormatError(f"{p.name} has no 'names:' entry")


_YAML_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
                 "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
                 "_": "\xa0", "L": "\u2028", "P": "\u2029"}


def _yaml_unescape(m: re.Match) -> str:
    e = m.group(1)
    if len(e) > 1:  # \xXX, \uXXXX, \UXXXXXXXX
        try:
            return chr(int(e[1:], 16))
        except ValueError:
            return "\ufffd"
    return _YAML_ESCAPES.get(e, e)


def _yaml_scalar(s: str) -> str:
    """A YAML scalar as written in a names list: "double quoted" with escapes, 'single
    quoted', or plain (a trailing # comment dropped)."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", _yaml_unescape, s[1:-1])
    if len(s) >= 2 and s[0] == s[-1] == "'":
        return s[1:-1].replace("''", "'")
    return re.sub(r"\s+#.*$", "", s)


def import_yolo(project: Project, source: str | Path, classes_file: str | Path | None = None,
                status: str | None = DONE, progress: Progress | None = None,
                cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    if not src.is_dir():
        raise FormatError(f"{src} is not a folder of YOLO .txt labels")
    report = Report()
    names = read_names(src, classes_file, report)
    mapper = ClassMapper(project)
    class_ids = [mapper.get(n).id for n in names]  # type: ignore[union-attr]  # create=True: never None
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    skip = {"classes.txt", "obj.names", "README.txt"}
    files = sorted(p for p in src.rglob("*.txt") if p.name not in skip and not p.name.startswith("."))
    for rel, f, rec in matched_files(matcher, src, files, report, progress, cancel):
        try:
            w, h = project.image_size(rec)
            text = validate.read_text(f)
        except Exception as e:  # any error becomes this file's message; the import goes on  # noqa: BLE001
            report.error(rel, str(e))
            continue
        regions, rejected = [], 0
        for ln_no, line in enumerate(text.split("\n"), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                r = _line_region(parts, w, h, class_ids)
            except validate.BAD_INPUT as e:
                report.error(rel, f"line {ln_no}: {e}")
                rejected += 1
                continue
            if r is None:
                report.note(f"{rel}: line {ln_no} has no pixels inside the image")
                continue
            regions.append(r)
        writer.add(rec, regions, rejected=rejected, size=(w, h))
    return report


def _line_region(parts: list[str], w: int, h: int, class_ids: list[int]):
    """The region of one label line, None when it covers no pixel of the image; ValueError
    when the line is not a valid object (NaN, infinity, absurd coordinates included)."""
    try:
        values = [float(v) for v in parts]  # float() also takes 'nan', 'inf' and '1e999'
    except ValueError:
        raise ValueError("not numbers") from None
    ci = values[0]
    if not math.isfinite(ci) or not 0 <= ci < len(class_ids):
        raise ValueError(f"class {parts[0][:20]!r} not in the {len(class_ids)} class names")
    # normalised: 100 stands for 100 image sizes, as maskops.coord_limit
    coords = maskops.finite_points(values[1:], 100.0, "coordinates")
    if coords.size == 4:  # detection box: cx cy w h
        cx, cy, bw, bh = coords
        pts = np.array([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy - bh / 2],
                        [cx + bw / 2, cy + bh / 2], [cx - bw / 2, cy + bh / 2]])
    elif coords.size >= 6 and coords.size % 2 == 0:
        pts = coords.reshape(-1, 2)
    else:
        raise ValueError(f"{coords.size} coordinates (need pairs, 3 points or more)")
    # x * width is a pixel index, as Ultralytics rasterises (cv2.fillPoly); drawn on a canvas
    # cut to the image, so memory follows the image whatever the coordinates
    pm = maskops.polygon_mask(pts * (w, h), clip=(0, 0, w, h))
    if pm is None:
        return None
    m, box = pm
    c = maskops.crop_to_content(m, box[0], box[1])
    return None if c is None else imported_region(class_ids[int(ci)], *c)


def region_lines(r, class_index: int, width: int, height: int) -> tuple[list[str], bool]:
    """YOLO lines for a region (one per part); the flag says whether holes were filled."""
    lines = []
    for c in maskops.outer_contours(r.mask, r.x, r.y):
        if len(c) < 3:
            # a 1- or 2-pixel part: write its box as a 4-point polygon
            x0, y0 = c.min(axis=0)
            x1, y1 = c.max(axis=0)
            c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        norm = c / (width, height)
        lines.append(f"{class_index} " + " ".join(f"{v:.6f}" for v in norm.reshape(-1)))
    return lines, maskops.count_holes(r.mask) > 0


def export_yolo(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
                progress: Progress | None = None, cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    total = count_export_items(project, statuses)
    holes = 0
    validate.check_listable([c.name for c in real], "YOLO")  # classes.txt, data.yaml: before a file is written
    # labels/<stem>.txt beside images/<path>: readers pair them by stem (images that clash by path clash here too)
    check_export_names(project, statuses, "yolo", lambda p: ["labels/" + stem(p) + ".txt"])
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            if write_image(project, item.record, tmp / "images", report) is None:  # a frame: decoded, as PNG
                continue
            lines = []
            for r in sorted(item.regions, key=lambda r: (r.z, r.id)):
                v = value_of.get(r.class_id)
                if v is None:
                    continue
                ls, had_holes = region_lines(r, v - 1, item.width, item.height)
                holes += had_holes
                lines.extend(ls)
                report.regions += 1
            lp = tmp / "labels" / (relative_stem(item.record) + ".txt")
            lp.parent.mkdir(parents=True, exist_ok=True)
            lp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
            report.images += 1
        write_class_files(tmp, [c.name for c in real], report)
    if holes:
        report.notes.append(f"{holes} regions had holes, which YOLO polygons cannot hold (filled)")
    if ignore:
        report.notes.append(f"ignore classes not exported: {', '.join(c.name for c in ignore)}")
    return report


def write_class_files(folder: Path, names: list[str], report: Report) -> None:
    """classes.txt (one name a line) and data.yaml (names as a YAML map), both read back by
    read_names as they were. A name with a line break or control character is refused
    (FormatError naming it, validate.check_listable): it would add, split or shift a line."""
    validate.check_listable(names, "YOLO")
    safe = names
    (folder / "classes.txt").write_text("\n".join(safe) + "\n", encoding="utf-8")
    yaml_names = "\n".join(f"  {i}: {_yaml_quote(n)}" for i, n in enumerate(safe))
    # no `path:` key: Ultralytics then takes train/val relative to this file's folder, wherever
    # the export is moved; a relative `path` it resolves against the working directory or its
    # own datasets folder, an absolute one breaks when the folder moves
    (folder / "data.yaml").write_text(
        "# train and val are relative to this file's folder (no `path:` key, so the dataset can move)\n"
        f"train: images\nval: images\nnc: {len(safe)}\nnames:\n{yaml_names}\n", encoding="utf-8")


_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}


def _yaml_quote(s: str) -> str:
    """A name as a YAML scalar that reads back as that string: plain when it is a simple word
    YAML cannot take for anything else, else double-quoted with backslash and quote escaped."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ \-]*", s) and s.strip() == s and s.lower() not in _YAML_WORDS:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
