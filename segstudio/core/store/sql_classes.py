"""Deleting a class and putting it back, each in the caller's transaction (the SQL stores'
`class_usage`, `remove_class` and `restore_class`; core/class_delete.py makes a delete one
project-level undo step)."""

from __future__ import annotations

import time

from segstudio.core.classes import LabelClass, parse_color
from segstudio.core.errors import BadValue
from segstudio.core.records import DONE, IN_PROGRESS
from segstudio.core.store.api import RemovedClass
from segstudio.core.store.rows import REGION_COLUMNS


def class_usage(c, class_id: int) -> tuple[int, int, int]:
    """(regions, images, done images) of a class: what a delete would take."""
    n, imgs = c.execute("SELECT COUNT(*), COUNT(DISTINCT image_id) FROM regions WHERE class_id=?",
                        (class_id,)).fetchone()
    done = c.execute("SELECT COUNT(*) FROM images WHERE status=? AND id IN "
                     "(SELECT image_id FROM regions WHERE class_id=?)", (DONE, class_id)).fetchone()[0]
    return int(n), int(imgs), int(done)


def checked_name(name: str) -> str:
    """A class name as stored: stripped, not empty, no NUL (PostgreSQL's text cannot hold one, and a
    project must copy between the backends exactly)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise BadValue("class name must not be empty")
    if "\x00" in name:
        raise BadValue("a class name cannot hold a NUL character")
    return name


def remove_class(t, class_id: int, reassign_to: int | None = None) -> RemovedClass:
    """Delete a class (inside transaction `t`); its regions move to `reassign_to` or are deleted.

    A done image that loses regions goes back to in_progress: it no longer holds what a
    person checked. Returns what was taken, for restore_class (the undo of a delete).
    """
    row = t.execute("SELECT id, name, color, hotkey, ignore, position FROM classes WHERE id=?",
                    (class_id,)).fetchone()
    if row is None:
        raise BadValue(f"no class with id {class_id}")
    cls = LabelClass(row[0], row[1], parse_color(row[2]), row[3], bool(row[4]))
    removed = RemovedClass(cls, row[5], moved_to=reassign_to)
    if reassign_to is not None:
        if reassign_to == class_id or not t.execute("SELECT 1 FROM classes WHERE id=?",
                                                     (reassign_to,)).fetchone():
            raise BadValue(f"cannot move the regions of {cls.name!r} to class id {reassign_to}")
        removed.moved = [r[0] for r in t.execute("SELECT id FROM regions WHERE class_id=?", (class_id,))]
        t.execute("UPDATE regions SET class_id=? WHERE class_id=?", (reassign_to, class_id))
    else:
        removed.deleted = [tuple(r) for r in t.execute(
            f"SELECT {', '.join(REGION_COLUMNS)} FROM regions WHERE class_id=?", (class_id,))]
        removed.reopened = dict(t.execute(
            "SELECT id, status FROM images WHERE status=? AND id IN "
            "(SELECT image_id FROM regions WHERE class_id=?)", (DONE, class_id)).fetchall())
        t.executemany("UPDATE images SET status=?, updated=? WHERE id=?",
                      [(IN_PROGRESS, time.time(), i) for i in removed.reopened])
        t.execute("DELETE FROM regions WHERE class_id=?", (class_id,))
    t.execute("DELETE FROM classes WHERE id=?", (class_id,))
    return removed


def restore_class(t, removed: RemovedClass) -> LabelClass:
    """Put back what remove_class took (inside transaction `t`): the class at its place in the
    list, its regions (or the ones moved away, if still in the class they went to), and the
    statuses it changed (if still in_progress). A name or id taken since gets a fresh one;
    regions of images removed since stay gone."""
    c = removed.cls
    cid = c.id
    if t.execute("SELECT 1 FROM classes WHERE id=?", (cid,)).fetchone():
        cid = int(t.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM classes").fetchone()[0])
    name, k = c.name, 1
    while t.execute("SELECT 1 FROM classes WHERE name=?", (name,)).fetchone():
        k += 1
        name = f"{c.name} (restored{'' if k == 2 else f' {k - 1}'})"
    hotkey = c.hotkey
    if hotkey and t.execute("SELECT 1 FROM classes WHERE hotkey=?", (hotkey,)).fetchone():
        hotkey = ""
    back = LabelClass(cid, name, c.color, hotkey, c.ignore)
    t.execute("UPDATE classes SET position=position+1 WHERE position>=?", (removed.position,))
    t.execute("INSERT INTO classes(id, name, color, hotkey, ignore, position) VALUES (?,?,?,?,?,?)",
              (back.id, back.name, back.hex_color, back.hotkey, int(back.ignore), removed.position))
    if removed.moved_to is not None:
        t.executemany("UPDATE regions SET class_id=? WHERE id=? AND class_id=?",
                      [(cid, rid, removed.moved_to) for rid in removed.moved])
    images = {r[0] for r in t.execute("SELECT id FROM images")} if removed.deleted else set()
    cls_at = REGION_COLUMNS.index("class_id")
    rows = [row[:cls_at] + (cid,) + row[cls_at + 1:] for row in removed.deleted if row[1] in images]
    insert = (f"INSERT INTO regions({', '.join(REGION_COLUMNS)}) "
              f"VALUES ({','.join('?' * len(REGION_COLUMNS))}) ON CONFLICT DO NOTHING")
    t.executemany(insert, rows)
    t.executemany("UPDATE images SET status=?, updated=? WHERE id=? AND status=?",
                  [(old, time.time(), i, IN_PROGRESS) for i, old in removed.reopened.items()])
    return back
