"""The project store. `Store` (api.py) is the protocol everything above core talks to;
`SqliteStore` (sqlite.py, with sqlite_open.py, sqlite_schema.py and sqlite_classes.py) is the
SQLite backend and the only code that touches sqlite3; `StoreError` is what any backend raises
for its own failures. rows.py builds the region rows a store writes (on worker threads too).

A new backend (PostgreSQL is next, DESIGN.md) is one more module here implementing `Store`;
tests/core/test_store_protocol.py checks it against the protocol the same way as SQLite's."""

from segstudio.core.store.api import ContainerInfo, RemovedClass, Store, StoreError
from segstudio.core.store.rows import REGION_COLUMNS, encoded_region_row, region_row
from segstudio.core.store.sqlite import SqliteStore, default_db_path

__all__ = ["REGION_COLUMNS", "ContainerInfo", "RemovedClass", "SqliteStore", "Store", "StoreError", "default_db_path",
           "encoded_region_row", "region_row"]
