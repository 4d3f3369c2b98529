"""YOLO segmentation text: one line per object, `class x1 y1 x2 y2 ...`, coordinates divided by
the image width/height, class index from 0 in the order of a class-names file.

Import takes a folder of .txt files (searched recursively) and the class names from
`--classes FILE`, or a classes.txt / data.yaml found in or above the folder. A line of exactly
4 coordinates is a YOLO detection box and is imported as a rectangle.

Export writes `images/` (copies), `labels/` (one .txt per image, an empty file for an image
without objects), `classes.txt` and `data.yaml`. A region with several parts gives one line
per part; YOLO polygons have no holes, so holes are filled (the only loss, noted in the report).
Ignore classes are not exported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from segstudio.core import maskops
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.io.common import (CancelCheck, ClassMapper, FormatError, ImageMatcher, Progress, matched_files,
                                 RegionWriter, Report, atomic_dir, copy_image, count_export_items,
                                 export_classes, export_items, imported_region, relative_stem, step)


def read_names(src: Path, classes_file: str | Path | None) -> list[str]:
    if classes_file is not None:
        p = Path(classes_file)
        if not p.exists():
            raise FormatError(f"class-names file not found: {p}")
        return _names_from(p)
    for d in (src, src.parent, src.parent.parent):
        for fname in ("classes.txt", "obj.names", "data.yaml", "dataset.yaml"):
            if (d / fname).exists():
                return _names_from(d / fname)
    raise FormatError("YOLO labels need class names: give --classes FILE (one name per line)")


def _names_from(p: Path) -> list[str]:
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix in (".yaml", ".yml"):
        return _yaml_names(text, p)
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _yaml_names(text: str, p: Path) -> list[str]:
    """The `names:` of a YOLO data.yaml (a list, an inline list, or an index: name map)."""
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", ln)
        if not m:
            continue
        rest = m.group(1).strip()
        if rest.startswith("["):
            return [s.strip().strip("'\"") for s in rest.strip("[]").split(",") if s.strip()]
        names: dict[int, str] = {}
        seq: list[str] = []
        for ln2 in lines[i + 1:]:
            if ln2 and not ln2[0].isspace():
                break
            s = ln2.strip()
            mm = re.match(r"^(\d+)\s*:\s*(.+)$", s)
            if mm:
                names[int(mm.group(1))] = mm.group(2).strip().strip("'\"")
            elif s.startswith("- "):
                seq.append(s[2:].strip().strip("'\""))
        if names:
            return [names[k] for k in sorted(names)]
        return seq
    raise FormatError(f"{p.name} has no 'names:' entry")


def import_yolo(project: Project, source: str | Path, classes_file: str | Path | None = None,
                status: str | None = DONE, progress: Progress | None = None,
                cancel: CancelCheck | None = None) -> Report:
    src = Path(source)
    if not src.is_dir():
        raise FormatError(f"{src} is not a folder of YOLO .txt labels")
    names = read_names(src, classes_file)
    mapper = ClassMapper(project)
    class_ids = [mapper.get(n).id for n in names]
    report = Report()
    matcher = ImageMatcher(project)
    writer = RegionWriter(project, status, report)
    skip = {"classes.txt", "obj.names", "README.txt"}
    files = sorted(p for p in src.rglob("*.txt") if p.name not in skip and not p.name.startswith("."))
    for rel, f, rec in matched_files(matcher, src, files, report, progress, cancel):
        try:
            w, h = project.image_size(rec)
            text = f.read_text(encoding="utf-8-sig")
        except Exception as e:
            report.errors.append((rel, str(e)))
            continue
        regions = []
        for ln_no, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                ci = int(float(parts[0]))
                coords = np.array([float(v) for v in parts[1:]], dtype=np.float64)
            except ValueError:
                report.errors.append((rel, f"line {ln_no}: not numbers"))
                continue
            if not 0 <= ci < len(class_ids):
                report.errors.append((rel, f"line {ln_no}: class {ci} not in the {len(names)} class names"))
                continue
            if coords.size == 4:  # detection box: cx cy w h
                cx, cy, bw, bh = coords
                pts = np.array([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy - bh / 2],
                                [cx + bw / 2, cy + bh / 2], [cx - bw / 2, cy + bh / 2]])
            elif coords.size >= 6 and coords.size % 2 == 0:
                pts = coords.reshape(-1, 2)
            else:
                report.errors.append((rel, f"line {ln_no}: {coords.size} coordinates (need pairs, 3 points or more)"))
                continue
            # x * width is a pixel index, as Ultralytics rasterises (cv2.fillPoly)
            px = pts * (w, h)
            pm = maskops.polygon_mask(px)
            if pm is None:
                continue
            m, box = pm
            c = maskops.crop_to_content(maskops.window(m, box[0], box[1], (0, 0, w, h)))
            if c is None:
                continue
            regions.append(imported_region(class_ids[ci], *c))
        writer.add(rec, regions)
    return report


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
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            if not copy_image(project, item.record, tmp / "images" / item.record.path, report):
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
        names = [c.name for c in real]
        (tmp / "classes.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
        yaml_names = "\n".join(f"  {i}: {_yaml_quote(n)}" for i, n in enumerate(names))
        (tmp / "data.yaml").write_text(
            f"path: .\ntrain: images\nval: images\nnames:\n{yaml_names}\n", encoding="utf-8")
    if holes:
        report.notes.append(f"{holes} regions had holes, which YOLO polygons cannot hold (filled)")
    if ignore:
        report.notes.append(f"ignore classes not exported: {', '.join(c.name for c in ignore)}")
    return report


def _yaml_quote(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z0-9_ \-]+", s) and s.strip() == s else '"' + s.replace('"', '\\"') + '"'
