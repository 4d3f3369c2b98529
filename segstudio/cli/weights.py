"""weights: the pretrained files segstudio knows (inference/weights_catalog.py), for machines
without internet: list them with their status, download one, or put a file brought from
elsewhere where the app finds it.

    segstudio weights [--quick] [--json]        list (same as `weights list`)
    segstudio weights get NAME [NAME ...]       download, verify, rename into place
    segstudio weights add FILE [--as NAME]      verify a file and copy it into place
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub) -> None:
    w = sub.add_parser("weights", help="pretrained weights: list with status, download (get), bring a file (add)",
                       description="Pretrained weights files in the torch hub cache "
                                   "(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it).")
    _list_options(w, top=True)
    w.set_defaults(func=cmd_list)
    _verbose(w)
    acts = w.add_subparsers(dest="weights_action", metavar="ACTION")

    s = acts.add_parser("list", help="every known file: where it goes, present or not, size, sha256 status")
    _list_options(s)
    s.set_defaults(func=cmd_list)
    _verbose(s)

    s = acts.add_parser("get", help="download into the cache with a progress bar; the hash is checked before "
                                    "the file gets its final name")
    s.add_argument("names", nargs="+", metavar="NAME", help="a name from `segstudio weights` (or its file name)")
    _json(s)
    s.set_defaults(func=cmd_get)
    _verbose(s)

    s = acts.add_parser("add", help="verify a file brought from elsewhere (USB stick) and copy it into the cache")
    s.add_argument("file", help="the weights file (only read; copied, never moved)")
    s.add_argument("--as", dest="as_name", metavar="NAME",
                   help="which weights the file is (default: found from its name, its sha256 or its keys)")
    _json(s)
    s.set_defaults(func=cmd_add)
    _verbose(s)


def _list_options(p: argparse.ArgumentParser, top: bool = False) -> None:
    _json(p, top)
    p.add_argument("--quick", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="sizes only: do not compute sha256 (fast)")


def _json(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--json with its default on `weights` only, so that `weights --json get X` is not reset by the
    action's parser (as add_common does for --project)."""
    p.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="machine-readable output")


def _verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


def status_rows(statuses) -> list[dict[str, Any]]:
    return [s.as_dict() for s in statuses]


def format_table(statuses, folder) -> str:
    """The listing as text: one row per file, the folder first, how to fix what is wrong last."""
    from segstudio.inference.runtime.weights_catalog import NO_ACCESS, mib_text
    head = ("NAME", "STATUS", "SIZE", "CHECK", "FILE", "USED BY")
    rows = []
    for s in statuses:
        e = s.entry
        size = mib_text(s.size) if s.size is not None else f"({e.size_text()})"
        rows.append((e.name, s.status, size, e.check, e.file,
                     e.used_by[0] + (f" (+{len(e.used_by) - 1} more)" if len(e.used_by) > 1 else "")))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = [f"weights folder: {folder}",
             "  (the torch hub cache: torch.hub.get_dir()/checkpoints; TORCH_HOME moves it)", ""]
    for r in [head, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    notes = [f"  {s.entry.name}: {s.status}: {s.detail}" for s in statuses if s.wrong or s.status == NO_ACCESS]
    if notes:
        lines += ["", "problems:", *notes]
    n_missing = sum(1 for s in statuses if not s.present)
    n_wrong = sum(1 for s in statuses if s.wrong or s.status == NO_ACCESS)
    lines += ["", f"{len(statuses)} files: {len(statuses) - n_missing} present, {n_missing} missing"
              + (f", {n_wrong} of them unusable (see problems)" if n_wrong else "")
              + ". CHECK: sha256 = full hash known; sha256 prefix = the hash prefix in the file name is checked "
                "(prefix checked); none = unverified.",
              "Download: segstudio weights get NAME    Offline: segstudio weights add FILE (a copy from elsewhere)"]
    return "\n".join(lines)


def cmd_list(args) -> int:
    from segstudio.inference.runtime import weights_catalog as wc
    # hashing takes seconds per GB: a bar on a terminal only (a log gets the table alone)
    prog = _file_progress("checking") if not args.quick and not args.json and sys.stderr.isatty() else None
    try:
        statuses = wc.status_list(deep=not args.quick, progress=prog)
    finally:
        if prog is not None:
            prog.close()
    if args.json:
        print(json.dumps({"folder": str(wc.checkpoints_dir()), "weights": status_rows(statuses)}, indent=2))
    else:
        print(format_table(statuses, wc.checkpoints_dir()))
    return 0


def cmd_get(args) -> int:
    from segstudio.inference.runtime import weights_catalog as wc
    entries = [wc.find(n) for n in args.names]  # every name checked before anything is downloaded
    results = []
    for e in entries:
        bar = _byte_progress(f"get {e.name}") if not args.json else None
        try:
            results.append(wc.get(e.name, progress=bar))
        finally:
            if bar is not None:
                bar.close()
        if not args.json:
            print(results[-1].message)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    return 0


def cmd_add(args) -> int:
    from segstudio.inference.runtime import weights_catalog as wc
    if args.as_name is not None:
        wc.find(args.as_name)
    bar = _byte_progress("add") if not args.json else None
    try:
        r = wc.add(args.file, args.as_name, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    print(json.dumps(r.as_dict(), indent=2) if args.json else r.message)
    return 0


class _Bar:
    """A ProgressBar fed (done, total, text) callbacks; it appears on the first call."""

    def __init__(self, label: str, scale: int, unit: str, min_total: int = 1):
        self.label, self.scale, self.unit, self.min_total = label, scale, unit, min_total
        self.bar: Any = None

    def __call__(self, done: int, total: int, text: str = "") -> None:
        from segstudio.core.progress import ProgressBar
        if total < self.min_total:  # over in a blink (or the size is not known): no bar
            return
        if self.bar is None:
            self.bar = ProgressBar(max(1, total // self.scale), self.label, stream=sys.stderr, unit=self.unit)
        if total // self.scale != self.bar.total:
            self.bar.total = max(1, total // self.scale)
        self.bar.n = done // self.scale
        if done < total:  # the last step is drawn by close()
            self.bar.update(0, text[-40:] if self.scale == 1 else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _byte_progress(label: str) -> _Bar:
    return _Bar(label, 1 << 20, "MiB", min_total=8 << 20)


def _file_progress(label: str) -> _Bar:
    return _Bar(label, 1, "files")

