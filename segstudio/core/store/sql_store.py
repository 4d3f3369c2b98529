"""The store's SQL, written once for both backends (`SqlStore`): SQLite (sqlite.py) and PostgreSQL
(postgres.py) subclass it with their connections, transactions, clock and error words.

The statements here run unchanged on both: `?` placeholders (the PostgreSQL connection turns them
into psycopg's `%s` and sends every value separately, server-side binding), `ON CONFLICT` upserts,
CAST where a parameter stands alone, sums cast to integers. Every write is one transaction that
holds the project's write lock (SQLite's BEGIN IMMEDIATE, a PostgreSQL advisory lock), so the
read-then-write steps below (ids, counters, claims, a status read before a model's write) see no
other writer between their read and their write on either backend.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Sequence

import segstudio.core.store.sql_classes as classes_sql
import segstudio.core.store.sql_team as team_sql
from segstudio.core.store.sql_claims import SqlClaims
from segstudio.core.classes import LabelClass, default_color, parse_color
from segstudio.core.errors import BadValue
from segstudio.core.records import DONE, NEW, STATUSES, UNFINISHED, ImageRecord
from segstudio.core.region import Region
from segstudio.core.store.api import ContainerInfo, HistoryEntry, RemovedClass, StoreError
from segstudio.core.store.rows import REGION_COLUMNS, ROW_W, region_row, row_region

IMG_COLS = "id, path, width, height, status, error, missing, hash, uncertainty, review, note"


def image_record(row) -> ImageRecord:
    return ImageRecord(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7], row[8], row[9], row[10])


_REG_COLS = "id, class_id, x, y, w, h, rle, z, source, score, iscrowd, extra, track"

INSERT_REGION = (f"INSERT INTO regions({', '.join(REGION_COLUMNS)}) VALUES ({','.join('?' * len(REGION_COLUMNS))}) "
                 "ON CONFLICT(id) DO UPDATE SET "
                 + ", ".join(f"{c}=excluded.{c}" for c in REGION_COLUMNS if c != "id"))

# the status an image gets, and what that does to its review: marking it done (again) puts it back in
# the reviewer's queue; any other change of an accepted image takes the acceptance back
SET_STATUS = ("UPDATE images SET review=CASE WHEN status=CAST(? AS TEXT) THEN review "
              "WHEN CAST(? AS TEXT)='done' THEN NULL WHEN review='accepted' THEN NULL ELSE review END, "
              "status=?, updated=? WHERE id=?")


def says_store_errors(fn: Callable) -> Callable:
    """A public method whose backend errors leave it as StoreError (the backend says which ones)."""
    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except self._driver_errors as e:
            raise self._store_error(e) from e
    method.__wrapped_store__ = True  # type: ignore[attr-defined]
    return method


class SqlStore(SqlClaims):
    """What both backends share. A subclass provides `conn` (this thread's connection: `execute`,
    `executemany`), `transaction()` (one write transaction under the project's write lock),
    `_clock()` (the time claims are judged by), `_insert_paths`, `_driver_errors`, `_store_error`,
    `_migrate`, `location`, `kind`, `user` and `close`."""

    kind = "sql"
    exclusive_claims = False
    _driver_errors: tuple[type[BaseException], ...] = ()

    def __init_subclass__(cls, **kw) -> None:
        """Every public method of a backend (its own and these shared ones) says its driver's errors as
        StoreError: no caller ever sees an sqlite3 or psycopg exception."""
        super().__init_subclass__(**kw)
        for name in dir(cls):
            if name.startswith("_") or name in ("transaction", "conn"):
                continue
            value = getattr(cls, name)
            if callable(value) and not isinstance(value, type) and not getattr(value, "__wrapped_store__", False) \
                    and getattr(value, "__module__", "").startswith("segstudio.core.store"):
                setattr(cls, name, says_store_errors(value))

    def _init_common(self) -> None:
        self._id_lock = threading.Lock()
        self._id_pool: list[int] = []

    # the backend's own (typed here for the shared code)
    conn: Any
    user: str
    location: str

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _store_error(self, e: BaseException) -> StoreError:
        raise NotImplementedError

    def _clock(self, c) -> float:
        return time.time()

    def _insert_paths(self, t, paths: list[str]) -> None:
        t.executemany("INSERT INTO images(path) VALUES (?) ON CONFLICT DO NOTHING", [(p,) for p in sorted(paths)])

    _LIKE = "LIKE"

    # ------------------------------------------------------------------ images
    def sync_files(self, found: Iterable[str], mark_missing: bool = True) -> tuple[int, int, int]:
        """Bring the images table in line with the image files found on disk (relative paths).

        New paths are added, vanished ones are marked missing (their annotations stay), files
        that came back are un-marked. Returns (added, marked missing, restored). Safe when several
        processes sync the same project at once: the changes are worked out again inside the
        write transaction, so each path is added once. mark_missing=False: files this scan did
        not find are left as they are (a team's client sees the images through its own mount,
        which may lack a folder: it must not hide the team's images).
        """
        found = set(found)

        def changes(c):
            known = {p: (i, m) for i, p, m in c.execute("SELECT id, path, missing FROM images")}
            return ([p for p in found if p not in known],
                    [i for p, (i, m) in known.items() if mark_missing and not m and p not in found],
                    [i for p, (i, m) in known.items() if m and p in found])

        new_paths, gone, back = changes(self.conn)
        if not (new_paths or gone or back):  # the usual reopen: no write lock taken
            return 0, 0, 0
        with self.transaction() as t:
            new_paths, gone, back = changes(t)  # as they are now that we hold the write lock
            self._insert_paths(t, new_paths)
            t.executemany("UPDATE images SET missing=1 WHERE id=?", [(i,) for i in gone])
            t.executemany("UPDATE images SET missing=0 WHERE id=?", [(i,) for i in back])
        return len(new_paths), len(gone), len(back)

    def image_count(self, include_missing: bool = False) -> int:
        q = "SELECT COUNT(*) FROM images" + ("" if include_missing else " WHERE missing=0")
        return int(self.conn.execute(q).fetchone()[0])

    def image(self, image_id: int) -> ImageRecord:
        row = self.conn.execute(f"SELECT {IMG_COLS} FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise KeyError(f"no image with id {image_id}")
        return image_record(row)

    def image_by_path(self, path: str) -> ImageRecord | None:
        row = self.conn.execute(f"SELECT {IMG_COLS} FROM images WHERE path=?", (path,)).fetchone()
        return image_record(row) if row else None

    def images(self, statuses: Sequence[str] | None = None, name_contains: str | None = None,
               include_missing: bool = False, order: str = "path", limit: int | None = None,
               offset: int = 0) -> list[ImageRecord]:
        where, args = self._filter(statuses, name_contains, include_missing)
        order_sql = {"path": "path", "uncertainty": "uncertainty IS NULL, uncertainty DESC, path"}[order]
        q = f"SELECT {IMG_COLS} FROM images {where} ORDER BY {order_sql}"
        if limit is not None:
            q += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [image_record(r) for r in self.conn.execute(q, args)]

    def image_ids(self, statuses: Sequence[str] | None = None, name_contains: str | None = None,
                  include_missing: bool = False, order: str = "path",
                  unreadable: bool | None = None) -> list[int]:
        """Ids of the images that match; unreadable: True only those whose file could not be
        read (an error stored), False only the others, None both."""
        where, args = self._filter(statuses, name_contains, include_missing)
        if unreadable is not None:
            cond = "error IS NOT NULL" if unreadable else "error IS NULL"
            where = f"{where} AND {cond}" if where else f"WHERE {cond}"
        order_sql = {"path": "path", "uncertainty": "uncertainty IS NULL, uncertainty DESC, path"}[order]
        return [r[0] for r in self.conn.execute(f"SELECT id FROM images {where} ORDER BY {order_sql}", args)]

    def images_by_ids(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        out: dict[int, ImageRecord] = {}
        ids = list(ids)
        for k in range(0, len(ids), 900):
            chunk = ids[k:k + 900]
            q = f"SELECT {IMG_COLS} FROM images WHERE id IN ({','.join('?' * len(chunk))})"
            for row in self.conn.execute(q, chunk):
                out[row[0]] = image_record(row)
        return out

    def _filter(self, statuses, name_contains, include_missing) -> tuple[str, list]:
        conds, args = [], []
        if not include_missing:
            conds.append("missing=0")
        if statuses:
            bad = set(statuses) - set(STATUSES)
            if bad:
                raise BadValue(f"unknown status {sorted(bad)}")
            conds.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if name_contains:
            conds.append(f"path {self._LIKE} ? ESCAPE '\\'")
            esc = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{esc}%")
        return ("WHERE " + " AND ".join(conds)) if conds else "", args

    def status_counts(self, include_missing: bool = False) -> dict[str, int]:
        q = "SELECT status, COUNT(*) FROM images" + ("" if include_missing else " WHERE missing=0") + \
            " GROUP BY status"
        counts = {s: 0 for s in STATUSES}
        counts.update({s: int(n) for s, n in self.conn.execute(q)})
        return counts

    def missing_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM images WHERE missing=1").fetchone()[0])

    def missing_with_regions(self, statuses: Sequence[str] | None = None) -> list[tuple[str, int]]:
        """(path, region count) of images whose file has vanished but which hold regions."""
        where, args = self._filter(statuses, None, True)
        where += (" AND " if where else "WHERE ") + "missing=1"
        q = (f"SELECT path, COUNT(regions.id) FROM images JOIN regions ON regions.image_id=images.id "
             f"{where} GROUP BY images.id, path ORDER BY path")
        return [(p, int(n)) for p, n in self.conn.execute(q, args)]

    def errors(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT path, error FROM images WHERE error IS NOT NULL AND missing=0 ORDER BY path")]

    def next_image(self, after_path: str | None, statuses: Sequence[str] | None = UNFINISHED,
                   backwards: bool = False, skip_claimed: str | None = None) -> ImageRecord | None:
        """The image after (before) `after_path` with one of `statuses`; skip_claimed=OWNER passes over
        the images another owner holds open (two annotators never get the same one)."""
        where, args = self._filter(statuses, None, False)
        if after_path is not None:
            where += (" AND " if where else "WHERE ") + ("path < ?" if backwards else "path > ?")
            args.append(after_path)
        if skip_claimed is not None:
            where += (" AND " if where else "WHERE ") + \
                "NOT EXISTS (SELECT 1 FROM claims c WHERE c.image_id=images.id AND c.owner<>? AND c.expires>?)"
            args += [skip_claimed, self._clock(self.conn)]
        q = f"SELECT {IMG_COLS} FROM images {where} ORDER BY path {'DESC' if backwards else ''} LIMIT 1"
        row = self.conn.execute(q, args).fetchone()
        return image_record(row) if row else None

    def set_status(self, image_ids: int | Iterable[int], status: str) -> None:
        if status not in STATUSES:
            raise BadValue(f"unknown status {status!r}")
        ids = [image_ids] if isinstance(image_ids, int) else list(image_ids)
        with self.transaction() as t:
            self._check_others(t, ids)
            now = time.time()
            team_sql.record_statuses(t, self.user, now, ids, status)
            t.executemany(SET_STATUS, [(status, status, status, now, i) for i in ids])

    def set_decoded(self, image_id: int, width: int, height: int, hash_: str | None) -> None:
        """Size (and hash) of an image that was read. A stored error is cleared only by a full
        decode (hash_ given): a header that reads fine says nothing about the pixels."""
        with self.transaction() as t:
            t.execute("UPDATE images SET width=?, height=?, hash=COALESCE(CAST(? AS TEXT), hash), "
                      "error=CASE WHEN CAST(? AS TEXT) IS NULL THEN error ELSE NULL END WHERE id=?",
                      (width, height, hash_, hash_, image_id))

    def set_error(self, image_id: int, error: str | None) -> None:
        with self.transaction() as t:
            t.execute("UPDATE images SET error=? WHERE id=?", (error, image_id))

    def set_uncertainty(self, values: dict[int, float | None]) -> None:
        with self.transaction() as t:
            t.executemany("UPDATE images SET uncertainty=? WHERE id=?", [(v, k) for k, v in values.items()])

    # ------------------------------------------------------------------ classes
    def classes(self) -> list[LabelClass]:
        rows = self.conn.execute("SELECT id, name, color, hotkey, ignore FROM classes ORDER BY position, id")
        return [LabelClass(i, n, parse_color(c), h, bool(g)) for i, n, c, h, g in rows]

    def class_by_name(self, name: str) -> LabelClass | None:
        for c in self.classes():
            if c.name == name:
                return c
        return None

    def add_class(self, name: str, color: tuple[int, int, int] | None = None, hotkey: str = "",
                  ignore: bool = False) -> LabelClass:
        name = classes_sql.checked_name(name)
        with self.transaction() as t:
            if t.execute("SELECT 1 FROM classes WHERE name=?", (name,)).fetchone():
                raise BadValue(f"a class named {name!r} exists already")
            n, maxpos = t.execute("SELECT COUNT(*), COALESCE(MAX(position), -1) FROM classes").fetchone()
            new_id = t.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM classes").fetchone()[0]
            if color is None:
                color = default_color(int(n))
            if not hotkey and n < 9:
                used = {r[0] for r in t.execute("SELECT hotkey FROM classes")}
                hotkey = next((str(k) for k in range(1, 10) if str(k) not in used), "")
            c = LabelClass(int(new_id), name, color, hotkey, ignore)
            t.execute("INSERT INTO classes(id, name, color, hotkey, ignore, position) VALUES (?,?,?,?,?,?)",
                      (c.id, c.name, c.hex_color, c.hotkey, int(c.ignore), int(maxpos) + 1))
        return c

    def ensure_class(self, name: str, color=None, ignore: bool = False) -> LabelClass:
        return self.class_by_name(name) or self.add_class(name, color, ignore=ignore)

    def update_class(self, cls: LabelClass) -> None:
        classes_sql.checked_name(cls.name)
        with self.transaction() as t:
            other = t.execute("SELECT id FROM classes WHERE name=? AND id<>?", (cls.name, cls.id)).fetchone()
            if other:
                raise BadValue(f"a class named {cls.name!r} exists already")
            if cls.hotkey:
                t.execute("UPDATE classes SET hotkey='' WHERE hotkey=? AND id<>?", (cls.hotkey, cls.id))
            t.execute("UPDATE classes SET name=?, color=?, hotkey=?, ignore=? WHERE id=?",
                      (cls.name, cls.hex_color, cls.hotkey, int(cls.ignore), cls.id))

    def move_class(self, class_id: int, new_index: int) -> None:
        ids = [c.id for c in self.classes()]
        ids.remove(class_id)
        ids.insert(max(0, min(new_index, len(ids))), class_id)
        with self.transaction() as t:
            t.executemany("UPDATE classes SET position=? WHERE id=?", [(i, cid) for i, cid in enumerate(ids)])

    def class_usage(self, class_id: int) -> tuple[int, int, int]:
        """(regions, images, done images) of a class: what a delete would take."""
        return classes_sql.class_usage(self.conn, class_id)

    def remove_class(self, class_id: int, reassign_to: int | None = None) -> RemovedClass:
        """Delete a class in one transaction; its regions move to `reassign_to` or are deleted. A
        done image that loses regions goes back to in_progress. Returns what was taken, for
        restore_class (the undo of a delete)."""
        with self.transaction() as t:
            touched = [r[0] for r in t.execute("SELECT DISTINCT image_id FROM regions WHERE class_id=? ORDER BY 1",
                                               (class_id,))]
            now = time.time()
            removed = classes_sql.remove_class(t, class_id, reassign_to)
            for iid in touched:
                team_sql.record(t, iid, self.user, now, "regions", {"class removed": removed.cls.name,
                                                                    "moved to class": reassign_to})
                if iid in removed.reopened:
                    team_sql.record(t, iid, self.user, now, "status", {"from": DONE, "to": "in_progress"})
                team_sql.unaccept(t, self.user, now, iid)
            return removed

    def restore_class(self, removed: RemovedClass) -> LabelClass:
        """Put back, in one transaction, what remove_class took; returns the class (a name or id
        taken since gets a fresh one)."""
        with self.transaction() as t:
            back = classes_sql.restore_class(t, removed)
            now = time.time()
            touched = sorted({row[1] for row in removed.deleted} | set(removed.reopened))
            known = {r[0] for r in t.execute("SELECT id FROM images")} if touched else set()
            for iid in (i for i in touched if i in known):
                team_sql.record(t, iid, self.user, now, "regions", {"class restored": back.name})
            return back

    # ------------------------------------------------------------------ regions
    def new_region_id(self) -> int:
        with self._id_lock:
            if not self._id_pool:
                self._id_pool = list(reversed(self.reserve_region_ids(256)))
            return self._id_pool.pop()

    def reserve_region_ids(self, n: int) -> list[int]:
        """Ids no other process will hand out (a block taken from a counter in the database)."""
        with self.transaction() as t:
            start = int(t.execute("SELECT next FROM counters WHERE name='region'").fetchone()[0])
            mx = int(t.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM regions").fetchone()[0])
            start = max(start, mx)
            t.execute("UPDATE counters SET next=? WHERE name='region'", (start + n,))
        return list(range(start, start + n))

    def regions(self, image_id: int) -> list[Region]:
        rows = self.conn.execute(f"SELECT {_REG_COLS} FROM regions WHERE image_id=? ORDER BY z, id", (image_id,))
        return [row_region(tuple(r)) for r in rows]

    def region_rows(self, image_id: int) -> list[tuple]:
        """Raw rows (id, class_id, x, y, w, h, rle, z, source, score, iscrowd, extra, track) without decoding."""
        return [tuple(r) for r in self.conn.execute(f"SELECT {_REG_COLS} FROM regions WHERE image_id=? "
                                                    "ORDER BY z, id", (image_id,))]

    def region_count(self, image_id: int | None = None) -> int:
        if image_id is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM regions").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM regions WHERE image_id=?", (image_id,)).fetchone()[0])

    def save_regions(self, image_id: int, upserts: Iterable[Region] = (), deletes: Iterable[int] = (),
                     status: str | None = None, owner: str | None = None) -> None:
        """Write one image's changed regions (and optionally its status) in one transaction. On a
        store with exclusive claims, an image another owner than `owner` holds is refused
        (ClaimedElsewhere) and nothing is written."""
        rows = [region_row(image_id, r) for r in upserts if r.mask.size]
        rows = [row for row in rows if row[ROW_W]]  # emptied by tightening
        deletes = list(deletes)
        with self.transaction() as t:
            self._check_holder(t, image_id, owner)
            now = time.time()
            t.executemany("DELETE FROM regions WHERE id=? AND image_id=?", [(d, image_id) for d in deletes])
            t.executemany(INSERT_REGION, rows)
            if rows or deletes:
                team_sql.record(t, image_id, self.user, now, "regions", {"changed": len(rows), "deleted": len(deletes)})
                team_sql.unaccept(t, self.user, now, image_id)
            if status is not None:
                team_sql.record_statuses(t, self.user, now, [image_id], status)
                t.execute(SET_STATUS, (status, status, status, now, image_id))

    def replace_source_regions(self, image_id: int, source: str, regions: Iterable[Region],
                               status: str | None = None, uncertainty: float | None = None) -> None:
        """Swap the regions one source (a model) made on an image for new ones, in one transaction."""
        rows = [region_row(image_id, r) for r in regions if r.mask.size]
        rows = [row for row in rows if row[ROW_W]]
        with self.transaction() as t:
            t.execute("DELETE FROM regions WHERE image_id=? AND source=?", (image_id, source))
            t.executemany(INSERT_REGION, rows)
            now = time.time()
            team_sql.record(t, image_id, self.user, now, "model", {"source": source, "regions": len(rows)})
            team_sql.unaccept(t, self.user, now, image_id)
            if status is not None:
                team_sql.record_statuses(t, self.user, now, [image_id], status)
                t.execute(SET_STATUS, (status, status, status, now, image_id))
            if uncertainty is not None:
                t.execute("UPDATE images SET uncertainty=? WHERE id=?", (uncertainty, image_id))

    # ------------------------------------------------------------------ sequence files
    def container_info(self, path: str) -> ContainerInfo | None:
        """What the last probe of a stack or video file found. Read back hostile: a row that does
        not hold numbers where numbers belong counts as never probed."""
        row = self.conn.execute("SELECT size, mtime, frames, kind, width, height, error FROM containers "
                                "WHERE path=?", (path,)).fetchone()
        if row is None or not all(isinstance(v, int) for v in (row[0], row[1], row[2], row[4], row[5])):
            return None
        return ContainerInfo(path, row[0], row[1], row[2], str(row[3]), row[4], row[5],
                             None if row[6] is None else str(row[6]))

    def set_container_infos(self, infos: Iterable[ContainerInfo]) -> None:
        """What probes found, in one transaction (a first scan of a folder of TIFFs probes them all)."""
        rows = [(i.path, int(i.size), int(i.mtime_ns), int(i.frames), i.kind, int(i.width), int(i.height), i.error)
                for i in infos]
        if rows:
            with self.transaction() as t:
                t.executemany("INSERT INTO containers(path, size, mtime, frames, kind, width, height, error) "
                              "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
                              "mtime=excluded.mtime, frames=excluded.frames, kind=excluded.kind, "
                              "width=excluded.width, height=excluded.height, error=excluded.error", rows)

    def set_frame_sizes(self, container: str, width: int, height: int) -> None:
        """Give a stack's or video's frame records their size, all at once (their file's probe
        knows it: nothing is decoded, and no frame needs a transaction of its own later)."""
        lo, hi = container + "/", container + "0"  # '0' follows '/': every 'container/...' path
        with self.transaction() as t:
            t.execute("UPDATE images SET width=?, height=? WHERE path >= ? AND path < ? "
                      "AND (width IS NULL OR width != ? OR height IS NULL OR height != ?)",
                      (int(width), int(height), lo, hi, int(width), int(height)))

    def move_annotations(self, from_id: int, to_id: int) -> bool:
        """Move an image's regions and status to another image that has neither (a file annotated
        as one image that now opens as frames: its annotation was of what is now frame 0). False,
        and nothing moved, when the target already holds regions or a status other than new."""
        with self.transaction() as t:
            src = t.execute("SELECT status FROM images WHERE id=?", (from_id,)).fetchone()
            dst = t.execute("SELECT status FROM images WHERE id=?", (to_id,)).fetchone()
            if src is None or dst is None or dst[0] != NEW or \
                    t.execute("SELECT 1 FROM regions WHERE image_id=? LIMIT 1", (to_id,)).fetchone():
                return False
            t.execute("UPDATE regions SET image_id=? WHERE image_id=?", (to_id, from_id))
            now = time.time()
            for iid, detail in ((to_id, {"moved from image": from_id}), (from_id, {"moved to image": to_id})):
                team_sql.record(t, iid, self.user, now, "regions", detail)
            team_sql.record_statuses(t, self.user, now, [to_id], src[0])
            team_sql.record_statuses(t, self.user, now, [from_id], NEW)
            t.execute("UPDATE images SET status=?, updated=? WHERE id=?", (src[0], now, to_id))
            t.execute("UPDATE images SET status=?, updated=? WHERE id=?", (NEW, now, from_id))
        return True

    def max_z(self, image_id: int) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(z), 0) FROM regions WHERE image_id=?",
                                     (image_id,)).fetchone()[0])

    def replace_source_regions_many(self, entries: Iterable[dict],
                                    only_statuses: Sequence[str] | None = None,
                                    claim_owner: str | None = None) -> list[int]:
        """Several images' model results in one transaction. Each entry: image_id, source (the
        regions it replaces; None: all of the image's), rows (from region_row), status (or None),
        uncertainty, width, height (or None).

        With `only_statuses`, an image whose status (read inside the transaction, so a person's
        save cannot slip in between) is not one of them keeps what it has; their ids are returned.
        So does an image open in a window (a live claim, see `claim_image`) of any holder but
        `claim_owner`: read in the same transaction, so a window that claims an image before it
        reads its regions never gets model regions written under it."""
        now = time.time()
        skipped: list[int] = []
        entries = list(entries)
        with self.transaction() as t:
            clock = self._clock(t)
            refused = self._model_may_not_write(t, [e["image_id"] for e in entries])
            for e in entries:
                iid = e["image_id"]
                if iid in refused or t.execute(
                        "SELECT 1 FROM claims WHERE image_id=? AND owner<>? AND expires>? LIMIT 1",
                        (iid, claim_owner or "", clock)).fetchone():
                    skipped.append(iid)
                    continue
                if only_statuses is not None:
                    row = t.execute("SELECT status FROM images WHERE id=?", (iid,)).fetchone()
                    if row is None or row[0] not in only_statuses:
                        skipped.append(iid)
                        continue
                if e["source"] is None:  # the entry replaces every region the image has
                    t.execute("DELETE FROM regions WHERE image_id=?", (iid,))
                else:
                    t.execute("DELETE FROM regions WHERE image_id=? AND source=?", (iid, e["source"]))
                rows = [row for row in e["rows"] if row[ROW_W]]
                t.executemany(INSERT_REGION, rows)
                team_sql.record(t, iid, self.user, now, "model", {"source": e["source"], "regions": len(rows)})
                team_sql.unaccept(t, self.user, now, iid)
                if e.get("status") is not None:
                    team_sql.record_statuses(t, self.user, now, [iid], e["status"])
                t.execute("UPDATE images SET status=COALESCE(CAST(? AS TEXT), status), uncertainty=?, "
                          "width=COALESCE(CAST(? AS INTEGER), width), height=COALESCE(CAST(? AS INTEGER), height), "
                          "error=NULL, updated=? WHERE id=?",
                          (e.get("status"), e.get("uncertainty"), e.get("width"), e.get("height"), now, iid))
        return skipped

    def region_keys(self, image_id: int) -> set[tuple]:
        """(class_id, x, y, w, h, rle) of an image's regions: an import uses it to skip duplicates."""
        return {tuple(r[:5]) + (bytes(r[5]),) for r in self.conn.execute(
            "SELECT class_id, x, y, w, h, rle FROM regions WHERE image_id=?", (image_id,))}

    def regions_per_class(self) -> dict[int, int]:
        return {c: int(n) for c, n in self.conn.execute(
            "SELECT class_id, COUNT(*) FROM regions r JOIN images i ON i.id=r.image_id "
            "WHERE i.missing=0 GROUP BY class_id")}

    def area_per_class(self, statuses: Sequence[str] | None = None) -> dict[int, int]:
        where, args = self._filter(statuses, None, False)
        where = where.replace("missing", "i.missing").replace("status", "i.status")
        return {c: int(n) for c, n in self.conn.execute(
            f"SELECT class_id, SUM(area) FROM regions r JOIN images i ON i.id=r.image_id {where} "
            "GROUP BY class_id", args)}

    def sources(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.conn.execute("SELECT source, COUNT(*) FROM regions GROUP BY source")}

    def image_ids_with_source(self, source: str) -> list[int]:
        """The images that carry regions from this source (a model's name)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT image_id FROM regions WHERE source=?", (source,))]

    # ------------------------------------------------------------------ settings and models
    def get_setting(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except (json.JSONDecodeError, TypeError, RecursionError):
            return default

    def set_setting(self, key: str, value) -> None:
        with self.transaction() as t:
            t.execute("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                      "value=excluded.value", (key, json.dumps(value)))

    def add_model(self, path: str, kind: str, metrics: dict | None = None) -> None:
        with self.transaction() as t:
            t.execute("INSERT INTO models(path, kind, created, metrics) VALUES (?,?,?,?) ON CONFLICT(path) DO UPDATE "
                      "SET kind=excluded.kind, created=excluded.created, metrics=excluded.metrics",
                      (path, kind, time.time(), json.dumps(metrics or {})))

    def done_fingerprint(self) -> tuple:
        """Changes whenever the done images or their regions change (a region added, redrawn or
        removed, an image marked done or reopened): what a watcher polls to know it must learn."""
        imgs = self.conn.execute("SELECT COUNT(*), COALESCE(MAX(updated), 0), COALESCE(SUM(id), 0) FROM images "
                                 "WHERE status=? AND missing=0", (DONE,)).fetchone()
        regs = self.conn.execute("SELECT COUNT(*), COALESCE(MAX(r.id), 0), COALESCE(SUM(r.area), 0), "
                                 "COALESCE(SUM(r.class_id * r.x + r.y), 0) FROM regions r JOIN images i "
                                 "ON r.image_id = i.id WHERE i.status=? AND i.missing=0", (DONE,)).fetchone()
        return tuple(float(v) if isinstance(v, float) else int(v) for v in tuple(imgs) + tuple(regs))

    def last_done_path(self) -> str | None:
        """The image most recently marked done (the annotator's place in the list)."""
        row = self.conn.execute("SELECT path FROM images WHERE status=? AND missing=0 ORDER BY updated DESC, id DESC "
                                "LIMIT 1", (DONE,)).fetchone()
        return row[0] if row else None

    def remove_model(self, path: str) -> None:
        """Forget a checkpoint (the file is the caller's business)."""
        with self.transaction() as t:
            t.execute("DELETE FROM models WHERE path=?", (path,))

    def models(self) -> list[dict]:
        rows = self.conn.execute("SELECT path, kind, created, metrics FROM models ORDER BY created DESC")
        out = []
        for p, k, c, m in rows:
            try:
                metrics = json.loads(m or "{}")
            except (json.JSONDecodeError, TypeError, RecursionError):
                metrics = {}
            out.append({"path": p, "kind": k, "created": c, "metrics": metrics if isinstance(metrics, dict) else {}})
        return out

    def take_number(self, name: str, floor: int = 1) -> int:
        """The next number of the counter `name` (at least `floor`), never handed out twice, to
        any process: read and advanced under the write lock (a live model's version numbers)."""
        with self.transaction() as t:
            row = t.execute("SELECT next FROM counters WHERE name=?", (name,)).fetchone()
            n = max(int(row[0]) if row else 1, floor)
            t.execute("INSERT INTO counters(name, next) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                      "next=excluded.next", (name, n + 1))
        return n

    # ------------------------------------------------------------------ a team: review, history, copy
    def review_enabled(self) -> bool:
        return self.get_setting("review", False) is True

    def set_review_enabled(self, on: bool) -> None:
        self.set_setting("review", bool(on))

    def review_image(self, image_id: int, accept: bool, note: str = "") -> None:
        with self.transaction() as t:
            team_sql.review_image(t, self.user, image_id, accept, note)

    def review_counts(self) -> dict[str, int]:
        return team_sql.review_counts(self.conn)

    def next_for_review(self, after_path: str | None, skip_claimed: str | None = None) -> ImageRecord | None:
        """The next done image waiting for review (after `after_path`, wrapping round), passing over
        images another owner holds open when skip_claimed=OWNER."""
        args: list = [DONE]
        cond = "status=? AND review IS NULL AND missing=0"
        if skip_claimed is not None:
            cond += " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.image_id=images.id AND c.owner<>? AND c.expires>?)"
            args += [skip_claimed, self._clock(self.conn)]
        for after in ((after_path,) if after_path is None else (after_path, None)):
            q = f"SELECT {IMG_COLS} FROM images WHERE {cond}" + (" AND path > ?" if after is not None else "") + \
                " ORDER BY path LIMIT 1"
            row = self.conn.execute(q, args + ([after] if after is not None else [])).fetchone()
            if row:
                return image_record(row)
        return None

    def history(self, image_id: int | None = None, who: str | None = None,
                limit: int | None = None) -> list[HistoryEntry]:
        return team_sql.history(self.conn, image_id, who, limit)

    def table_rows(self, table: str) -> tuple[list[str], list[tuple]]:
        return team_sql.table_rows(self.conn, table)

    def load_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        with self.transaction() as t:
            team_sql.load_rows(t, table, columns, rows)
            self._after_load(t, table)

    def _after_load(self, t, table: str) -> None:
        """What a backend does after rows with explicit ids were loaded (PostgreSQL: its id sequences)."""
