"""info and check: what the project holds, and which images cannot be read."""

from __future__ import annotations

import json

from segstudio.cli.common import CliError, add_command, add_common, open_project, progress_printer


def add_parsers(sub) -> None:
    s = add_command(sub, "info", cmd_info, help="images by status, classes, regions per class, errors")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--by-user", action="store_true",
                   help="who did what, from the project's history: per person the images marked done, regions "
                        "changed, active time (gaps of up to 5 minutes between their changes), returns of their "
                        "images by a reviewer, and their own reviews")
    add_common(s)

    s = add_command(sub, "check", cmd_check,
                    help="decode every image in full; list (and remember) the unreadable ones")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--workers", type=int, default=None, metavar="N", help="decoding threads (default: cores)")
    s.add_argument("--memory", default=None, metavar="SIZE",
                   help="memory the decoding threads may hold at once, e.g. 2G or 500M "
                        "(default: half of the memory available); a worker waits for room")
    add_common(s)


def info_dict(project) -> dict:
    s = project.store
    classes = s.classes()
    per_class = s.regions_per_class()
    area = s.area_per_class()
    total_area = sum(area.values()) or 1
    return {
        "folder": str(project.folder),
        "project": s.location,  # a file, or a server's URL (never a password)
        "store": s.kind,
        "images": s.image_count(),
        "status": s.status_counts(),
        "missing": s.missing_count(),
        "classes": [{"id": c.id, "name": c.name, "color": c.hex_color, "ignore": c.ignore,
                     "regions": per_class.get(c.id, 0), "pixel_share": area.get(c.id, 0) / total_area}
                    for c in classes],
        "regions": s.region_count(),
        "sources": s.sources(),
        "errors": [{"path": p, "error": e} for p, e in s.errors()],
        "skipped_folders": list(project.skipped_folders),
        "sequences": sequences_summary(s.images()),
        "review": {"enabled": s.review_enabled(), **s.review_counts()},
    }


def by_user_dict(project) -> dict:
    from segstudio.core.team_stats import IDLE_S, by_user
    people = by_user(project.store.history())
    return {"project": project.store.location, "idle_s": IDLE_S, "people": [p.as_dict() for p in people]}


def print_by_user(d: dict) -> None:
    from segstudio.core.team_stats import format_duration
    print(f"project:  {d['project']}")
    if not d["people"]:
        print("no history yet: nobody has changed an image")
        return
    who = {p["who"]: terminal_text(p["who"]) for p in d["people"]}
    w = max(len("who"), *(len(v) for v in who.values()))
    print(f"  {'who':<{w}}  {'done':>6}  {'region edits':>12}  {'active':>9}  {'returns':>7}  {'reviews':>7}")
    for p in d["people"]:
        print(f"  {who[p['who']]:<{w}}  {p['done']:>6}  {p['regions']:>12}  {format_duration(p['active_s']):>9}  "
              f"{p['returns']:>7}  {p['reviewed']:>7}")
    print(f"  active: the sum of gaps of up to {int(d['idle_s'] // 60)} minutes between a person's changes; "
          "region edits: regions saved or deleted by hand; returns: of images they marked done")


def terminal_text(text: str) -> str:
    """A stored name as it is printed: control characters (a terminal's escapes, line breaks) as \\uXXXX."""
    from segstudio.core.classes import UNLISTABLE_CHARS
    return UNLISTABLE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", str(text))


def sequences_summary(records) -> list[dict]:
    """Each sequence (a stack or video file, a numbered folder): its frames by status."""
    from segstudio.core import sequences
    status = {r.path: r.status for r in records}
    out = []
    for key, paths in sorted(sequences.group_sequences(list(status)).items()):
        counts: dict[str, int] = {}
        for p in paths:
            counts[status[p]] = counts.get(status[p], 0) + 1
        kind = "folder" if sequences.split_frame_path(paths[0]) is None else \
            "video" if sequences.is_video_name(key) else "stack"
        out.append({"sequence": key or ".", "kind": kind, "frames": len(paths), "status": counts})
    return out


def cmd_info(args) -> int:
    project = open_project(args)
    if args.by_user:
        d = by_user_dict(project)
        if args.json:
            print(json.dumps(d, indent=2))
        else:
            print_by_user(d)
        return 0
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
    if d["review"]["enabled"]:
        r = d["review"]
        print(f"  review: {r['waiting']} waiting, {r['accepted']} accepted, {r['returned']} returned")
    print(f"classes: {len(d['classes'])}")
    w = max((len(terminal_text(c["name"])) for c in d["classes"]), default=0)
    for c in d["classes"]:
        flag = " (ignore)" if c["ignore"] else ""
        name = terminal_text(c["name"])
        print(f"  {name:<{w}}  {c['regions']:>7} regions  {100 * c['pixel_share']:5.1f}% of labelled pixels{flag}")
    if d["sequences"]:
        print(f"sequences: {len(d['sequences'])}")
        for q in d["sequences"][:50]:
            by = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(q["status"].items()))
            print(f"  {q['sequence']} ({q['kind']}): {q['frames']} frames: {by}")
    print(f"regions: {d['regions']}" + (f"  ({', '.join(f'{k} {v}' for k, v in d['sources'].items())})"
                                        if d["sources"] else ""))
    if d["skipped_folders"]:
        print(f"skipped folders (segstudio exports, their images are not listed): {len(d['skipped_folders'])}")
        for f in d["skipped_folders"][:50]:
            print(f"  {f}/")
        if len(d["skipped_folders"]) > 50:
            print(f"  ... and {len(d['skipped_folders']) - 50} more (--json lists all)")
    print(f"errors: {len(d['errors'])}")
    for e in d["errors"][:50]:
        print(f"  {e['path']}: {e['error']}")
    if len(d["errors"]) > 50:
        print(f"  ... and {len(d['errors']) - 50} more (--json lists all)")
    return 0


def cmd_check(args) -> int:
    from segstudio.core.check import check_images
    from segstudio.core.memory import parse_bytes
    try:
        memory = parse_bytes(args.memory) if args.memory else None
    except ValueError as bad:
        raise CliError(f"--memory: {bad}") from None
    project = open_project(args)
    prog = progress_printer("check")
    try:
        rep = check_images(project, prog, args.workers, memory=memory)
    finally:
        prog.close()
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        print(f"checked: {rep.images} images, {rep.readable} readable, {len(rep.unreadable)} unreadable"
              + (f", {len(rep.not_checked)} not checked" if rep.not_checked else "")
              + (f", {len(rep.missing)} missing" if rep.missing else ""))
        for p, why in rep.unreadable:
            print(f"  unreadable: {p}: {why}")
        for p, why in rep.not_checked:
            print(f"  not checked (not enough memory here; the file may be fine, nothing stored): {p}: {why}")
        for p in rep.missing[:50]:
            print(f"  missing: {p}")
    return 1 if rep.unreadable or rep.not_checked else 0
