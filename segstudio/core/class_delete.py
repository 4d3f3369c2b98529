"""Deleting a class as one project-level undo step.

A class's regions lie on many images, while a Document's undo history covers one image. So a
class delete is recorded here instead: `remove_class` returns what it took out (the
class, its region rows or the ids of the regions it moved, the statuses it changed) and
`restore_class` puts all of it back in one transaction. `ProjectHistory` holds those steps for
the window's Edit > Undo, which turns to it when the open image has nothing left to undo (a class
delete forgets the per-image histories, so any step they hold is newer).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from segstudio.core.classes import LabelClass, parse_color
from segstudio.core.errors import BadValue
from segstudio.core.records import DONE, IN_PROGRESS
from segstudio.core.store import REGION_COLUMNS

if TYPE_CHECKING:
    from segstudio.core.store import ProjectStore


@dataclass
class RemovedClass:
    """What `remove_class` took out, enough for `restore_class` to put it back."""

    cls: LabelClass
    position: int
    moved_to: int | None = None  # the class its regions went to; None: they were deleted
    moved: list[int] = field(default_factory=list)  # ids of the regions moved to `moved_to`
    deleted: list[tuple] = field(default_factory=list)  # full region rows (REGION_COLUMNS order)
    reopened: dict[int, str] = field(default_factory=dict)  # image id -> status before in_progress

    @property
    def regions(self) -> int:
        return len(self.moved) if self.moved_to is not None else len(self.deleted)

    @property
    def images(self) -> int:
        return len({row[1] for row in self.deleted})

    @property
    def nbytes(self) -> int:
        return 256 + 8 * len(self.moved) + sum(128 + len(row[7]) for row in self.deleted)


def class_usage(store: ProjectStore, class_id: int) -> tuple[int, int, int]:
    """(regions, images, done images) of a class: what a delete would take."""
    n, imgs = store.conn.execute("SELECT COUNT(*), COUNT(DISTINCT image_id) FROM regions WHERE class_id=?",
                                (class_id,)).fetchone()
    done = store.conn.execute("SELECT COUNT(*) FROM images WHERE status=? AND id IN "
                             "(SELECT image_id FROM regions WHERE class_id=?)", (DONE, class_id)).fetchone()[0]
    return n, imgs, done

def remove_class(store: ProjectStore, class_id: int, reassign_to: int | None = None) -> RemovedClass:
    """Delete a class in one transaction; its regions move to `reassign_to` or are deleted.

    A done image that loses regions goes back to in_progress: it no longer holds what a
    person checked. Returns what was taken, for restore_class (the undo of a delete).
    """
    with store.transaction() as t:
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
            removed.deleted = list(t.execute(f"SELECT {', '.join(REGION_COLUMNS)} FROM regions WHERE class_id=?",
                                             (class_id,)))
            removed.reopened = dict(t.execute(
                "SELECT id, status FROM images WHERE status=? AND id IN "
                "(SELECT image_id FROM regions WHERE class_id=?)", (DONE, class_id)).fetchall())
            t.executemany("UPDATE images SET status=?, updated=? WHERE id=?",
                          [(IN_PROGRESS, time.time(), i) for i in removed.reopened])
            t.execute("DELETE FROM regions WHERE class_id=?", (class_id,))
        t.execute("DELETE FROM classes WHERE id=?", (class_id,))
    return removed

def restore_class(store: ProjectStore, removed: RemovedClass) -> LabelClass:
    """Put back what remove_class took, in one transaction: the class at its place in the
    list, its regions (or the ones moved away, if still in the class they went to), and the
    statuses it changed (if still in_progress). A name or id taken since gets a fresh one;
    regions of images removed since stay gone."""
    c = removed.cls
    with store.transaction() as t:
        cid = c.id
        if t.execute("SELECT 1 FROM classes WHERE id=?", (cid,)).fetchone():
            cid = t.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM classes").fetchone()[0]
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
        insert = (f"INSERT OR IGNORE INTO regions({', '.join(REGION_COLUMNS)}) "
                  f"VALUES ({','.join('?' * len(REGION_COLUMNS))})")
        t.executemany(insert, rows)
        t.executemany("UPDATE images SET status=?, updated=? WHERE id=? AND status=?",
                      [(old, time.time(), i, IN_PROGRESS) for i, old in removed.reopened.items()])
    return back


class ClassDeletion:
    """One undo step: a class and every region of it (or the move of its regions), statuses included."""

    def __init__(self, removed: RemovedClass):
        self.removed = removed
        self.label = f"Delete class “{removed.cls.name}”"
        self.restored: LabelClass | None = None

    def undo(self, store: ProjectStore) -> None:
        self.restored = restore_class(store, self.removed)

    @property
    def nbytes(self) -> int:
        return self.removed.nbytes


class ProjectHistory:
    """Project-level steps (class deletes), newest last, bounded by memory like UndoStack.

    Undo only: once a class is back, a new edit could give it regions that a blind redo would
    delete again, so deleting it again is the Delete button's job, with its question.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._done: deque[ClassDeletion] = deque()

    def push(self, step: ClassDeletion) -> None:
        self._done.append(step)
        while sum(s.nbytes for s in self._done) > self.max_bytes and len(self._done) > 1:
            self._done.popleft()  # the oldest goes first; the newest stays even if alone too large

    def undo(self, store: ProjectStore) -> ClassDeletion | None:
        """Revert the newest step; returns it (its `restored` class says under which id and name)."""
        if not self._done:
            return None
        step = self._done.pop()
        try:
            step.undo(store)
        except Exception:
            self._done.append(step)  # nothing changed (one transaction): it can be tried again
            raise
        return step

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def undo_label(self) -> str | None:
        return self._done[-1].label if self._done else None

    def __len__(self) -> int:
        return len(self._done)
