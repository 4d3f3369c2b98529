"""A class delete as one project-level undo step: what the store's remove_class takes, its
restore_class puts back, even when the project changed in between."""

import numpy as np
import pytest

from segstudio.core.class_delete import ClassDeletion, ProjectHistory
from segstudio.core.errors import BadValue
from segstudio.core.region import Region
from segstudio.core.store import SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "p.db")
    with s.transaction() as t:
        t.executemany("INSERT INTO images(id, path, width, height, status) VALUES (?,?,?,?,?)",
                      [(1, "a.png", 50, 40, "done"), (2, "b.png", 50, 40, "done"), (3, "c.png", 50, 40, "new")])
    a, b = s.add_class("a"), s.add_class("b")
    s.add_class("c")
    for iid, regs in ((1, [(a, 1), (b, 5)]), (2, [(a, 2)]), (3, [(b, 3)])):
        rs = [Region(0, c.id, np.eye(4 + k, dtype=bool), k, k, z=k) for c, k in regs]
        for r, rid in zip(rs, s.reserve_region_ids(len(rs)), strict=True):
            r.id = rid
        s.save_regions(iid, rs)
    yield s
    s.close()


def _state(s):
    rows = sorted(row for iid in (1, 2, 3) for row in s.region_rows(iid))
    return s.classes(), rows, {r.path: r.status for r in s.images()}


def test_delete_and_restore_is_exact(store):
    before = _state(store)
    assert store.class_usage(1) == (2, 2, 2)
    removed = store.remove_class(1)
    assert removed.regions == 2 and removed.images == 2
    assert [c.name for c in store.classes()] == ["b", "c"]
    assert {r.path: r.status for r in store.images()} == {"a.png": "in_progress", "b.png": "in_progress",
                                                         "c.png": "new"}
    store.restore_class(removed)
    assert _state(store) == before


def test_move_and_restore_leaves_statuses_alone(store):
    before = _state(store)
    removed = store.remove_class(1, reassign_to=3)
    assert removed.regions == 2 and store.regions_per_class() == {2: 2, 3: 2}
    assert _state(store)[2] == before[2]
    store.restore_class(removed)
    assert _state(store) == before


def test_restore_after_the_name_and_id_were_taken_again(store):
    removed = store.remove_class(3)  # the highest id: a new class would get it again
    newer = store.add_class("c")
    assert newer.id == 3
    back = store.restore_class(removed)
    assert back.id != 3 and back.name == "c (restored)"
    assert {c.name for c in store.classes()} == {"a", "b", "c", "c (restored)"}


def test_restore_skips_regions_of_images_removed_since_and_statuses_changed_since(store):
    removed = store.remove_class(1)
    with store.transaction() as t:
        t.execute("DELETE FROM images WHERE id=2")
    store.set_status(1, "done")  # a person marked it done again: the undo leaves that
    back = store.restore_class(removed)
    assert store.regions_per_class()[back.id] == 1
    assert store.image(1).status == "done"


def test_bad_requests_change_nothing(store):
    before = _state(store)
    with pytest.raises(BadValue):
        store.remove_class(99)
    with pytest.raises(BadValue):
        store.remove_class(1, reassign_to=1)
    with pytest.raises(BadValue):
        store.remove_class(1, reassign_to=99)
    assert _state(store) == before


def test_history_undoes_newest_first_and_is_bounded_by_memory(store):
    before = _state(store)
    h = ProjectHistory()
    h.push(ClassDeletion(store.remove_class(1)))
    h.push(ClassDeletion(store.remove_class(2)))
    assert h.undo_label == "Delete class “b”"
    h.undo(store)
    h.undo(store)
    assert not h.can_undo and h.undo(store) is None
    assert _state(store) == before
    small = ProjectHistory(max_bytes=1)
    small.push(ClassDeletion(store.remove_class(1)))
    small.push(ClassDeletion(store.remove_class(2)))
    assert len(small) == 1  # the oldest went; the newest stays
