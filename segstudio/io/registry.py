"""Format names as the command line and the GUI's dialogs offer them.

The format modules are imported when a format runs, so that reading the names (to build the
command line's options) costs nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from segstudio.core.errors import BadValue
from segstudio.core.records import DONE
from segstudio.io.bridge_formats import BRIDGE_EXPORT, BRIDGE_IMPORT, bridge_available

log = logging.getLogger(__name__)

IMPORT_FORMATS = {
    "coco": ("COCO instances JSON (polygons or RLE)", "file"),
    "labelme": ("Folder of labelme JSON files", "folder"),
    "labelmap": ("Folder of PNG label maps (+ class list)", "folder"),
    "yolo": ("Folder of YOLO-seg .txt labels (+ class names)", "folder"),
}
EXPORT_FORMATS = {
    "coco": "COCO instances JSON",
    "labelmap": "PNG label maps (class per pixel)",
    "instancemap": "PNG instance-id maps",
    "labelme": "labelme JSON per image",
    "yolo": "YOLO segmentation dataset",
    "voc": "PASCAL VOC folder layout",
}
NATIVE_IMPORT, NATIVE_EXPORT = tuple(IMPORT_FORMATS), tuple(EXPORT_FORMATS)
# the rest through datumaro (an optional extra): always accepted by name, so that without the
# extra the user hears which one to install; offered in the dialogs only when it is there
IMPORT_FORMATS.update({k: (f"{d} [datumaro]", "folder") for k, (_, d) in BRIDGE_IMPORT.items()})
EXPORT_FORMATS.update({k: f"{d} [datumaro]" for k, (_, d) in BRIDGE_EXPORT.items() if k not in EXPORT_FORMATS})


def offered_import_formats() -> dict:
    """The import formats a dialog lists: the native ones, and datumaro's when it is installed."""
    return {k: v for k, v in IMPORT_FORMATS.items() if k in NATIVE_IMPORT or bridge_available()}


def offered_export_formats() -> dict:
    return {k: v for k, v in EXPORT_FORMATS.items() if k in NATIVE_EXPORT or bridge_available()}


def run_import(fmt: str, project, source, classes_file=None, status=DONE, progress=None, cancel=None,
               binary_class=None):
    """`binary_class`: label maps only, what 255 becomes in 0/255 masks (io.labelmap.import_labelmap)."""
    from segstudio.io.coco import import_coco
    from segstudio.io.labelmap import import_labelmap
    from segstudio.io.labelme import import_labelme
    from segstudio.io.yolo import import_yolo
    if fmt == "coco":
        return import_coco(project, source, status, progress, cancel)
    if fmt == "labelme":
        return import_labelme(project, source, status, progress, cancel)
    if fmt == "labelmap":
        return import_labelmap(project, source, classes_file, status, progress, cancel, binary_class)
    if fmt == "yolo":
        return import_yolo(project, source, classes_file, status, progress, cancel)
    if fmt in BRIDGE_IMPORT:
        from segstudio.io.datumaro_bridge import import_via_datumaro
        return import_via_datumaro(fmt, project, source, status, progress, cancel)
    raise BadValue(f"unknown import format {fmt!r}; use {', '.join(IMPORT_FORMATS)}")


def run_export(fmt: str, project, out, statuses=None, polygons=False, progress=None, cancel=None):
    """Export; the report carries what recovering a killed export's leftovers did (restored,
    removed, kept), which the CLI prints and the window's dialog shows."""
    from segstudio.io.export_target import collect_messages
    with collect_messages() as told:
        try:
            rep = _export(fmt, project, out, statuses, polygons, progress, cancel)
        except BaseException:  # no report: what recovery did still reaches the person, as the log
            for m in told.notes + told.warnings:
                log.warning("%s", m)
            raise
    for n in told.notes:
        rep.note(n)
    for w in told.warnings:
        rep.warn(w)
    return rep


def _export(fmt: str, project, out, statuses, polygons, progress, cancel):
    from segstudio.io.coco import export_coco
    from segstudio.io.instancemap import export_instancemap
    from segstudio.io.labelmap import export_labelmap
    from segstudio.io.labelme import export_labelme
    from segstudio.io.voc import export_voc
    from segstudio.io.yolo import export_yolo
    if fmt == "coco":
        return export_coco(project, out, statuses, polygons, progress, cancel)
    exporters: dict[str, Callable[..., Any]] = {
        "labelmap": export_labelmap, "instancemap": export_instancemap, "labelme": export_labelme,
        "yolo": export_yolo, "voc": export_voc}
    fn = exporters.get(fmt)
    if fn is None and fmt in BRIDGE_EXPORT:
        from segstudio.io.datumaro_bridge import export_via_datumaro
        return export_via_datumaro(fmt, project, out, statuses, progress, cancel)
    if fn is None:
        raise BadValue(f"unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    return fn(project, out, statuses, progress=progress, cancel=cancel)


def check_export_target(fmt: str, project, out) -> Path:
    """The path an export would write, checked before any work (ExportTargetError says why not).

    The export itself checks again; this lets the CLI and the dialog refuse at once.
    """
    from segstudio.io.coco import check_coco_target
    from segstudio.io.export_target import check_dir_target
    if fmt == "coco":
        return check_coco_target(out, project)
    if fmt not in EXPORT_FORMATS:
        raise BadValue(f"unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    check_dir_target(out, project)
    return Path(out)
