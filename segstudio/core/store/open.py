"""Which store a project opens: `--store`, else the SEGSTUDIO_STORE variable, else a `store.toml`
beside the images, else the SQLite file in the project's data folder (the default, one person's).

store.toml (read as hostile: a regular file, small, TOML, one string):

    [store]
    url = "postgresql://anna@db.lab/cells?sslmode=verify-full"
"""

from __future__ import annotations

import os
import importlib
import json
import re
import stat
from pathlib import Path

from segstudio.core.store.api import Store, StoreError

ENV = "SEGSTUDIO_STORE"
STORE_FILE = "store.toml"
_MAX_TOML = 64 * 1024


def store_spec(spec: str | None, folder: Path) -> str | None:
    """The PostgreSQL spec a project opens with (None: its SQLite file), and where it came from."""
    if spec:
        return spec
    env = os.environ.get(ENV, "").strip()
    if env:
        return env
    return spec_from_file(folder / STORE_FILE)


def spec_from_file(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file; it names no store")
        if st.st_size > _MAX_TOML:
            raise StoreError(f"{path} is {st.st_size} bytes, more than a store file holds ({_MAX_TOML})")
        data = os.read(fd, _MAX_TOML + 1)
    finally:
        os.close(fd)
    try:
        url = _url_of(data.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and TOMLDecodeError are ValueErrors
        raise StoreError(f"{path} is not valid TOML: {e}") from None
    if not isinstance(url, str) or not url.strip() or "\x00" in url:
        raise StoreError(f'{path} has no [store] url = "postgresql://..." line')
    return url.strip()


def _url_of(text: str):
    """[store] url of a store.toml: Python's TOML reader (3.11), else tomli, else the one line it needs."""
    for name in ("tomllib", "tomli"):
        try:
            toml = importlib.import_module(name)
        except ImportError:
            continue
        table = toml.loads(text).get("store")
        return table.get("url") if isinstance(table, dict) else None
    m = re.search(r'^\[store\]\s*$(?:\n(?!\[).*)*?^\s*url\s*=\s*("(?:[^"\\\n]|\\.)*")\s*$', text, re.M)
    return json.loads(m.group(1)) if m else None


def is_postgres_spec(spec: str) -> bool:
    """A --store value that names a PostgreSQL server: a postgresql:// URL or a libpq conninfo."""
    s = spec.strip()
    return s.startswith(("postgresql://", "postgres://")) or ("=" in s and not s.startswith(("/", ".")))


def open_store(spec: str | None, folder: Path, sqlite_db: Path, defaults: bool = True) -> Store:
    """The project's store: PostgreSQL when a spec names one (see `store_spec`; defaults=False: only
    `spec`, not SEGSTUDIO_STORE or store.toml), else SQLite at `sqlite_db`."""
    chosen = store_spec(spec, folder) if defaults else spec
    if chosen is None:
        from segstudio.core.store.sqlite import SqliteStore
        return SqliteStore(sqlite_db, folder)
    if not is_postgres_spec(chosen):
        raise StoreError(f"--store takes a postgresql:// URL or a libpq connection string "
                         f"(service=NAME); {chosen[:80]!r} is neither")
    try:  # psycopg only when a team store is named
        from segstudio.core.store.postgres import PostgresStore
    except ImportError as e:  # psycopg is the team extra
        raise StoreError(f"a PostgreSQL store needs psycopg: pip install 'segstudio[team]' ({e})") from None
    return PostgresStore(chosen, folder)
