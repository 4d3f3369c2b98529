"""The PostgreSQL backend of the project store: one project shared by a team, each annotator's
window a client of one server. Its SQL is the SQLite store's (sql_store.py); what is PostgreSQL's
own is here: connections, the write lock, migrations, the server's clock, and its error words.

- psycopg 3, server-side binding only: every value travels apart from the statement (`?` becomes
  psycopg's `%s`, sent as `$1`...). No SQL is built from a name or value; ClientCursor is never used.
- Connection settings, TLS and passwords are libpq's (service files, PGPASSFILE, sslmode). A URL
  or conninfo holding a password is refused: it would sit on a command line or in a file.
- Every write transaction takes one advisory lock first, the project's write lock, as SQLite's
  BEGIN IMMEDIATE does: the read-then-write steps of the shared SQL see no other writer.
- Claims are exclusive (one owner per image at a time) and judged by the server's clock.
- A lost connection (a restart, a network cut) is said as StoreError "reconnecting"; the next call
  connects again, and the window's save retry sends its edits again (writes are idempotent: regions
  by id, statuses by value).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote
from typing import Any, Callable, Iterator

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors

from segstudio.core.store import pg_schema
from segstudio.core.store.api import Listener, StoreError
from segstudio.core.store.schema import SCHEMA_VERSION, migration, schema_v1, split_sql
from segstudio.core.store.sql_store import SqlStore

MIGRATE_LOCK = 0x5E65_7702  # pg_advisory_xact_lock key of a migration (WRITE_LOCK: pg_schema's)
CONNECT_TIMEOUT_S = 10
# a silent network cut is noticed within ~20 s; a statement stuck behind a lock gives up after 60 s
_CONNECT_OPTIONS = dict(application_name="segstudio", connect_timeout=str(CONNECT_TIMEOUT_S), keepalives="1",
                        keepalives_idle="10", keepalives_interval="3", keepalives_count="3")
_SERVER_OPTIONS = "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000"
_SECRETS = ("password", "sslpassword")
MAX_PATH_BYTES = 2000  # PostgreSQL's unique index on a path holds about 2.7 kB: longer paths are not added


def checked_conninfo(spec: str) -> tuple[str, str]:
    """(conninfo to connect with, location to show and hand to other processes) of a --store value.
    Refuses a password in it; the person's own settings (options, hostaddr, a socket folder) are kept."""
    try:
        params = pg_conninfo.conninfo_to_dict(spec.strip())
    except psycopg.ProgrammingError as e:
        raise StoreError(f"not a PostgreSQL connection string: {e}") from None
    if any(params.get(k) for k in _SECRETS):
        raise StoreError("the store's address holds a password: remove it and let libpq find it "
                         "(a ~/.pgpass or PGPASSFILE entry, or a service file)")
    ours: dict[str, str] = dict(_CONNECT_OPTIONS)
    ours["options"] = f"{params['options']} {_SERVER_OPTIONS}" if params.get("options") else _SERVER_OPTIONS
    for k in ("application_name", "connect_timeout"):
        if params.get(k):
            ours.pop(k)
    return pg_conninfo.make_conninfo(spec.strip(), **ours), location_of(params)


def location_of(params: dict) -> str:
    """The address without secrets: postgresql://USER@HOST:PORT/DB where that says it all, else the
    libpq conninfo (a socket folder, hostaddr, a service, options) that opens the same database."""
    simple = set(params) <= {"host", "port", "user", "dbname", "sslmode", "sslrootcert", "sslcert", "sslkey"}
    host = str(params.get("host") or "")
    if simple and host and not host.startswith("/") and "," not in host:
        user = quote(str(params["user"]), safe="") + "@" if params.get("user") else ""
        port = f":{params['port']}" if params.get("port") else ""
        keep = {k: v for k, v in params.items() if k.startswith("ssl")}
        query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in sorted(keep.items()))
        return f"postgresql://{user}{host}{port}/{quote(str(params.get('dbname') or ''), safe='')}" + \
            (f"?{query}" if query else "")
    return pg_conninfo.make_conninfo("", **{k: v for k, v in params.items() if k not in _SECRETS})


log = logging.getLogger(__name__)

_SQL_CACHE: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """The shared SQL's `?` placeholders as psycopg's `%s` (a literal `%` doubled); quoted text untouched."""
    out = _SQL_CACHE.get(sql)
    if out is None:
        parts, quoted = [], False
        for ch in sql:
            if ch == "'":
                quoted = not quoted
            if ch == "%":
                parts.append("%%")
            elif ch == "?" and not quoted:
                parts.append("%s")
            else:
                parts.append(ch)
        out = _SQL_CACHE[sql] = "".join(parts)
    return out


