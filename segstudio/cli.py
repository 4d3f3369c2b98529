"""Command line: `segstudio [FOLDER]` opens the window; subcommands work headless.

    segstudio info FOLDER [--json]
    segstudio check FOLDER [--json]
    segstudio import FOLDER --format coco|labelme|labelmap|yolo SOURCE [--classes FILE]
    segstudio export FOLDER --format coco|labelmap|instancemap|labelme|yolo|voc --out PATH
    segstudio predict FOLDER --model unet|maskrcnn ...
    segstudio train FOLDER --model unet|maskrcnn --out FILE ...
    segstudio evaluate FOLDER --weights FILE ...

Every command takes --project PATH to keep the store outside the image folder. Bad input
exits non-zero with a one-line error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from segstudio import __version__

COMMANDS = ("info", "check", "import", "export", "predict", "train", "evaluate")


class CliError(Exception):
    pass


def _add_common(p: argparse.ArgumentParser, top: bool = False) -> None:
    d = None if top else argparse.SUPPRESS
    p.add_argument("--project", metavar="PATH", default=d,
                   help="project database (default FOLDER/.segstudio/project.db)")
    p.add_argument("--allow-large", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="decode images over the decompression-bomb limit (trusted files only)")
    p.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segstudio", description="Annotate and segment image folders.")
    p.add_argument("--version", action="version", version=f"segstudio {__version__}")
    _add_common(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="images by status, classes, regions per class, errors")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _add_common(s)

    s = sub.add_parser("check", help="decode every image in full; list (and remember) the unreadable ones")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--workers", type=int, default=None, metavar="N", help="decoding threads (default: cores)")
    _add_common(s)

    s = sub.add_parser("import", help="import annotations from a dataset")
    s.add_argument("folder")
    s.add_argument("--format", required=True, choices=["coco", "labelme", "labelmap", "yolo"])
    s.add_argument("source", help="COCO JSON, or a folder of labelme JSONs / label-map PNGs / YOLO txt")
    s.add_argument("--classes", metavar="FILE", help="class names (label maps, YOLO)")
    s.add_argument("--status", default="done", help="status of the images that receive annotations (default done)")
    _add_common(s)

    s = sub.add_parser("export", help="export a dataset")
    s.add_argument("folder")
    s.add_argument("--format", required=True, choices=["coco", "labelmap", "instancemap", "labelme", "yolo", "voc"])
    s.add_argument("--out", required=True, metavar="PATH")
    s.add_argument("--polygons", action="store_true", help="COCO: polygons instead of RLE where faithful")
    s.add_argument("--status", metavar="S[,S...]", default="done",
                   help="images with these statuses, or 'all' (default done: only reviewed images, since "
                        "new, predicted and in-progress images may hold uncorrected model output)")
    _add_common(s)

    from segstudio import cli_models  # the model commands live beside, to keep this file short
    cli_models.add_parsers(sub, _add_common)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    first = _first_positional(argv)
    if first not in COMMANDS:
        gp = argparse.ArgumentParser(prog="segstudio", description="Open the annotation window.")
        gp.add_argument("--version", action="version", version=f"segstudio {__version__}")
        gp.add_argument("folder", nargs="?", help="image folder (default: the bundled samples)")
        gp.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit")
        gp.add_argument("--image", metavar="NAME", help="with --screenshot: the image to show")
        _add_common(gp, top=True)
        args = gp.parse_args(argv)
        _logging(args.verbose)
        try:
            from segstudio.app import run_gui
        except ImportError as e:
            print(f"segstudio: error: the window needs PySide6 ({e})", file=sys.stderr)
            return 2
        return run_gui(args)
    args = parser.parse_args(argv)
    _logging(args.verbose)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("\nsegstudio: cancelled", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user; the traceback with -v
        if args.verbose:
            raise
        print(f"segstudio: error: {_one_line(e)}", file=sys.stderr)
        return 2


_VALUE_OPTIONS = {"--project", "--screenshot", "--image"}


def _first_positional(argv: list[str]) -> str | None:
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _VALUE_OPTIONS:
            skip = True
            continue
        if not a.startswith("-"):
            return a
    return None


def _one_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    text = msg[0] if msg else type(e).__name__
    known = ("ProjectError", "StoreError", "FormatError", "CliError", "ImageDecodeError", "CheckpointError",
             "ValueError", "DeviceError", "ExportTargetError")
    return text if type(e).__name__ in known else f"{type(e).__name__}: {text}"


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def open_project(args, scan: bool = True):
    from segstudio.core.project import Project
    p = Project.open(args.folder, getattr(args, "project", None), scan=scan)
    if getattr(args, "allow_large", False):
        p.allow_large = True
    return p


def progress_printer(label: str):
    from segstudio.core.progress import ProgressBar
    state = {"bar": None}

    def cb(done: int, total: int, item: str = "") -> None:
        if state["bar"] is None:
            if total < 20:
                state["bar"] = False
                return
            state["bar"] = ProgressBar(total, label)
        if state["bar"]:
            state["bar"].n = done
            state["bar"].update(0)

    def close() -> None:
        if state["bar"]:
            state["bar"].close()
    cb.close = close
    return cb


def _dispatch(args) -> int:
    if args.command == "info":
        return cmd_info(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "import":
        return cmd_import(args)
    if args.command == "export":
        return cmd_export(args)
    from segstudio import cli_models
    return cli_models.dispatch(args)


def info_dict(project) -> dict:
    s = project.store
    classes = s.classes()
    per_class = s.regions_per_class()
    area = s.area_per_class()
    total_area = sum(area.values()) or 1
    return {
        "folder": str(project.folder),
        "project": str(s.db_path),
        "images": s.image_count(),
        "status": s.status_counts(),
        "missing": s.missing_count(),
        "classes": [{"id": c.id, "name": c.name, "color": c.hex_color, "ignore": c.ignore,
                     "regions": per_class.get(c.id, 0), "pixel_share": area.get(c.id, 0) / total_area}
                    for c in classes],
        "regions": s.region_count(),
        "sources": s.sources(),
        "errors": [{"path": p, "error": e} for p, e in s.errors()],
    }


def cmd_info(args) -> int:
    project = open_project(args)
    d = info_dict(project)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"folder:   {d['folder']}")
    print(f"project:  {d['project']}")
    print(f"images: {d['images']}")
    print("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d["status"].items()))
    if d["missing"]:
        print(f"  missing (file gone, annotations kept): {d['missing']}")
    print(f"classes: {len(d['classes'])}")
    w = max((len(c["name"]) for c in d["classes"]), default=0)
    for c in d["classes"]:
        flag = " (ignore)" if c["ignore"] else ""
        print(f"  {c['name']:<{w}}  {c['regions']:>7} regions  {100 * c['pixel_share']:5.1f}% of labelled pixels{flag}")
    print(f"regions: {d['regions']}" + (f"  ({', '.join(f'{k} {v}' for k, v in d['sources'].items())})"
                                        if d["sources"] else ""))
    print(f"errors: {len(d['errors'])}")
    for e in d["errors"][:50]:
        print(f"  {e['path']}: {e['error']}")
    if len(d["errors"]) > 50:
        print(f"  ... and {len(d['errors']) - 50} more (--json lists all)")
    return 0


def _print_report(rep, verb: str) -> None:
    print(f"{verb}: {rep.summary()}" + (f" -> {rep.out}" if rep.out else ""))
    for n in rep.notes[:20]:
        print(f"  note: {n}")
    for f, e in rep.errors[:50]:
        print(f"  error: {f}: {e}")
    if len(rep.errors) > 50:
        print(f"  ... and {len(rep.errors) - 50} more errors")
    for f in getattr(rep, "incomplete", [])[:50]:
        print(f"  not marked done (annotations rejected): {f}")
    for f, e in rep.left_out[:50]:
        print(f"  left out (unreadable): {f}: {e}")
    if len(rep.left_out) > 50:
        print(f"  ... and {len(rep.left_out) - 50} more unreadable images left out")
    for f, n in rep.missing[:50]:
        print(f"  left out (file missing): {f}: its {n} annotations are kept in the project, not exported")
    if len(rep.missing) > 50:
        print(f"  ... and {len(rep.missing) - 50} more missing images")
    for u in rep.unmatched[:20]:
        print(f"  unmatched (no such image in the folder): {u}")
    if len(rep.unmatched) > 20:
        print(f"  ... and {len(rep.unmatched) - 20} more unmatched")


def cmd_import(args) -> int:
    from segstudio.core.records import parse_statuses
    from segstudio.io.registry import run_import
    statuses = parse_statuses(args.status)
    if statuses is None or len(statuses) != 1:
        raise CliError("--status takes one status for imported images")
    if not Path(args.source).exists():
        raise CliError(f"source not found: {args.source}")
    project = open_project(args)
    prog = progress_printer("import")
    try:
        rep = run_import(args.format, project, args.source, args.classes, statuses[0], prog)
    finally:
        prog.close()
    _print_report(rep, "imported")
    return 0


def cmd_export(args) -> int:
    from segstudio.core.records import parse_statuses
    from segstudio.io.registry import run_export
    statuses = None if (args.status or "").strip().lower() == "all" else parse_statuses(args.status)
    from segstudio.io.registry import check_export_target
    project = open_project(args)
    out = Path(args.out)
    check_export_target(args.format, project, out)  # refuse before any work
    prog = progress_printer("export")
    try:
        rep = run_export(args.format, project, out, statuses, args.polygons, prog)
    finally:
        prog.close()
    _print_report(rep, "exported")
    if statuses is not None and not project.store.image_ids(statuses=statuses):
        def words(s: str) -> str:
            return s.replace("_", " ")
        others = ", ".join(f"{n} {words(k)}" for k, n in project.store.status_counts().items()
                           if n and k not in statuses)
        print(f"  note: no image is {' or '.join(words(s) for s in statuses)}" +
              (f" ({others}); --status all exports every image, --status done,in_progress those two"
               if others else ""))
    return 0


def cmd_check(args) -> int:
    from segstudio.core.check import check_images
    project = open_project(args)
    prog = progress_printer("check")
    try:
        rep = check_images(project, prog, args.workers)
    finally:
        prog.close()
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        print(f"checked: {rep.images} images, {rep.readable} readable, {len(rep.unreadable)} unreadable"
              + (f", {len(rep.missing)} missing" if rep.missing else ""))
        for p, e in rep.unreadable:
            print(f"  unreadable: {p}: {e}")
        for p in rep.missing[:50]:
            print(f"  missing: {p}")
    return 1 if rep.unreadable else 0
