"""Sequence commands: `segstudio propagate SEQUENCE --from FRAME [--frames N] [--backward]`.

SEQUENCE is a stack file, a video file, or a folder of numbered frames. A folder works on its
own project (the store the window, import and export use), its numbered images in numeric order.
A file works on the project of the nearest folder above it that has one (so a video inside a
project's folder is that project's), else on its own folder's."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from segstudio.cli.common import CliError, add_common, check_store_spec, progress_printer
from segstudio.core import sequences

_UP = 32  # folders looked through for an existing project above a sequence file


def add_parsers(sub) -> None:
    p = sub.add_parser("propagate", help="carry a frame's objects to the following (or previous) frames",
                       description="Exits 0 when it wrote frames, 1 when it wrote none (the reason is printed), "
                                   "2 on a bad argument.")
    p.set_defaults(func=cmd_propagate)
    p.add_argument("sequence", help="a stack file, a video file, or a folder of numbered frames")
    p.add_argument("--from", dest="start", required=True, metavar="FRAME",
                   help="the frame whose objects are carried: a 0-based frame number or a frame's file name")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="how many frames to carry them into (default: to the sequence's end)")
    p.add_argument("--backward", action="store_true", help="carry them to the previous frames")
    p.add_argument("--threshold", type=float, default=None,
                   help="the confidence below which an object is no longer carried (default: the method's)")
    p.add_argument("--evidence", choices=("auto", "live", "none"), default="auto",
                   help="the project's live model (Learn as I annotate, train --watch) as evidence for each "
                        "carried object: auto (default) uses it where the project has one")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common(p)


def _locate(seq: Path, project_opt: str | None) -> tuple[Path, str]:
    """(project folder, sequence key) for a folder or a sequence file: the project of the nearest
    folder at or above it that has one (its SQLite file, or a team's store.toml: a numbered subfolder
    annotated in the window is a sequence of its parent's project), else the folder's own (a
    sequence file's: its folder's)."""
    if not seq.exists():
        raise CliError(f"not found: {seq}")
    if seq.is_file() and not sequences.may_be_container(seq.name):
        raise CliError(f"{seq} is an image, not a sequence: give its folder ({seq.parent}) and "
                       f"--from {seq.name}")
    folder = seq if seq.is_dir() else seq.parent
    if not project_opt:
        for above in [folder, *folder.parents][:_UP]:
            if (above / ".segstudio" / "project.db").is_file() or (above / "store.toml").is_file():
                folder = above
                break
    if seq.is_dir() and os.path.abspath(seq) == os.path.abspath(folder):
        return folder, ""
    # not resolve(): a link is registered under its own name, wherever it points
    rel = os.path.relpath(os.path.abspath(seq), os.path.abspath(folder))
    return folder, Path(rel).as_posix()


def cmd_propagate(args: argparse.Namespace) -> int:
    from segstudio.core.project import Project
    from segstudio.editing.propagation_run import propagate
    if args.frames is not None and args.frames < 1:
        raise CliError("--frames must be 1 or more")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CliError("--threshold must be between 0 and 1")
    folder, key = _locate(Path(args.sequence).expanduser(), getattr(args, "project", None))
    project = Project.open(folder, getattr(args, "project", None),
                           store=check_store_spec(getattr(args, "store", None)))
    if getattr(args, "allow_large", False):
        project.allow_large = True
    try:
        frames = project.sequence_frames(key)
        if len(frames) < 2:
            known = project.store.container_info(key) if key else None
            why = f": {known.error}" if known is not None and known.error else ""
            if key:
                what = f"{args.sequence} holds one frame: there is no other frame to carry it to" \
                    if len(frames) == 1 else f"{args.sequence} holds no frames{why}"
            else:
                what = f"{args.sequence} holds no numbered images (a sequence needs 2 or more)"
            raise CliError(what)
        try:
            start = sequences.parse_frame(args.start, [f.path for f in frames])
        except ValueError as e:
            raise CliError(str(e)) from None
        refine, evidence = None, None
        if args.evidence != "none":
            from segstudio.inference.propagate_refine import live_evidence
            found = live_evidence(project)
            if found is None and args.evidence == "live":
                raise CliError("this project has no live model: Learn as I annotate in the window, or "
                               "segstudio train FOLDER --watch, makes one")
            if found is not None:
                refine, evidence = found
        prog = progress_printer("propagate")
        try:
            run = propagate(project, frames, start, args.frames, args.backward, refine=refine,
                            threshold=args.threshold, progress=prog)
        finally:
            prog.close()
        run.evidence = evidence
        if args.json:
            print(json.dumps({
                "sequence": key or str(folder), "from": start, "backward": args.backward,
                "frames": [{"frame": f.index, "path": f.path, "objects": f.objects,
                            "confidence": round(f.confidence, 4), "stopped_objects": f.dropped}
                           for f in run.frames],
                "stopped_at": run.stopped_at, "reason": run.reason, "evidence": evidence}, indent=1))
        else:
            for f in run.frames:
                lost = f", {len(f.dropped)} object(s) stopped" if f.dropped else ""
                print(f"frame {f.index} ({f.path}): {f.objects} object(s), confidence {f.confidence:.2f} or more{lost}")
            print(run.summary())
        return 0 if run.frames else 1  # nothing written: a script can tell
    finally:
        project.close()
