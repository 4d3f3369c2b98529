"""A lead's setup of a team's PostgreSQL project: create the schema in an empty database (with the
team's group roles: annotator, reviewer, lead), and make an existing login role a member of one.

The login roles themselves are the lead's to make with psql (`CREATE ROLE anna LOGIN` and
`\\password anna`): a password never passes through segstudio. A login name travels to the server
as an identifier (psycopg's sql.Identifier in pg_schema), never formatted into SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segstudio.core.store.api import StoreError

if TYPE_CHECKING:
    from segstudio.core.store.postgres import PostgresStore

ROLE_NAMES = ("annotator", "reviewer", "lead")
_UNDEFINED_OBJECT, _INSUFFICIENT_PRIVILEGE = "42704", "42501"  # SQLSTATEs (psycopg stays in the backend)
_LOGIN_MAX = 63  # PostgreSQL's NAMEDATALEN - 1 bytes


def _is_pg(spec: str) -> bool:
    from segstudio.core.store.open import is_postgres_spec
    return is_postgres_spec(spec)


def open_team_store(spec: str, create: bool) -> PostgresStore:
    """The PostgresStore of `spec` (a postgresql:// URL or a libpq conninfo); create=False refuses a
    database that holds no project yet (a typo in the name does not make a new project)."""
    if not _is_pg(spec):
        raise StoreError(f"this takes a postgresql:// URL or a libpq connection string (service=NAME); "
                         f"{spec[:80]!r} is neither")
    try:
        from segstudio.core.store.postgres import PostgresStore
    except ImportError as e:
        raise StoreError(f"a PostgreSQL store needs psycopg: pip install 'segstudio[team]' ({e})") from None
    return PostgresStore(spec, None, create=create)


def init_project(spec: str, roles: bool) -> tuple[str, bool, dict[str, str]]:
    """Create the project's schema (a no-op on a project already there) and, with `roles`, the project's
    group roles and their privileges. Returns (location, whether the database held a project before,
    the group role of each kind: empty without `roles`)."""
    server = open_team_store(spec, create=True)  # creates or migrates the schema
    try:
        existed = server.image_count(include_missing=True) > 0 or bool(server.classes())
        groups = _run(server, "setup_roles") if roles else {}
        return server.location, existed, dict(groups or {})
    finally:
        server.close()


def grant(spec: str, login: str, role: str) -> str:
    """Make the existing login role `login` an annotator, reviewer or lead of the project at `spec`."""
    if role not in ROLE_NAMES:
        raise StoreError(f"--role is one of {', '.join(ROLE_NAMES)}, not {role!r}")
    check_login(login)
    server = open_team_store(spec, create=False)  # a project must be there
    try:
        _run(server, "add_member", login, role)
        return server.location
    finally:
        server.close()


def revoke(spec: str, login: str) -> str:
    """Take `login` out of the project at `spec` (its groups and its right to connect)."""
    check_login(login)
    server = open_team_store(spec, create=False)
    try:
        _run(server, "remove_member", login)
        return server.location
    finally:
        server.close()


def members(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """(location, [(login, role)]) of the project at `spec`."""
    server = open_team_store(spec, create=False)
    try:
        return server.location, list(_run(server, "members") or [])
    finally:
        server.close()


def check_login(login: str) -> None:
    if not isinstance(login, str) or not login.strip() or login != login.strip():
        raise StoreError(f"a login role's name is not empty and has no spaces around it: {login!r}")
    if "\x00" in login:
        raise StoreError("a login role's name cannot hold a NUL character")
    if len(login.encode("utf-8")) > _LOGIN_MAX:
        raise StoreError(f"a login role's name is at most {_LOGIN_MAX} bytes; {login[:20]!r}... is longer")


def _run(server: PostgresStore, step: str, *args):
    """pg_schema's `step` on a connection of the PostgreSQL backend's own (this is that backend's setup,
    not the Store protocol's); the server's refusals said as StoreError by their SQLSTATE."""
    from segstudio.core.store import pg_schema
    from segstudio.core.store.postgres import PgConnection
    try:
        with server.connect() as raw:
            return getattr(pg_schema, step)(PgConnection(raw), *args)
    except Exception as e:
        state = getattr(e, "sqlstate", None)
        if state is None and not type(e).__module__.startswith("psycopg"):
            raise
        where = server.location
        if state == _UNDEFINED_OBJECT:
            raise StoreError(f"{where}: {_first_line(e)} (create it first with psql: CREATE ROLE name LOGIN; "
                             "then \\password name)") from None
        if state == _INSUFFICIENT_PRIVILEGE:
            raise StoreError(f"{where} refused this: your role may not do it; run it as the database's owner "
                             f"({_first_line(e)})") from None
        raise StoreError(f"{where} failed ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
