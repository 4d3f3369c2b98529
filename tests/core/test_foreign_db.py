"""`--project` pointing at a file that is not a segstudio project is refused before anything
writes to it: no WAL switch, no -wal/-shm beside it, not a byte changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading

import pytest

from segstudio.cli import main
from segstudio.core.project import Project, ProjectError
from segstudio.core.store import SqliteStore, StoreError
from tests.conftest import make_image


def snapshot(path):
    """The file's hash and the names beside it: what must not change."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


@pytest.fixture
def folder(tmp_path):
    make_image(tmp_path / "imgs" / "a.png")
    return tmp_path / "imgs"


def foreign_db(path, tables=("users", "orders"), meta=False):
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=DELETE")
    for t in tables:
        c.execute(f"CREATE TABLE {t}(id INTEGER PRIMARY KEY, name TEXT)")
        c.execute(f"INSERT INTO {t}(name) VALUES ('kept')")
    if meta:
        c.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
        c.execute("INSERT INTO meta VALUES ('owner', 'another app')")
    c.commit()
    c.close()
    return path


@pytest.mark.parametrize("kind", ["tables", "meta_table", "our_names_without_version"])
def test_another_applications_database_is_refused_unchanged(folder, tmp_path, capsys, kind):
    db = tmp_path / "other" / "app.db"
    db.parent.mkdir()
    if kind == "tables":
        foreign_db(db)
    elif kind == "meta_table":
        foreign_db(db, tables=("images", "notes"), meta=True)
    else:  # segstudio's table names, someone else's content: no schema version
        foreign_db(db, tables=("images", "classes", "regions", "settings"), meta=True)
    before = snapshot(db)
    code = main(["info", str(folder), "--project", str(db)])
    err = capsys.readouterr().err
    assert snapshot(db) == before  # same bytes, no -wal or -shm beside it
    assert code == 2 and str(db) in err and "not a segstudio project" in err and "not changed" in err
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    c.close()


def test_a_file_that_is_not_sqlite_is_refused_unchanged(folder, tmp_path):
    db = tmp_path / "notes.txt"
    db.write_bytes(b"my notes, not a database\n" * 100)
    before = snapshot(db)
    with pytest.raises((StoreError, ProjectError), match="not an SQLite database"):
        Project.open(folder, db)
    assert snapshot(db) == before


def test_an_empty_file_or_database_becomes_a_project_and_ours_reopens(folder, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    Project.open(folder, empty).close()
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).close()  # an SQLite file with no tables
    Project.open(folder, blank).close()
    for db in (empty, blank):
        s = SqliteStore(db, folder)
        assert s.image_by_path("a.png") is not None
        s.close()
    p = Project.open(folder)  # the default project, reopened
    p.close()
    Project.open(folder).close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_as_the_project_is_refused(folder, tmp_path):
    fifo = tmp_path / "p.db"
    os.mkfifo(fifo)
    out: dict = {}

    def open_it():
        try:
            SqliteStore(fifo, folder)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=open_it, daemon=True)  # the old code blocked reading the FIFO
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO as the project hung"
    assert isinstance(out.get("error"), StoreError) and "not a regular file" in str(out["error"])
