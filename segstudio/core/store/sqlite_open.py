"""Opening an SQLite project database safely: refuse a file that is not a segstudio project before
anything writes to it, and put a new one in WAL mode (retried while another process does the same);
and SQLite's errors said as StoreError, in words a person can act on."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from segstudio.core.store.api import StoreError


def store_error(e: sqlite3.Error, path: Path) -> StoreError:
    """An SQLite error as a StoreError that says what is wrong with which database, e.g. "the
    project database /p/project.db is locked by another process (database is locked)"."""
    text = str(e) or type(e).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        what = "is locked by another process"
    elif "readonly" in low or "read-only" in low:
        what = "cannot be written: the file or its folder is read-only"
    elif "malformed" in low or "not a database" in low or "corrupt" in low:
        what = "is damaged; restore it from a backup or open the folder with a new --project PATH"
    elif "disk i/o" in low or "full" in low or "unable to open" in low:
        what = "cannot be read or written (a disk, space or permission problem)"
    else:
        what = "failed"
    return StoreError(f"the project database {path} {what} ({text})")


def wal(c: sqlite3.Connection, wait_s: float = 30.0) -> None:
    """Put the database in WAL mode. Turning a new database to WAL needs an exclusive lock and
    SQLite answers "database is locked" at once, without waiting, when another process is
    doing the same: try again for a while."""
    deadline = time.monotonic() + wait_s
    delay = 0.002
    while True:
        try:
            c.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


_SQLITE_MAGIC = b"SQLite format 3\x00"
_OWN_TABLES = frozenset({"meta", "images", "classes", "regions", "settings"})


def refuse_foreign(path: Path) -> None:
    """Refuse an existing file that is not a segstudio project while it is still untouched.

    Opening it for real would change it (WAL mode rewrites its header and adds -wal/-shm files;
    an empty schema would be filled in), so this looks first: the file's type and first bytes,
    then its tables through a read-only connection. An empty file or an empty database is a new
    project; one with segstudio's tables goes on to the version check and migrations.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return
    except OSError as e:
        raise StoreError(f"cannot open the project database {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return  # sqlite3 says what is wrong with a folder
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file (a FIFO, device or socket), not a project database")
        head = os.read(fd, len(_SQLITE_MAGIC)) if st.st_size else b""
    finally:
        os.close(fd)
    if not head:
        return
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not an SQLite database, so not a segstudio project; it was not changed")
    try:
        c = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as e:
        raise StoreError(f"cannot read the project database {path}: {e}") from None
    try:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        if not _OWN_TABLES <= tables:
            shown = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
            raise StoreError(f"{path} is an SQLite database of another application (tables: {shown}), "
                             "not a segstudio project; it was not changed")
        if c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() is None:
            raise StoreError(f"{path} has segstudio's table names but no schema version: not a segstudio "
                             "project; it was not changed")
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a usable SQLite database: {e}") from None
    finally:
        c.close()
