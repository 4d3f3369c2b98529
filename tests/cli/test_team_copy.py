"""segstudio store copy: a project SQLite -> PostgreSQL -> SQLite is exact (every table's rows, blobs,
floats, NULLs, hostile text, ids), and each copy opens and works (new ids do not collide)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.store.api import ContainerInfo
from segstudio.core.store.schema import COPY_TABLES
from segstudio.core.store.sqlite import SqliteStore

# text a person or a file system may hand us: quotes, %, ?, backslashes, SQL, markup, any script; no NUL
# (the store refuses it in names and notes) and no lone surrogates (not UTF-8: no file name has one)
HOSTILE = ["'; DROP TABLE images; --", "%s %% ?", "a\\b", '"quoted"', "<b>bold</b>", "日本語", "ü" * 3, "🙂",
           "\u202eevil", "x" * 300, " lead space", "tab\there", "line\nbreak"]
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
hostile_text = st.one_of(st.sampled_from(HOSTILE), st.text(_chars, min_size=1, max_size=40))
_name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/")
path_part = st.one_of(st.sampled_from(HOSTILE[:7]), st.text(_name_chars, min_size=1, max_size=30)).filter(
    lambda s: s not in (".", ".."))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tables(store) -> dict:
    """Every copied table's rows, meta without the backend's own setup rows."""
    out = {}
    for t in COPY_TABLES:
        cols, rows = store.table_rows(t)
        if t == "meta":
            rows = [r for r in rows if r[cols.index("key")] != "pg_extras"]
        out[t] = (cols, rows)
    return out


def fill(store, names, notes, paths, floats, seed=0):
    """A project with every table holding rows: classes, images of every status, review, regions with
    masks and scores, a model, a container, settings, claims (not copied) and history."""
    rng = np.random.default_rng(seed)
    classes = [store.add_class(n) for n in dict.fromkeys(names)]
    store.sync_files(sorted(set(paths)))
    recs = store.images()
    for k, rec in enumerate(recs):
        cls = classes[k % len(classes)]
        regs = []
        for j in range(1 + k % 3):
            mask = rng.random((1 + j * 3, 2 + k)) > 0.4
            mask[0, 0] = True
            regs.append(Region(0, cls.id, mask, x=k, y=j, z=j, source="manual" if j else "unet",
                               score=floats[(k + j) % len(floats)] if j % 2 else None, iscrowd=bool(j == 2),
                               extra={"note": notes[k % len(notes)]} if j == 1 else {},
                               track=None if j else 7 + k))
        for r, i in zip(regs, store.reserve_region_ids(len(regs)), strict=True):
            r.id = i
        store.save_regions(rec.id, regs, status="done" if k % 4 != 3 else "in_progress")
    store.set_uncertainty({r.id: floats[i % len(floats)] for i, r in enumerate(recs[::2])})
    store.set_review_enabled(True)
    done = [r.id for r in store.images(statuses=("done",))]
    if done:
        store.review_image(done[0], True, notes[0])
    if len(done) > 1:
        store.review_image(done[1], False, notes[-1])
    store.set_setting("hostile " + notes[0], {"v": notes, "f": floats[0]})
    store.add_model("models/" + paths[0] + ".pt", "unet", {"miou": floats[0], "text": names[0]})
    store.set_container_infos([ContainerInfo("clips/" + paths[-1] + ".tif", 10 ** 12, 2 ** 62, 5, "stack", 7, 9,
                                             None)])
    store.claim_image(recs[0].id, "someone@host:1:abc", 60)


def masks(store) -> dict:
    return {(rec.id, r.id): (r.box, r.mask.tobytes()) for rec in store.images()
            for r in store.regions(rec.id)}


def works_after_copy(folder, **open_kw):
    """The copy opens, and a new image, region and history row get ids above the copied ones."""
    p = Project.open(folder, scan=False, **open_kw)
    s = p.store
    try:
        before = tables(s)
        paths = [r.path for r in s.images(include_missing=True)]
        s.sync_files(paths + ["brand new.png"])
        new = s.image_by_path("brand new.png")
        assert new is not None and new.id > max(r[0] for r in before["images"][1])
        rid = s.new_region_id()
        old_regions = [r[0] for r in before["regions"][1]]
        assert rid > max(old_regions, default=0)
        cls = s.classes()[0]
        s.save_regions(new.id, [Region(rid, cls.id, np.ones((2, 2), bool))], status="done")
        hist = s.history(image_id=new.id)
        assert hist and min(h.id for h in hist) > max((r[0] for r in before["history"][1]), default=0)
    finally:
        p.close()


@pytest.mark.parametrize("seed", [0])
def test_sqlite_to_pg_to_sqlite_is_exact_cli(tmp_path, pg_url_factory, capsys, seed):
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = SqliteStore(tmp_path / "src.db", folder)
    fill(src, ["cat", "dog", HOSTILE[0]], HOSTILE, ["a.png", "b c.png", "sub/ï.png", "d%?.png", "e\\f.png"],
         [0.1, 1e-300, -2.5e300, 1 / 3], seed)
    want, want_masks = tables(src), masks(src)
    src.close()
    assert all(want[t][1] for t in COPY_TABLES), "every table holds rows"

    url = pg_url_factory()
    code, out, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "src.db", "--to", url)
    assert code == 0, err
    assert f"images: {len(want['images'][1])} rows" in out and "history:" in out
    back = tmp_path / "back.db"
    code, out, err = run(capsys, "store", "copy", folder, "--from", url, "--to", back)
    assert code == 0, err
    s = SqliteStore(back, folder, create=False)
    try:
        assert tables(s) == want
        assert masks(s) == want_masks
        assert s.claimed_images() == {}  # claims stay with the windows of the old store
    finally:
        s.close()
    works_after_copy(folder, store=url)
    works_after_copy(folder, project_path=back)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(names=st.lists(hostile_text.filter(lambda s: s.strip()), min_size=1, max_size=4),
       notes=st.lists(hostile_text.filter(lambda s: s.strip()), min_size=1, max_size=3),
       paths=st.lists(path_part, min_size=1, max_size=5, unique=True),
       floats=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4))
def test_generated_round_trip_is_exact(tmp_path_factory, pg_url_factory, names, notes, paths, floats):
    from segstudio.core.store.open import open_store
    from segstudio.core.store_copy import copy_project
    tmp = tmp_path_factory.mktemp("rt")
    names = [n.strip() for n in names]
    src = SqliteStore(tmp / "src.db", tmp)
    try:
        fill(src, names, notes, [p + ".png" for p in paths], floats)
        want, want_masks = tables(src), masks(src)
        pg = open_store(pg_url_factory(), tmp, tmp / "unused.db")
        try:
            copy_project(src, pg)
            assert tables(pg) == want
            back = SqliteStore(tmp / "back.db", tmp)
            try:
                copy_project(pg, back)
                assert tables(back) == want
                assert masks(back) == want_masks
                assert json.loads(dict(back.table_rows("settings")[1])["hostile " + notes[0]])["v"] == notes
            finally:
                back.close()
        finally:
            pg.close()
    finally:
        src.close()


def test_copy_refuses_an_existing_file_and_a_full_database(tmp_path, pg_url, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = SqliteStore(tmp_path / "src.db", folder)
    fill(src, ["cat"], ["n"], ["a.png"], [0.5])
    src.close()
    existing = tmp_path / "other.db"
    existing.write_bytes(b"mine")
    code, _, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "src.db", "--to", existing)
    assert code == 2 and "already exists" in err and existing.read_bytes() == b"mine"
    code, _, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "src.db", "--to", pg_url)
    assert code == 0, err
    code, _, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "src.db", "--to", pg_url)
    assert code == 2 and "already holds a project" in err and err.count("\n") == 1
    # and back into a file that a failed copy would have left: none is left behind
    code, _, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "nope.db", "--to", tmp_path / "x.db")
    assert code == 2 and "no such SQLite file" in err and not (tmp_path / "x.db").exists()


def test_copy_default_source_and_password_refused(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    code, _, err = run(capsys, "store", "copy", folder, "--to", tmp_path / "x.db")
    assert code == 2 and "no project to copy" in err and not (folder / ".segstudio").exists()
    p = Project.open(folder)
    p.store.add_class("cat")
    p.close()
    code, out, err = run(capsys, "store", "copy", folder, "--to", tmp_path / "x.db")
    assert code == 0 and "classes: 1 row\n" in out, err
    code, _, err = run(capsys, "store", "copy", folder, "--to", "postgresql://anna:secret@db/x")
    assert code == 2 and "password" in err and "secret" not in err
    code, _, err = run(capsys, "store", "copy", folder, "--to", tmp_path / "x.db")
    assert code == 2 and "already exists" in err


def test_a_copy_that_fails_half_way_leaves_no_file(tmp_path, capsys, monkeypatch):
    from segstudio.core.store.api import StoreError
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = SqliteStore(tmp_path / "src.db", folder)
    fill(src, ["cat"], ["n"], ["a.png", "b.png"], [0.5])
    src.close()
    real = SqliteStore.load_rows

    def failing(self, table, columns, rows):
        if table == "regions":
            raise StoreError("disk full")
        return real(self, table, columns, rows)

    monkeypatch.setattr(SqliteStore, "load_rows", failing)
    code, _, err = run(capsys, "store", "copy", folder, "--from", tmp_path / "src.db", "--to", tmp_path / "new.db")
    assert code == 2 and "stopped at table regions" in err and "disk full" in err
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "new.db-wal").exists()
