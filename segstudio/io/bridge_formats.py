"""The segmentation formats segstudio reads and writes through datumaro (the dataset library
CVAT itself uses), by the names the command line and the dialogs offer. Reading this table
imports nothing: datumaro is an optional extra (`pip install -e ".[formats]"`).

Each entry: our name -> (datumaro's format name, what it is, what segstudio gets from it).
"""

from __future__ import annotations

import importlib.util

EXTRA = 'pip install -e ".[formats]"  (or: pip install "datumaro>=1.13,<1.14")'

BRIDGE_IMPORT: dict[str, tuple[str, str]] = {
    "cvat": ("cvat", "CVAT for images 1.1 XML (masks, polygons)"),
    "cityscapes": ("cityscapes", "Cityscapes gtFine (label and instance PNGs)"),
    "ade20k": ("ade20k2020", "ADE20K 2021 (instance masks, parts, polygons)"),
    "ade20k2017": ("ade20k2017", "ADE20K 2017 (class and part masks)"),
    "camvid": ("camvid", "CamVid (class masks)"),
    "kitti_segmentation": ("kitti_segmentation", "KITTI semantic / instance segmentation"),
    "mapillary_vistas": ("mapillary_vistas", "Mapillary Vistas (panoptic masks)"),
    "open_images": ("open_images", "Open Images segmentation masks"),
    "segment_anything": ("segment_anything", "SA-1B, Segment Anything's JSON (RLE, no classes)"),
    "coco_panoptic": ("coco_panoptic", "COCO panoptic (PNG + JSON)"),
    "voc_masks": ("voc", "PASCAL VOC SegmentationObject / SegmentationClass"),
    "labelme_xml": ("label_me", "LabelMe XML (MIT LabelMe; not labelme JSON)"),
    "mots": ("mots", "MOTS PNG instance masks"),
    "semantic_masks": ("common_semantic_segmentation", "folder of class-index masks + dataset_meta.json"),
    "datumaro": ("datumaro", "datumaro's own JSON"),
}

BRIDGE_EXPORT: dict[str, tuple[str, str]] = {
    "cvat": ("cvat", "CVAT for images 1.1 XML (each region a mask)"),
    "cityscapes": ("cityscapes", "Cityscapes gtFine (label, instance and colour PNGs)"),
    "camvid": ("camvid", "CamVid (class masks)"),
    "kitti_segmentation": ("kitti_segmentation", "KITTI segmentation (semantic + instance PNGs)"),
    "open_images": ("open_images", "Open Images segmentation masks"),
    "segment_anything": ("segment_anything", "SA-1B JSON per image (RLE; classes are not kept)"),
    "coco_panoptic": ("coco_panoptic", "COCO panoptic (PNG + JSON)"),
    "labelme_xml": ("label_me", "LabelMe XML (MIT LabelMe)"),
    "datumaro": ("datumaro", "datumaro's own JSON (lossless; CVAT imports it)"),
    "mots": ("mots_png", "MOTS PNG per frame (objects keep their track across a sequence's frames)"),
}


def bridge_available() -> bool:
    """Whether datumaro can be imported (without importing it: that takes a second)."""
    try:
        return importlib.util.find_spec("datumaro") is not None
    except (ImportError, ValueError):
        return False
