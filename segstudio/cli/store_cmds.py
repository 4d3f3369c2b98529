"""store: a team's project in PostgreSQL. `store init` creates one (with the team's roles), `store
grant` makes a login role an annotator, reviewer or lead (`revoke` takes it out, `members` lists them),
`store copy` moves a project exactly
between stores (SQLite to PostgreSQL and back).

    segstudio store init URL [--roles]
    segstudio store grant URL LOGIN --role annotator|reviewer|lead
    segstudio store revoke URL LOGIN
    segstudio store members URL
    segstudio store copy FOLDER --to DEST [--from SRC]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from segstudio.cli.common import CliError, add_common, check_store_spec
from segstudio.cli.project import terminal_text

_NO_PASSWORD = ("URL: postgresql://USER@HOST/DB or service=NAME; never with a password (libpq finds it in "
                "~/.pgpass or PGPASSFILE)")


def add_parsers(sub) -> None:
    s = sub.add_parser("store", help="a team's PostgreSQL project: init, grant, revoke, members, copy between stores")
    ss = s.add_subparsers(dest="store_command", metavar="STORE_COMMAND", required=True)

    p = ss.add_parser("init", help="create the project in an empty PostgreSQL database",
                      description="Create the project's tables in an empty database (a project is also created "
                                  "the first time it is opened). " + _NO_PASSWORD)
    p.set_defaults(func=cmd_init)
    p.add_argument("url", metavar="URL")
    p.add_argument("--roles", action="store_true",
                   help="also create the project's group roles (DB_annotator, DB_reviewer, "
                        "DB_lead) and their least privileges; run as the database's owner")
    add_common(p)

    p = ss.add_parser("grant", help="make a login role an annotator, reviewer or lead of the project",
                      description="The login role is created by the lead first, with psql: CREATE ROLE anna "
                                  "LOGIN; then \\password anna. " + _NO_PASSWORD)
    p.set_defaults(func=cmd_grant)
    p.add_argument("url", metavar="URL")
    p.add_argument("login", metavar="LOGIN", help="an existing PostgreSQL login role")
    p.add_argument("--role", required=True, choices=("annotator", "reviewer", "lead"))
    add_common(p)

    p = ss.add_parser("revoke", help="take a login role out of the project (its role and its right to connect)",
                      description=_NO_PASSWORD)
    p.set_defaults(func=cmd_revoke)
    p.add_argument("url", metavar="URL")
    p.add_argument("login", metavar="LOGIN")
    add_common(p)

    p = ss.add_parser("members", help="who is an annotator, reviewer or lead of the project",
                      description=_NO_PASSWORD)
    p.set_defaults(func=cmd_members)
    p.add_argument("url", metavar="URL")
    add_common(p)

    p = ss.add_parser("copy", help="copy a project exactly into another store (SQLite <-> PostgreSQL)",
                      description="Copy FOLDER's project (its store as it opens: --store, SEGSTUDIO_STORE, "
                                  "store.toml, else the SQLite file; or --from) into an empty PostgreSQL "
                                  "database or a new SQLite file. Claims are not copied.")
    p.set_defaults(func=cmd_copy)
    p.add_argument("folder", help="the image folder")
    p.add_argument("--to", required=True, metavar="DEST",
                   help="a postgresql:// URL (an empty database) or the path of a new SQLite file")
    p.add_argument("--from", dest="source", metavar="SRC",
                   help="the store to copy from: a postgresql:// URL or an SQLite file (default: the project's)")
    add_common(p)


def _url(spec: str, what: str = "URL") -> str:
    s = check_store_spec(spec, what)
    assert s is not None
    return s


def cmd_init(args) -> int:
    from segstudio.core.team_setup import init_project
    location, existed, groups = init_project(_url(args.url), args.roles)
    print(f"{'project already there' if existed else 'project ready'}: {location}"
          + (f"; group roles {', '.join(groups.values())} set up (pg_hba.conf may name them with +)"
             if groups else ""))
    return 0


def cmd_grant(args) -> int:
    from segstudio.core.team_setup import grant
    location = grant(_url(args.url), args.login, args.role)
    print(f"{terminal_text(args.login)} is now {'an' if args.role == 'annotator' else 'a'} {args.role} of {location}")
    return 0


def cmd_revoke(args) -> int:
    from segstudio.core.team_setup import revoke
    location = revoke(_url(args.url), args.login)
    print(f"{terminal_text(args.login)} is no longer a member of {location}")
    return 0


def cmd_members(args) -> int:
    from segstudio.core.team_setup import members
    location, people = members(_url(args.url))
    print(f"project: {location}")
    if not people:
        print("  nobody yet: segstudio store grant URL LOGIN --role annotator|reviewer|lead")
    for login, role in people:
        print(f"  {terminal_text(login)}: {role}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from segstudio.core.store_copy import copy_project
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise CliError(f"not a folder: {folder}")
    src = _open_source(args, folder)
    try:
        dst, made = _open_destination(args.to, folder)
        try:
            if src.location == dst.location:
                raise CliError(f"--to {args.to} is the project's own store")
            counts = copy_project(src, dst)
        except BaseException:
            dst.close()
            if made is not None:  # a new SQLite file of ours, half written: no project, remove it
                for p in (made, Path(f"{made}-wal"), Path(f"{made}-shm")):
                    p.unlink(missing_ok=True)
            raise
        dst.close()
    finally:
        src.close()
    print(f"copied {src.location} -> {dst.location}")
    for table, n in counts.items():
        print(f"  {table}: {n} row{'' if n == 1 else 's'}")
    if src.kind == "sqlite" and dst.kind == "postgresql":
        _mark_moved(src.location, folder, dst.location)
        print(f"Next: open the folder on the server: segstudio {folder} --store '{dst.location}', or SEGSTUDIO_STORE, "
              f"or a {folder / 'store.toml'} holding\n  [store]\n  url = \"{dst.location}\"\n"
              f"{src.location} stays as it was; work saved there from now on does not reach the team.")
    return 0


def _mark_moved(sqlite_path: str, folder: Path, location: str) -> None:
    """The SQLite project remembers where it was copied to: opening it says so (core/project)."""
    import time

    from segstudio.core.store.sqlite import SqliteStore
    s = SqliteStore(sqlite_path, folder, create=False)
    try:
        s.set_setting("copied_to", {"location": location, "at": time.time()})
    finally:
        s.close()


def _open_source(args, folder: Path):
    """The store to copy from, opened as it is (no scan, no setting written): --from, else the project's
    store as it opens (--store, SEGSTUDIO_STORE, store.toml, --project, FOLDER/.segstudio)."""
    from segstudio.core.project import project_location
    from segstudio.core.store.open import is_postgres_spec, open_store, store_spec
    from segstudio.core.store.sqlite import SqliteStore
    if args.source:
        if is_postgres_spec(args.source):
            return open_store(_url(args.source, "--from"), folder, Path("."))
        db = Path(args.source).expanduser()
        if not db.is_file():
            raise CliError(f"--from {args.source}: no such SQLite file (or give a postgresql:// URL)")
        return SqliteStore(db, folder, create=False)
    spec = store_spec(check_store_spec(getattr(args, "store", None)), folder)
    if spec is not None:
        return open_store(_url(spec, "the store"), folder, Path("."))
    db = project_location(folder, getattr(args, "project", None))[1]
    if not db.is_file():
        raise CliError(f"no project to copy: {db} does not exist (give --from, --project or --store)")
    return SqliteStore(db, folder, create=False)


def _open_destination(to: str, folder: Path):
    """(store, the SQLite file this made or None). A PostgreSQL destination is an empty database; an
    SQLite one a new file: an existing file is never written to."""
    from segstudio.core.store.open import is_postgres_spec, open_store
    if is_postgres_spec(to):
        return open_store(_url(to, "--to"), folder, Path(".")), None  # the spec is given: the SQLite default is unused
    path = Path(to).expanduser()
    if path.exists() or path.is_symlink():
        raise CliError(f"--to {to} already exists; a copy goes into a new SQLite file only (or a postgresql:// URL)")
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):  # a failed copy removes these: only ones it made
        if side.exists() or side.is_symlink():
            raise CliError(f"--to {to}: {side} is there already (another database's?); choose another name")
    if not path.parent.is_dir():
        raise CliError(f"--to {to}: the folder {path.parent} does not exist")
    from segstudio.core.store.sqlite import SqliteStore
    return SqliteStore(path, folder), path
