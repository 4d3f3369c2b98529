"""Copy a project exactly from one store to another (SQLite to PostgreSQL and back): every table of
`COPY_TABLES` in its order (the foreign keys' order), rows with their own ids, blobs, floats and
NULLs as they are; the destination's id sequences follow the copied ids (`load_rows`).

The destination must be empty (no image, class, region or history): a copy never merges into or
overwrites a project. Claims are not copied (they belong to the windows open on the old store), nor
the meta rows a backend keeps about itself (PostgreSQL's installed triggers: the destination's own
stay, so its triggers are not installed again by whoever opens it next).
"""

from __future__ import annotations

from typing import Callable

from segstudio.core.store.api import Store, StoreError
from segstudio.core.store.schema import COPY_TABLES

BACKEND_META = frozenset({"pg_extras"})  # meta keys about one backend's own setup, not the project


def is_empty(store: Store) -> bool:
    return not (store.image_count(include_missing=True) or store.classes() or store.region_count()
                or store.history(limit=1))


def copy_project(src: Store, dst: Store, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every table of `src` into the empty `dst`. Returns the rows copied per table. Each table is
    one transaction: a copy that fails half-way says so, and the destination is to be emptied (a new
    database, or the new file removed) before another try, which it refuses until then."""
    if not is_empty(dst):
        raise StoreError(f"the destination {dst.location} already holds a project "
                         f"({dst.image_count(include_missing=True)} images, {len(dst.classes())} classes); "
                         "a copy goes into an empty database or a new file only")
    counts: dict[str, int] = {}
    for table in COPY_TABLES:
        cols, rows = src.table_rows(table)
        if table == "meta":
            rows = own_meta(cols, rows, keep=False) + own_meta(*dst.table_rows("meta"), keep=True)
        try:
            dst.load_rows(table, cols, rows)
        except StoreError as e:
            done = ", ".join(counts) or "none"
            redo = "remove that file" if dst.kind == "sqlite" else "drop and create that database again"
            raise StoreError(f"the copy stopped at table {table} (copied: {done}); {dst.location} holds a part "
                             f"of the project now: {redo} before another try ({e})") from None
        counts[table] = len(rows)
        if progress is not None:
            progress(table, len(rows))
    return counts


def own_meta(cols: list[str], rows: list[tuple], keep: bool) -> list[tuple]:
    """The meta rows about a backend's own setup (keep=True), or all the others (keep=False)."""
    k = cols.index("key")
    return [r for r in rows if (r[k] in BACKEND_META) == keep]
