"""The project store. `Store` (api.py) is the protocol everything above core talks to; its SQL is
written once (sql_store.py, schema.py, sql_classes.py, sql_team.py) and run by two backends:
`SqliteStore` (sqlite.py, sqlite_open.py: one person's project in a file, the default) and
`PostgresStore` (postgres.py, pg_schema.py, pg_listen.py: a team's project on a server, imported
only when one is named, since psycopg is the `team` extra). open.py picks one (`open_store`).
`StoreError` is what any backend raises for its own failures. rows.py builds the region rows a store
writes (on worker threads too)."""

from segstudio.core.store.api import ClaimedElsewhere, ContainerInfo, HistoryEntry, RemovedClass, Store, StoreError
from segstudio.core.store.open import open_store
from segstudio.core.store.rows import REGION_COLUMNS, encoded_region_row, region_row
from segstudio.core.store.sqlite import SqliteStore, default_db_path

__all__ = ["REGION_COLUMNS", "ClaimedElsewhere", "ContainerInfo", "HistoryEntry", "RemovedClass", "SqliteStore",
           "Store", "StoreError", "default_db_path", "encoded_region_row", "open_store", "region_row"]
