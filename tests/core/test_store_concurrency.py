"""Several processes opening the same new project at once all succeed, and the store's
connections are durable (synchronous=FULL in WAL mode)."""

import multiprocessing as mp
import sqlite3
import threading
import traceback

import numpy as np
import pytest
from PIL import Image

from segstudio.core.store import SqliteStore, default_db_path

N_PROCS = 6
ROUNDS = 4
N_IMAGES = 12


def _open_together(folder: str, barrier, results) -> None:
    try:
        from segstudio.core.project import Project
        barrier.wait(timeout=60)
        p = Project.open(folder)
        p.store.set_setting("opened_by", mp.current_process().name)
        n = p.store.image_count()
        p.store.close()
        results.put(("ok", n))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _image_folder(path, n=N_IMAGES):
    path.mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 10), i * 7 % 255, np.uint8)).save(path / f"img{i:03d}.png")
    (path / "sub").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path / "sub" / "deep.png")
    return path


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_opening_a_new_project_at_once_all_succeed(tmp_path, round_):
    folder = _image_folder(tmp_path / f"imgs{round_}")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_together, args=(str(folder), barrier, results)) for _ in range(N_PROCS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o[1] for o in outcomes if o[0] != "ok"]
    assert not errors, errors[0]
    assert all(o[1] == N_IMAGES + 1 for o in outcomes)
    assert all(p.exitcode == 0 for p in procs)
    c = sqlite3.connect(str(default_db_path(folder)))
    try:
        paths = [r[0] for r in c.execute("SELECT path FROM images")]
        assert sorted(paths) == sorted(set(paths)) and len(paths) == N_IMAGES + 1
        assert "sub/deep.png" in paths
        assert c.execute("SELECT COUNT(*) FROM meta WHERE key='schema_version'").fetchone()[0] == 1
        assert c.execute("SELECT COUNT(*) FROM counters").fetchone()[0] == 1
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        c.close()


def test_schema_created_once_by_threads_with_their_own_stores(tmp_path):
    """The same race inside one process (several SqliteStore objects), cheaper than processes."""
    db = tmp_path / "p" / "project.db"
    barrier = threading.Barrier(8)
    errors, stores = [], []

    def go():
        try:
            barrier.wait(timeout=30)
            s = SqliteStore(db, tmp_path)
            s.sync_files([f"a{i}.png" for i in range(50)])
            stores.append(s)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert stores[0].image_count() == 50
    for s in stores:
        s.close()


def test_sync_files_rechecks_inside_the_write_lock(tmp_path, monkeypatch):
    """A sync whose first look is stale (another store added the paths meanwhile) adds nothing twice."""
    db = tmp_path / "project.db"
    a, b = SqliteStore(db), SqliteStore(db)
    real = a.conn  # a looks before b writes, then writes after it
    looked = []

    class Stale:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            cur = real.execute(sql, *args)
            if sql.startswith("SELECT id, path, missing") and not looked:
                looked.append(1)
                rows = cur.fetchall()
                b.sync_files(["x.png", "y.png"])
                return iter(rows)
            return cur

    stale, plain = Stale(), SqliteStore.conn
    monkeypatch.setattr(SqliteStore, "conn", property(lambda s: stale if s is a else plain.fget(s)))
    assert a.sync_files(["x.png", "y.png", "z.png"]) == (1, 0, 0)
    monkeypatch.undo()
    assert sorted(r.path for r in a.images()) == ["x.png", "y.png", "z.png"]
    a.close()
    b.close()


def test_connections_are_durable(tmp_path):
    s = SqliteStore(tmp_path / "project.db")
    seen = []

    def look():
        c = s.conn
        seen.append((c.execute("PRAGMA synchronous").fetchone()[0],
                     c.execute("PRAGMA journal_mode").fetchone()[0]))

    look()
    t = threading.Thread(target=look)  # the autosaver's thread has a connection of its own
    t.start()
    t.join()
    assert seen == [(2, "wal"), (2, "wal")]  # 2 = FULL: a commit is fsynced before it returns
    s.close()
    # a store reopened on an existing project is the same
    s2 = SqliteStore(tmp_path / "project.db", create=False)
    assert s2.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    s2.close()
