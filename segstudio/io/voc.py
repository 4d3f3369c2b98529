"""PASCAL VOC segmentation folder layout (export):

    JPEGImages/<name>.jpg           the images (JPEG files copied; others encoded as JPEG q95)
    SegmentationClass/<name>.png    class values, palette PNG (see labelmap.py)
    SegmentationObject/<name>.png   instance ids (see instancemap.py)
    ImageSets/Segmentation/{train,val,trainval}.txt
    class_names.txt

VOC is flat: an image in a subfolder is named with '__' for each '/'. The train/val split is
by a hash of the image path (stable when images are added), `val_fraction` of them in val.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from segstudio.core import imageio
from segstudio.core.labelmap import ignore_value, label_dtype, paint_label_map
from segstudio.core.project import Project
from segstudio.io import validate
from segstudio.io.common import (CancelCheck, Progress, Report, atomic_dir, copy_image, count_export_items,
                                 export_classes, export_items, export_paths, step, write_png)
from segstudio.io.export_names import check_export_names
from segstudio.io.instancemap import instance_map, instance_png
from segstudio.io.labelmap import label_map_image, write_class_names


def voc_name(rel_path: str) -> str:
    return os.path.splitext(rel_path)[0].replace("/", "__")


def in_val(rel_path: str, val_fraction: float) -> bool:
    h = int(hashlib.md5(rel_path.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < val_fraction


def export_voc(project: Project, out: str | Path, statuses: Sequence[str] | None = None,
               val_fraction: float = 0.2, progress: Progress | None = None,
               cancel: CancelCheck | None = None) -> Report:
    report = Report(out=str(out))
    real, value_of, ignore = export_classes(project)
    dtype = label_dtype(len(real))
    value_of = dict(value_of)
    value_of.update({c.id: ignore_value(dtype) for c in ignore})
    ignore_ids = {c.id for c in ignore}
    colors = [c.color for c in real]
    splits: dict[str, list[str]] = {"train": [], "val": []}
    total = count_export_items(project, statuses)
    validate.check_listable([c.name for c in real], "VOC")  # class_names.txt: before a file is written
    validate.check_listable_images(export_paths(project, statuses), "VOC", "ImageSets/Segmentation/*.txt")
    # one flat name per image (JPEGImages, SegmentationClass/Object, the lists): sub/x and sub__x meet
    check_export_names(project, statuses, "voc", lambda p: ["JPEGImages/" + voc_name(p) + ".jpg"])
    with atomic_dir(out, project) as tmp:
        for k, item in enumerate(export_items(project, statuses, report)):
            step(progress, cancel, k, total, item.record.path)
            name = voc_name(item.record.path)
            dst = tmp / "JPEGImages" / (name + ".jpg")
            if item.record.path.lower().endswith((".jpg", ".jpeg")):
                if not copy_image(project, item.record, dst, report):
                    continue
            else:
                try:
                    pixels = project.load_image(item.record)
                except imageio.ImageDecodeError as e:  # stored on the image by load_image
                    report.left_out.append((item.record.path, str(e)))
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(imageio.to_rgb_u8(pixels)).save(dst, quality=95)
            cls_map = paint_label_map(item.regions, item.width, item.height, value_of, dtype)
            write_png(tmp / "SegmentationClass" / (name + ".png"), label_map_image(cls_map, colors))
            ins, keep = instance_map(item.regions, item.width, item.height, ignore_ids)
            write_png(tmp / "SegmentationObject" / (name + ".png"), instance_png(ins))
            splits["val" if in_val(item.record.path, val_fraction) else "train"].append(name)
            report.images += 1
            report.regions += len(item.regions)
        sets = tmp / "ImageSets" / "Segmentation"
        sets.mkdir(parents=True, exist_ok=True)
        for split, names in splits.items():
            (sets / f"{split}.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
        (sets / "trainval.txt").write_text("".join(n + "\n" for n in sorted(splits["train"] + splits["val"])),
                                           encoding="utf-8")
        write_class_names(tmp / "class_names.txt", [c.name for c in real])
    report.notes.append(f"split: {len(splits['train'])} train, {len(splits['val'])} val")
    return report
