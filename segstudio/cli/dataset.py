"""import and export: datasets in and out, in the formats of segstudio.io.registry."""

from __future__ import annotations

from pathlib import Path

from segstudio.cli.common import CliError, add_command, add_common, open_project, print_report, progress_printer
from segstudio.core.records import DONE, parse_statuses
from segstudio.core.review_filter import ACCEPTED, default_export_statuses, left_out_unaccepted, select_ids
from segstudio.io.registry import EXPORT_FORMATS, IMPORT_FORMATS, check_export_target, run_export, run_import


def add_parsers(sub) -> None:
    s = add_command(sub, "import", cmd_import, help="import annotations from a dataset")
    s.add_argument("--format", required=True, choices=list(IMPORT_FORMATS))
    s.add_argument("source", help="COCO JSON, or a folder of labelme JSONs / label-map PNGs / YOLO txt, or a "
                   "dataset folder in one of datumaro's formats (cvat, cityscapes, ade20k, ...; the [formats] extra)")
    s.add_argument("--classes", metavar="FILE", help="class names (label maps, YOLO); for binary masks (label "
                   "maps of only 0 and 255) a list of one name names the class of 255")
    s.add_argument("--status", default=DONE, help="status of the images that receive annotations (default done)")
    add_common(s)

    s = add_command(sub, "export", cmd_export, help="export a dataset")
    s.add_argument("--format", required=True, choices=list(EXPORT_FORMATS))
    s.add_argument("--out", required=True, metavar="PATH")
    s.add_argument("--polygons", action="store_true", help="COCO: polygons instead of RLE where faithful")
    s.add_argument("--status", metavar="S[,S...]", default=None,
                   help="images with these statuses, 'accepted' (done and accepted by a reviewer), or 'all' "
                        "(default done, or accepted when the project has review on: new, predicted and "
                        "in-progress images may hold uncorrected model output)")
    add_common(s)


def cmd_import(args) -> int:
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
    print_report(rep, "imported")
    return 0


def export_statuses(text: str | None, store) -> tuple[str, ...] | None:
    """--status as the selector export_items takes: None (all), statuses, and "accepted"."""
    if text is None:
        return default_export_statuses(store)
    if text.strip().lower() == "all":
        return None
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    rest = parse_statuses(",".join(n for n in names if n != ACCEPTED))
    chosen = tuple(rest or ()) + ((ACCEPTED,) if ACCEPTED in names else ())
    if not chosen:
        raise CliError("--status names no status; give e.g. done, accepted or all")
    return chosen


def cmd_export(args) -> int:
    given = None if args.status is None else export_statuses(args.status, None)  # a bad --status: before opening
    project = open_project(args)
    statuses = given if args.status is not None else export_statuses(None, project.store)
    out = Path(args.out)
    check_export_target(args.format, project, out)  # refuse before any work
    if statuses is not None and not select_ids(project.store, statuses):  # an empty export replaces nothing
        def words(s: str) -> str:
            return s.replace("_", " ")
        others = ", ".join(f"{n} {words(k)}" for k, n in project.store.status_counts().items()
                           if n and k not in statuses)
        unaccepted = left_out_unaccepted(project.store, statuses)
        raise CliError(f"nothing to export: no image is {' or '.join(words(s) for s in statuses)}"
                       + (f" ({unaccepted} done, not accepted by a reviewer yet)" if unaccepted else "")
                       + (f" ({others}); --status all exports every image" if others else "")
                       + f"; {out} was not written")
    prog = progress_printer("export")
    try:
        rep = run_export(args.format, project, out, statuses, args.polygons, prog)
    finally:
        prog.close()
    print_report(rep, "exported")
    unaccepted = left_out_unaccepted(project.store, statuses)
    if unaccepted:
        print(f"  note: {unaccepted} done image{'s' if unaccepted != 1 else ''} left out: not accepted by a "
              "reviewer yet (review is on; --status done exports every done image)")
    return 0
