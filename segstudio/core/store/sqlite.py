"""The SQLite backend of the project store (the `Store` protocol of store/api.py): SQLite in WAL
mode, one file per project. Its SQL is shared with the PostgreSQL backend (sql_store.py); what is
SQLite's own is here: connections, the write lock, the migrations, and SQLite's error words.

Every write is one transaction, so a crash loses at most the write in flight and leaves a
database that passes `PRAGMA integrity_check`; with `synchronous=FULL` a committed write is on
disk when the call returns (it survives a power cut). Each thread gets its own connection (WAL lets
the GUI read while the autosaver writes). Every public method says SQLite's errors as StoreError:
no caller sees an sqlite3 exception.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from segstudio.core.store.api import Listener, StoreError
from segstudio.core.store.schema import SCHEMA_VERSION, migration, schema_v1, split_sql
from segstudio.core.store.sql_store import INSERT_REGION, SqlStore
from segstudio.core.store.sqlite_open import refuse_foreign, store_error, wal

__all__ = ["DB_NAME", "INSERT_REGION", "SqliteStore", "default_db_path"]


def os_user() -> str:
    """Who this client writes as on an SQLite project: the login name (history's "who")."""
    try:
        return getpass.getuser() or "user"
    except (KeyError, OSError, ImportError):  # no passwd entry (a container), no USER variable
        return "user"


class SqliteStore(SqlStore):
    """The project store in one SQLite file (`db_path`); `root` is the image folder."""

    kind = "sqlite"
    exclusive_claims = False
    _driver_errors = (sqlite3.Error,)
    busy_timeout_s = 30.0  # how long a write waits for another process's lock before "locked"

    def __init__(self, db_path: str | Path, root: str | Path | None = None, *, create: bool = True):
        self.db_path = Path(db_path)
        self.root = Path(root) if root is not None else None
        if not self.db_path.exists():
            if not create:
                raise StoreError(f"no project database at {self.db_path}")
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.location = str(self.db_path)
        self.user = os_user()
        self._init_common()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        refuse_foreign(self.db_path)  # before anything writes to it (WAL mode, the schema)
        try:
            self._migrate()
        except sqlite3.Error as e:  # read-only, locked past the timeout, damaged past its header
            raise store_error(e, self.db_path) from e

    # ------------------------------------------------------------------ connections
    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(str(self.db_path), timeout=self.busy_timeout_s, isolation_level=None,
                                    check_same_thread=False)
                c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                wal(c, self.busy_timeout_s)
                # FULL: a commit is on disk (the WAL is fsynced) before it returns, so an edit
                # the window reports saved survives a power cut; NORMAL could lose the last ones
                c.execute("PRAGMA synchronous=FULL")
                if sys.platform == "darwin":  # fsync alone does not flush the drive's cache there
                    c.execute("PRAGMA fullfsync=ON")
                c.execute("PRAGMA foreign_keys=ON")
            except sqlite3.OperationalError as e:  # locked, read-only, cannot be opened
                raise store_error(e, self.db_path) from None
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.db_path} is not a usable SQLite database: {e}") from None
            self._local.conn = c
            with self._conns_lock:
                self._conns.append(c)
        return c

    def close(self) -> None:
        with self._conns_lock:
            for c in self._conns:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    @staticmethod
    def _tables(c: sqlite3.Connection) -> set[str]:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    @staticmethod
    def _version(c: sqlite3.Connection) -> int:
        row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Create the schema or bring it up to date. Several processes may open the same new
        project at once: each step runs in one BEGIN IMMEDIATE transaction and looks again at
        what is there once it holds the write lock, so only the first one creates or migrates."""
        try:
            c = self.conn
            tables = self._tables(c)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.db_path} is not a segstudio project database: {e}") from None
        if not tables:
            with self.transaction() as t:
                if not self._tables(t):  # nobody created it while we waited for the lock
                    for stmt in split_sql(schema_v1("sqlite")):
                        t.execute(stmt)
                    t.execute("INSERT INTO meta VALUES ('schema_version', '1')")  # the migrations follow
                    t.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            tables = self._tables(c)
        if "meta" not in tables:
            raise StoreError(f"{self.db_path} is an SQLite file but not a segstudio project")
        version = self._version(c)
        if version > SCHEMA_VERSION:
            raise StoreError(f"this project was written by a newer segstudio (schema {version}, "
                             f"this version reads up to {SCHEMA_VERSION}); upgrade segstudio")
        while version < SCHEMA_VERSION:
            with self.transaction() as t:
                version = self._version(t)  # another process may have migrated meanwhile
                if version >= SCHEMA_VERSION:
                    break
                for stmt in split_sql(migration(version, "sqlite")):
                    t.execute(stmt)
                version += 1
                t.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    def _store_error(self, e: BaseException) -> StoreError:
        return store_error(e, self.db_path) if isinstance(e, sqlite3.Error) else StoreError(str(e))

    def _insert_paths(self, t, paths: list[str]) -> None:
        try:
            # one statement over a JSON array: ~3x faster than executemany for 100k rows;
            # the ORDER BY makes the index inserts sequential
            t.execute("INSERT OR IGNORE INTO images(path) SELECT value FROM json_each(?) ORDER BY value",
                      (json.dumps(paths),))
        except sqlite3.OperationalError:  # an SQLite built without JSON functions
            super()._insert_paths(t, paths)

    def listen(self, on_event: Callable[[dict], None]) -> Listener | None:
        """No live feed: an SQLite project is one person's (other windows on it see changes when they
        read again)."""
        return None


DB_NAME = "project.db"  # the database file in a project's data folder


def default_db_path(folder: str | Path) -> Path:
    """FOLDER/.segstudio/project.db: where a project's database is when --project is not given."""
    return Path(folder) / ".segstudio" / DB_NAME
