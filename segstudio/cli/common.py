"""What every command shares: the user-error type, the common options (--store among them), opening the project, a
progress bar, and printing an import/export report."""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

from segstudio.core.errors import UserError


class CliError(UserError):
    """A command-line option that does not make sense; the message says which and why."""


def add_common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--project, --allow-large, -v: on the top parser with defaults, on each subcommand without
    (so that an option given before the command is not reset by the subcommand's default)."""
    d = None if top else argparse.SUPPRESS
    p.add_argument("--project", metavar="PATH", default=d,
                   help="project database (default FOLDER/.segstudio/project.db)")
    p.add_argument("--store", metavar="URL", default=d,
                   help="a team's PostgreSQL project, e.g. postgresql://anna@db.lab/cells?sslmode=verify-full or "
                        "service=cells (default: SEGSTUDIO_STORE, else FOLDER/store.toml, else the SQLite file). "
                        "Never put a password here: libpq finds it in ~/.pgpass or PGPASSFILE, a service file "
                        "(PGSERVICEFILE) holds the rest, sslmode sets TLS")
    p.add_argument("--allow-large", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="decode images over the decompression-bomb limit (trusted files only)")
    p.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS)


def add_command(sub, name: str, func, help: str) -> argparse.ArgumentParser:
    """A subcommand that runs func(args); the caller adds its own arguments, then the common ones."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=func)
    p.add_argument("folder")
    return p


def one_line(e: BaseException) -> str:
    """The first line of the message; a UserError without its type name, anything else with it."""
    msg = str(e).strip().splitlines()
    text = msg[0] if msg else type(e).__name__
    return text if isinstance(e, UserError) else f"{type(e).__name__}: {text}"


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def check_store_spec(spec: str | None, what: str = "--store") -> str | None:
    """A --store value, refused before anything connects when it holds a password (it would sit in the
    shell's history and the process list). Checked here without psycopg; the store checks again."""
    if spec is None:
        return None
    s = spec.strip()
    if not s:
        raise CliError(f"{what} is empty: give a postgresql:// URL or service=NAME")
    if "\x00" in s:
        raise CliError(f"{what} holds a NUL character")
    has_password = False
    if s.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qs, urlsplit
        try:
            parts = urlsplit(s)
            has_password = parts.password is not None or "password" in parse_qs(parts.query)
        except ValueError as e:
            raise CliError(f"{what} is not a valid URL: {e}") from None
    else:
        has_password = re.search(r"(^|\s)password\s*=", s) is not None
    if has_password:
        raise CliError(f"{what} holds a password: remove it and let libpq find it "
                       "(~/.pgpass or PGPASSFILE, or a service file)")
    return s


def open_project(args, scan: bool = True):
    from segstudio.core.project import Project
    store = check_store_spec(getattr(args, "store", None))
    p = Project.open(args.folder, getattr(args, "project", None), scan=scan, store=store)
    if getattr(args, "allow_large", False):
        p.allow_large = True
    return p


def progress_printer(label: str):
    from segstudio.core.progress import ProgressBar
    state: dict[str, Any] = {"bar": None}  # None: not decided yet, False: too short for a bar

    def cb(done: int, total: int, item: str = "") -> None:
        if state["bar"] is None:
            if total < 20:
                state["bar"] = False
                return
            bar = ProgressBar(total, label)
            bar.n0 = done  # the first answer came before the bar: its time is not the bar's
            state["bar"] = bar
        if state["bar"]:
            state["bar"].n = done
            state["bar"].update(0)

    def close() -> None:
        if state["bar"]:
            state["bar"].close()
    cb.close = close  # type: ignore[attr-defined]  # callers call prog.close(); a function attribute
    return cb


def print_report(rep, verb: str) -> None:
    print(f"{verb}: {rep.summary()}" + (f" -> {rep.out}" if rep.out else ""))
    for line in rep.lines(50):
        print(f"  {line}")
