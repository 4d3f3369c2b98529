"""A database that is locked, damaged or read-only while the window or the command line works on
it raises StoreError (never an sqlite3 exception) with a message that names the database and
says what is wrong; the open-image claim and the CLI turn it into a warning or one clear line."""

from __future__ import annotations

import logging
import os
import sqlite3

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.claims import OpenImageClaim
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.store import SqliteStore, StoreError
from tests.conftest import make_image


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(SqliteStore, "busy_timeout_s", 0.2)  # a locked write gives up at once
    for name in ("a.png", "b.png"):
        make_image(tmp_path / "imgs" / name)
    p = Project.open(tmp_path / "imgs")
    yield p
    p.close()


def _region(store) -> Region:
    return Region(store.new_region_id(), store.add_class("cell").id, np.ones((3, 3), bool), 1, 1)


@pytest.fixture
def locked(project):
    """Another process holds the write lock (an open write transaction)."""
    c = sqlite3.connect(str(project.store.db_path), isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    yield project
    c.execute("ROLLBACK")
    c.close()


def _operations(store, image_id, region):
    """What the window's saver, status buttons, claims and the CLI's predict write."""
    return {
        "save_regions": lambda: store.save_regions(image_id, [region]),
        "set_status": lambda: store.set_status(image_id, "done"),
        "claim_image": lambda: store.claim_image(image_id, "window", 60),
        "set_setting": lambda: store.set_setting("model_panel", {"arch": "unet"}),
        "replace_source_regions_many": lambda: store.replace_source_regions_many(
            [{"image_id": image_id, "source": "unet", "rows": [], "status": "predicted"}]),
    }


@pytest.mark.parametrize("op", list(_operations(None, 0, None)))
def test_a_locked_database_raises_store_error_saying_so(project, op):
    store = project.store
    image_id, region = store.image_ids()[0], _region(store)
    c = sqlite3.connect(str(store.db_path), isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as err:
            _operations(store, image_id, region)[op]()
    finally:
        c.execute("ROLLBACK")
        c.close()
    msg = str(err.value)
    assert str(store.db_path) in msg and "locked by another process" in msg and "database is locked" in msg
    assert not isinstance(err.value, sqlite3.Error) and isinstance(err.value.__cause__, sqlite3.Error)
    _operations(store, image_id, region)[op]()  # the lock gone, the same call goes through


def test_reads_go_on_while_another_process_writes(locked):
    assert len(locked.store.images()) == 2  # WAL: a writer does not block readers


def test_the_open_image_claim_warns_instead_of_failing_on_a_locked_store(locked, caplog):
    claim = OpenImageClaim(locked.store, "window", renew_every=60)
    with caplog.at_level(logging.WARNING, logger="segstudio.core.claims"):
        assert claim.hold(locked.store.image_ids()[0]) == []
        claim.release()
    assert "could not hold image" in caplog.text and "locked" in caplog.text


def test_a_read_only_database_raises_store_error_saying_so(project):
    store = project.store
    image_id, region = store.image_ids()[0], _region(store)
    store.conn.execute("PRAGMA query_only=ON")  # SQLite refuses every write, as on a read-only file
    for name, op in _operations(store, image_id, region).items():
        with pytest.raises(StoreError, match="read-only") as err:
            op()
        assert str(store.db_path) in str(err.value), name
    assert len(store.images()) == 2  # reading still works


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_file_and_folder_raise_store_error(project):
    db = project.store.db_path
    project.close()
    os.chmod(db, 0o444)
    os.chmod(db.parent, 0o555)
    try:
        with pytest.raises(StoreError) as err:
            s = SqliteStore(db)
            s.set_setting("x", 1)
        assert str(db) in str(err.value)
    finally:
        os.chmod(db.parent, 0o755)
        os.chmod(db, 0o644)


def _damage_table(db, table: str) -> None:
    """Overwrite the pages of `table` and its indexes with garbage (the file header and the
    schema page stay intact, so the database opens and fails on the first read of the table)."""
    c = sqlite3.connect(str(db))
    page = c.execute("PRAGMA page_size").fetchone()[0]
    roots = [r[0] for r in c.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name=? AND rootpage>0",
                                     (table,))]
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    with open(db, "r+b") as f:
        for root in roots:
            f.seek((root - 1) * page)
            f.write(b"\xa5" * page)


def test_a_damaged_database_raises_store_error_saying_so(project):
    db = project.store.db_path
    project.close()
    _damage_table(db, "images")
    store = SqliteStore(db)  # the schema page is whole: it opens
    try:
        with pytest.raises(StoreError, match="is damaged") as err:
            store.images()
        assert str(db) in str(err.value) and "malformed" in str(err.value)
        with pytest.raises(StoreError, match="is damaged"):
            store.status_counts()
    finally:
        store.close()


def test_the_command_line_says_a_damaged_database_in_one_line(project, capsys):
    folder, db = project.folder, project.store.db_path
    project.close()
    _damage_table(db, "images")
    code = main(["info", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert "is damaged" in err and str(db) in err and "Traceback" not in err and "DatabaseError" not in err
