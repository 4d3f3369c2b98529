"""A team's part of the SQL stores, each in the caller's connection or transaction: who changed
what (history rows written with the change), review of done images, and a project's tables as rows
for `segstudio store copy`. What a store reads back here is hostile (a file or server someone else
wrote): a detail that is not a JSON object reads as an empty one, a table or column that is not the
schema's is refused before any SQL is built."""

from __future__ import annotations

import json
import time
from typing import Iterable, Sequence

from segstudio.core.errors import BadValue
from segstudio.core.records import DONE, IN_PROGRESS
from segstudio.core.store.api import HistoryEntry, StoreError
from segstudio.core.store.schema import COPY_COLUMNS, COPY_TABLES

NOTE_MAX = 10_000  # characters of a reviewer's note
BACKEND_META = frozenset({"pg_extras", "role_annotator", "role_reviewer", "role_lead"})  # a server's own


def record(t, image_id: int, who: str, at: float, what: str, detail: dict) -> None:
    t.execute("INSERT INTO history(image_id, who, at, what, detail) VALUES (?,?,?,?,?)",
              (image_id, who, at, what, json.dumps(detail)))


def record_statuses(t, who: str, at: float, ids: Sequence[int], status: str) -> None:
    """A history row for each image whose status changes, in one statement per 900 images (inside the
    write transaction, before the change). The detail's JSON is put together in SQL from two
    statuses, words of a fixed set (the CHECK on images.status; `status` is checked by the caller)."""
    for k in range(0, len(ids), 900):
        chunk = list(ids[k:k + 900])
        t.execute("INSERT INTO history(image_id, who, at, what, detail) "
                  "SELECT id, CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), 'status', "
                  "'{\"from\": \"' || status || '\", \"to\": \"' || CAST(? AS TEXT) || '\"}' FROM images "
                  f"WHERE id IN ({','.join('?' * len(chunk))}) AND status<>CAST(? AS TEXT) ORDER BY id",
                  [who, at, status] + chunk + [status])


def unaccept(t, who: str, at: float, image_id: int) -> None:
    """Regions of an accepted image changed: what the reviewer accepted is not there any more."""
    if t.execute("UPDATE images SET review=NULL WHERE id=? AND review='accepted'", (image_id,)).rowcount:
        record(t, image_id, who, at, "review", {"accepted": False, "why": "its regions changed after acceptance"})


def checked_note(note: str) -> str:
    if not isinstance(note, str):
        raise BadValue("a review note is text")
    note = note.strip()
    if "\x00" in note:
        raise BadValue("a review note cannot hold a NUL character")
    if len(note) > NOTE_MAX:
        raise BadValue(f"a review note is at most {NOTE_MAX} characters (this one has {len(note)})")
    return note


def review_image(t, who: str, image_id: int, accept: bool, note: str) -> None:
    """Accept a done image, or return it to its annotator with a note (it goes back to in_progress)."""
    note = checked_note(note)
    row = t.execute("SELECT status FROM images WHERE id=?", (image_id,)).fetchone()
    if row is None:
        raise BadValue(f"no image with id {image_id}")
    if row[0] != DONE:
        raise BadValue("only a done image can be reviewed; this one is " + str(row[0]).replace("_", " "))
    if accept:
        t.execute("UPDATE images SET review='accepted', note=? WHERE id=?", (note or None, image_id))
    else:
        if not note:
            raise BadValue("say in a note what to fix when returning an image")
        record_statuses(t, who, time.time(), [image_id], IN_PROGRESS)
        t.execute("UPDATE images SET review='returned', note=?, status=?, updated=? WHERE id=?",
                  (note, IN_PROGRESS, time.time(), image_id))
    record(t, image_id, who, time.time(), "review", {"accepted": bool(accept), "note": note})


def review_counts(c) -> dict[str, int]:
    """Images waiting for review (done, not reviewed), accepted, and returned (not done again yet)."""
    row = c.execute("SELECT "
                    "COALESCE(SUM(CASE WHEN status=? AND review IS NULL THEN 1 ELSE 0 END), 0), "
                    "COALESCE(SUM(CASE WHEN status=? AND review='accepted' THEN 1 ELSE 0 END), 0), "
                    "COALESCE(SUM(CASE WHEN review='returned' THEN 1 ELSE 0 END), 0) "
                    "FROM images WHERE missing=0", (DONE, DONE)).fetchone()
    return {"waiting": int(row[0]), "accepted": int(row[1]), "returned": int(row[2])}


def history(c, image_id: int | None, who: str | None, limit: int | None) -> list[HistoryEntry]:
    conds: list[str] = []
    args: list = []
    if image_id is not None:
        conds.append("image_id=?")
        args.append(image_id)
    if who is not None:
        conds.append("who=?")
        args.append(who)
    q = "SELECT id, image_id, who, at, what, detail FROM history" + (" WHERE " + " AND ".join(conds) if conds else "")
    if limit is not None:  # the newest `limit`, still oldest first
        q = f"SELECT * FROM ({q} ORDER BY at DESC, id DESC LIMIT {int(limit)}) AS newest"
    q += " ORDER BY at, id"
    return [HistoryEntry(int(i), int(img), str(w), float(at), str(what), _detail(d))
            for i, img, w, at, what, d in c.execute(q, args)]


def _detail(text) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) and len(text) < 1_000_000 else {}
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _columns(c, table: str) -> list[str]:
    """The schema's columns of a table a project is copied by, after checking the database has them
    (read as hostile: a file's own column names never become SQL)."""
    if table not in COPY_TABLES:
        raise StoreError(f"{table!r} is not a table a project is copied by")
    cols = list(COPY_COLUMNS[table])
    cur = c.execute(f"SELECT * FROM {table} WHERE 1=0")  # the name is one of COPY_TABLES, never a user's
    have = {d[0] for d in cur.description}
    if not set(cols) <= have:
        raise StoreError(f"the {table} table lacks columns {sorted(set(cols) - have)}: not a segstudio project "
                         "of this version")
    return cols


def table_rows(c, table: str) -> tuple[list[str], list[tuple]]:
    """A table's columns and all its rows (in id / key order), blobs as bytes."""
    cols = _columns(c, table)
    order = "id" if "id" in cols else cols[0]
    rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in c.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]
    if table == "meta":  # a backend's own bookkeeping (PostgreSQL's trigger version) is not the project's
        rows = [r for r in rows if r[0] not in BACKEND_META]
    return cols, rows


def load_rows(t, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Rows into a table of a project being filled by a copy. Its columns must be the schema's; the rows
    a new project was created with (meta's version, the region counter) are replaced."""
    cols = _columns(t, table)
    if list(columns) != cols:
        raise StoreError(f"cannot copy into {table}: its columns are {cols}, not {list(columns)[:20]}")
    if table == "meta":  # the new project's own rows give way, but a backend's bookkeeping stays
        t.executemany("DELETE FROM meta WHERE key=?", [(k,) for k in ("schema_version", "created")])
    elif table in ("settings", "counters"):
        t.execute(f"DELETE FROM {table}")
    marks = ",".join("?" * len(columns))
    t.executemany(f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks})", [tuple(r) for r in rows])