class PgConnection:
    """A psycopg connection that takes the shared SQL (`?` placeholders), as sqlite3's does."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, sql: str, args: Any = ()) -> psycopg.Cursor:
        return self.raw.execute(pg_sql(sql), list(args)) if args else self.raw.execute(sql)

    def executemany(self, sql: str, rows) -> psycopg.Cursor:
        rows = list(rows)
        cur = self.raw.cursor()
        if rows:
            cur.executemany(pg_sql(sql), rows)
        return cur


class PostgresStore(SqlStore):
    """A project in a PostgreSQL database (`location`); `root` is this client's image folder."""

    kind = "postgresql"
    exclusive_claims = True
    _driver_errors = (psycopg.Error,)
    _LIKE = "ILIKE"  # SQLite's LIKE ignores ASCII case: the name filter matches the same names on both

    def __init__(self, spec: str, root: str | Path | None = None, *, create: bool = True):
        self.conninfo, self.location = checked_conninfo(spec)
        self.db_path = Path(self.location)  # never opened as a file: `kind` says what it is
        self.root = Path(root) if root is not None else None
        self._init_common()
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, psycopg.Connection]] = []
        self._conns_lock = threading.Lock()
        try:
            c = self.conn
        except psycopg.Error as e:  # never connected: nothing to reconnect to
            self.close()
            raise StoreError(_cannot_connect(self.location, e)) from e
        try:
            self.user = str(_one(c.execute("SELECT session_user")))
            self._migrate(create)
        except psycopg.Error as e:
            self.close()
            raise self._store_error(e) from e

    # ------------------------------------------------------------------ connections
    def connect(self, **kw) -> psycopg.Connection:
        """A new connection to the project's database (autocommit: a transaction is explicit)."""
        return self._connect(**kw)

    def _connect(self, **kw) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=True, **kw)

    @property
    def conn(self) -> PgConnection:
        c = getattr(self._local, "conn", None)
        if c is None or c.raw.closed or c.raw.broken:
            c = PgConnection(self._connect())
            self._local.conn = c
            with self._conns_lock:
                # a thread that has ended leaves its connection behind: close those (the server's
                # connections are the team's, not this client's to hoard)
                live = [(t, k) for t, k in self._conns if t.is_alive() and not k.closed]
                for t, k in self._conns:
                    if (t, k) not in live:
                        _close(k)
                self._conns = live + [(threading.current_thread(), c.raw)]
        return c

    def close(self) -> None:
        with self._conns_lock:
            for _, c in self._conns:
                _close(c)
            self._conns.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        c = self.conn
        with c.raw.transaction():
            c.raw.execute("SELECT pg_advisory_xact_lock(%s)", (pg_schema.WRITE_LOCK,))
            yield c

    def _forget_connection(self) -> None:
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            try:
                c.raw.close()
            except psycopg.Error:
                pass

    def _store_error(self, e: BaseException) -> StoreError:
        where = f"the project database {self.location}"
        if isinstance(e, StoreError):
            return e
        if isinstance(e, pg_errors.InsufficientPrivilege):
            text = _first_line(e)
            for table, what in (("settings", "change the project's settings (review on or off)"),
                                ("classes", "change the classes")):
                if f"table {table}" in text:
                    return StoreError(f"only a lead may {what} ({text})")
            return StoreError(f"{where} refused this: your role may not do it ({text})")
        if isinstance(e, pg_errors.QueryCanceled):
            return StoreError(f"{where} did not answer in time ({_first_line(e)})")
        if _connection_lost(e, getattr(self._local, "conn", None)):
            self._forget_connection()
            return StoreError(f"lost the connection to {where}; reconnecting ({_first_line(e)})")
        if isinstance(e, psycopg.OperationalError):  # the server's limits: too long, disk full, deadlock
            return StoreError(f"{where} could not do this ({_first_line(e)})")
        if isinstance(e, psycopg.DataError):
            return StoreError(f"{where} refused a value: {_first_line(e)}")
        return StoreError(f"{where} failed ({_first_line(e)})")

    def _clock(self, c) -> float:
        """The server's time: every client judges claims by the same clock."""
        return float(_one(c.execute("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)")))

    def _may_lead(self, t) -> bool:
        """The project's owner, a superuser or a member of the lead role (everyone while no roles are set up)."""
        return bool(_one(t.execute("SELECT public.segstudio_member('lead')")))

    def _model_may_not_write(self, t, image_ids: list[int]) -> set[int]:
        """The server's regions policy for a model's regions, asked ahead (one query a batch): an image
        this login holds (a lead: any) or one nobody holds that is no person's work yet. A model run
        leaves the others alone instead of stopping at the policy's refusal."""
        if not image_ids:
            return set()
        return {int(r[0]) for r in t.execute(
            "SELECT i FROM unnest(CAST(? AS BIGINT[])) AS i "
            "WHERE NOT (public.segstudio_holds(i) OR public.segstudio_free(i))", (image_ids,))}

    def _insert_paths(self, t, paths: list[str]) -> None:
        long = {p for p in paths if len(p.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES}
        if long:
            log.warning("%d file paths are longer than %d bytes, more than the server's index holds; not added "
                        "(the first: %s...)", len(long), MAX_PATH_BYTES, sorted(long)[0][:80])
            paths = [p for p in paths if p not in long]
        t.execute("INSERT INTO images(path) SELECT p FROM unnest(CAST(? AS TEXT[])) AS p ORDER BY p "
                  "ON CONFLICT DO NOTHING", (sorted(paths),))

    def _after_load(self, t, table: str) -> None:
        pg_schema.reset_identity(t, table)

    # ------------------------------------------------------------------ schema
    def _migrate(self, create: bool) -> None:
        """Create the schema or bring it up to date, in one transaction under a lock of its own (two
        clients opening an old project do not both migrate; PostgreSQL's DDL is transactional)."""
        c = self.conn
        with c.raw.transaction():
            c.raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            if _one(c.raw.execute("SELECT to_regclass('meta')")) is None:
                foreign = pg_schema.foreign_tables(c)
                if foreign:
                    raise StoreError(f"the database {self.location} holds tables of another application "
                                     f"({', '.join(foreign[:8])}), not a segstudio project; it was not changed")
                if not create:
                    raise StoreError(f"no segstudio project in {self.location}")
                for stmt in split_sql(schema_v1("postgresql")):
                    c.execute(stmt)
                c.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
                c.execute("INSERT INTO meta(key, value) VALUES ('created', CAST(EXTRACT(EPOCH FROM now()) AS TEXT))")
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else 0
            if version == 0:
                raise StoreError(f"{self.location} has segstudio's table names but no schema version: not a "
                                 "segstudio project; it was not changed")
            if version > SCHEMA_VERSION:
                raise StoreError(f"this project was written by a newer segstudio (schema {version}, this version "
                                 f"reads up to {SCHEMA_VERSION}); upgrade segstudio")
            while version < SCHEMA_VERSION:
                for stmt in split_sql(migration(version, "postgresql")):
                    c.execute(stmt)
                version += 1
                c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
            pg_schema.install_extras(c)

    # ------------------------------------------------------------------ live view
    def listen(self, on_event: Callable[[dict], None]) -> Listener | None:
        """Other clients' changes as they commit (LISTEN/NOTIFY on a connection of its own): see pg_listen."""
        from segstudio.core.store.pg_listen import PgListener
        return PgListener(self.connect, on_event)


def _cannot_connect(location: str, e: BaseException) -> str:
    """Why a first connection failed, and what the person can do about it."""
    text = _first_line(e)
    low = str(e).lower()
    if "connect privilege" in low or "permission denied for database" in low:
        hint = "your login is not a member of this project: ask its lead to run `segstudio store grant`"
    elif "role" in low and "does not exist" in low:
        hint = ("the server has no login of that name: give yours in the address (postgresql://NAME@host/db), "
                "PGUSER or a service file")
    elif "database" in low and "does not exist" in low:
        hint = "no database of that name on the server: check the address"
    elif "password" in low or "authentication" in low:
        hint = "the server wants a password: put it in ~/.pgpass (or PGPASSFILE), never in the address"
    else:
        hint = "is the server running, and the address right?"
    return f"cannot connect to the project database {location}: {text} ({hint})"


def _close(c: psycopg.Connection) -> None:
    try:
        c.close()
    except psycopg.Error:
        pass


def _connection_lost(e: BaseException, c) -> bool:
    """The connection is gone (a restart, a network cut), not a refusal on a live one."""
    if c is not None and (c.raw.closed or c.raw.broken):
        return True
    state = getattr(getattr(e, "diag", None), "sqlstate", None) or getattr(e, "sqlstate", None) or ""
    return isinstance(e, psycopg.OperationalError) and (not state or state.startswith("08") or
                                                        state in ("57P01", "57P02", "57P03"))


def _one(cur):
    """The first column of a query's one row."""
    row = cur.fetchone()
    if row is None:
        raise StoreError("the project database answered nothing")
    return row[0]


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
