"""Command line: `segstudio [FOLDER]` opens the window; subcommands work headless.

    segstudio info FOLDER [--json]
    segstudio check FOLDER [--json]
    segstudio import FOLDER --format FORMAT SOURCE [--classes FILE]
    segstudio export FOLDER --format FORMAT --out PATH
    segstudio predict FOLDER --model MODEL ...
    segstudio train FOLDER --model MODEL --out FILE ...
    segstudio evaluate FOLDER --weights FILE ...
    segstudio models [--json]
    segstudio propagate SEQUENCE --from FRAME [--frames N] [--backward]
    segstudio store init URL [--roles] | grant URL LOGIN --role ROLE | copy FOLDER --to DEST [--from SRC]

MODEL is a family of the registry (segstudio.inference.registry); `segstudio models` lists them.

Every command takes --project PATH to keep the store outside the image folder, and --store URL to
open a team's PostgreSQL project instead. Bad input
exits non-zero with a one-line error.

One module per group of commands (project: info, check; dataset: import, export; models:
predict; train: train, evaluate; sequence: propagate; model_list: models; store_cmds: store), each registering its
subcommands with the function that runs them; `common` holds what they share. The import and
export format names are those of segstudio.io.registry.
"""

from __future__ import annotations

import argparse
import os
import sys

from segstudio import __version__
from segstudio.cli import dataset, model_list, models, project, sequence, store_cmds, train, weights
from segstudio.cli.common import CliError, add_common, one_line, setup_logging

__all__ = ["CliError", "build_parser", "main"]

# the order of the commands in --help
_GROUPS = (project, dataset, models, train, sequence, weights, model_list, store_cmds)


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    """The parser and its command names."""
    p = argparse.ArgumentParser(prog="segstudio", description="Annotate and segment image folders.")
    p.add_argument("--version", action="version", version=f"segstudio {__version__}")
    add_common(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        group.add_parsers(sub)
    return p, tuple(sub.choices)


def _gui_parser(commands: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    gp = argparse.ArgumentParser(prog="segstudio", description="Open the annotation window.",
                                 epilog=("commands (segstudio COMMAND --help): " + ", ".join(commands))
                                 if commands else None)
    gp.add_argument("--version", action="version", version=f"segstudio {__version__}")
    gp.add_argument("folder", nargs="?", help="image folder, or an image (its folder opens on it); default: the "
                                              "bundled samples")
    gp.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit")
    gp.add_argument("--image", metavar="NAME", help="with --screenshot: the image to show")
    gp.add_argument("--self-test", action="store_true",
                    help="check this install offscreen on a copy of the samples (window, brush and undo, "
                         "GrabCut, UNet training and prediction, COCO export); exit 0 when all pass")
    add_common(gp, top=True)
    return gp


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _build()
    if _first_positional(argv) not in commands:
        gp = _gui_parser(commands)
        args = gp.parse_args(argv)
        setup_logging(args.verbose)
        if args.self_test:
            if args.folder or args.screenshot or args.image or args.project:
                gp.error("--self-test takes no folder, --project, --screenshot or --image")
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt starts: runs on a headless machine
            from segstudio.selftest import run as self_test
            try:
                return self_test(verbose=args.verbose)
            except ImportError as e:
                print(f"segstudio: error: the self-test needs PySide6 ({e})", file=sys.stderr)
                return 2
        try:
            from segstudio.app import run_gui
        except ImportError as e:
            print(f"segstudio: error: the window needs PySide6 ({e})", file=sys.stderr)
            return 2
        return run_gui(args)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\nsegstudio: cancelled", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user; the traceback with -v
        if args.verbose:
            raise
        print(f"segstudio: error: {one_line(e)}", file=sys.stderr)
        return 2


_VALUE_OPTIONS = {"--project", "--store", "--screenshot", "--image"}


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
