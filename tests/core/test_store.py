import sqlite3

import numpy as np
import pytest

from segstudio.core.project import EXPORT_MARKER, Project, ProjectError
from segstudio.core.region import Region
from segstudio.core.store import SqliteStore, StoreError
from tests.conftest import make_image


def test_scan_registers_without_decoding_and_is_incremental(image_folder, monkeypatch):
    from segstudio.core import imageio
    monkeypatch.setattr(imageio, "decode_image", lambda *a, **k: pytest.fail("scan decoded an image"))
    p = Project.open(image_folder)
    recs = p.store.images()
    assert [r.path for r in recs] == ["img0.png", "img1.png", "img2.png", "img3.png", "sub/deep.png"]
    assert all(r.width is None for r in recs)  # size read lazily
    (image_folder / "img1.png").unlink()
    make_image(image_folder / "new.png")
    added, gone, back = p.scan()
    assert (added, gone, back) == (1, 1, 0)
    assert p.store.image_count() == 5 and p.store.missing_count() == 1
    make_image(image_folder / "img1.png")
    assert p.scan() == (0, 0, 1)


def test_missing_image_keeps_its_annotations(project, image_folder):
    rec = project.store.image_by_path("img0.png")
    c = project.store.add_class("cat")
    project.store.save_regions(rec.id, [Region(project.store.new_region_id(), c.id, np.ones((3, 3), bool), 1, 1)])
    (image_folder / "img0.png").rename(image_folder / "img0.bak")
    project.scan()
    assert project.store.region_count(rec.id) == 1
    assert project.store.image(rec.id).missing


def test_region_roundtrip_is_exact(project):
    rec = project.store.images()[0]
    c = project.store.add_class("dog", (1, 2, 3))
    rng = np.random.default_rng(0)
    m = rng.random((37, 23)) > 0.5
    r = Region(project.store.new_region_id(), c.id, m, 5, 7, z=3, source="unet", score=0.75, iscrowd=True,
               extra={"k": 1})
    project.store.save_regions(rec.id, [r], status="in_progress")
    back = project.store.regions(rec.id)[0]
    assert np.array_equal(back.mask, m) and (back.x, back.y, back.z) == (5, 7, 3)
    assert back.source == "unet" and back.score == 0.75 and back.iscrowd and back.extra == {"k": 1}
    assert project.store.image(rec.id).status == "in_progress"
    project.store.save_regions(rec.id, deletes=[r.id])
    assert project.store.regions(rec.id) == []


def test_classes_crud_and_hotkeys(project):
    s = project.store
    a = s.add_class("a")
    b = s.add_class("b")
    assert (a.id, a.hotkey, b.hotkey) == (1, "1", "2")
    with pytest.raises(ValueError):
        s.add_class("a")
    s.update_class(b.with_(name="bee", hotkey="1"))
    assert [c.hotkey for c in s.classes()] == ["", "1"]  # a hotkey belongs to one class
    rec = s.images()[0]
    s.save_regions(rec.id, [Region(s.new_region_id(), a.id, np.ones((2, 2), bool))])
    assert s.remove_class(a.id, reassign_to=b.id).regions == 1
    assert s.regions(rec.id)[0].class_id == b.id
    s.move_class(b.id, 0)


def test_region_ids_unique_across_store_instances(image_folder):
    p1 = SqliteStore(image_folder / ".segstudio" / "project.db")
    p2 = SqliteStore(image_folder / ".segstudio" / "project.db")
    ids = {p1.new_region_id() for _ in range(300)} | {p2.new_region_id() for _ in range(300)}
    assert len(ids) == 600


def test_settings_and_status_counts(project):
    s = project.store
    s.set_setting("opacity", 0.4)
    assert s.get_setting("opacity") == 0.4 and s.get_setting("nope", 3) == 3
    ids = [r.id for r in s.images()]
    s.set_status(ids[:2], "done")
    assert s.status_counts()["done"] == 2 and s.status_counts()["new"] == 3
    nxt = s.next_image(None)
    assert nxt.status == "new"


def test_not_a_project_database(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_bytes(b"garbage garbage garbage" * 100)
    with pytest.raises(StoreError):
        SqliteStore(bad)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(a)").connection.commit()
    with pytest.raises(StoreError, match="not a segstudio project"):
        SqliteStore(other)


def test_newer_schema_refused(tmp_path):
    s = SqliteStore(tmp_path / "p.db")
    with s.transaction() as t:
        t.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(tmp_path / "p.db")


def test_project_path_elsewhere_for_read_only_folder(image_folder, tmp_path):
    db = tmp_path / "elsewhere" / "p.db"
    p = Project.open(image_folder, db)
    assert p.store.image_count() == 5
    assert not (image_folder / ".segstudio").exists()


def test_open_errors(tmp_path):
    with pytest.raises(ProjectError, match="not found"):
        Project.open(tmp_path / "nope")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ProjectError, match="not a folder"):
        Project.open(f)


def test_export_folders_inside_the_image_folder_are_not_scanned(image_folder):
    out = image_folder / "export"
    out.mkdir()
    (out / EXPORT_MARKER).write_text("written by segstudio; image scans skip this folder\n")
    make_image(out / "label.png")
    p = Project.open(image_folder)
    assert p.store.image_by_path("export/label.png") is None


def test_load_image_records_size_and_errors(project, image_folder):
    rec = project.store.image_by_path("img0.png")
    a = project.load_image(rec)
    rec = project.store.image(rec.id)
    assert (rec.width, rec.height) == (a.shape[1], a.shape[0]) and rec.hash
    (image_folder / "img1.png").write_bytes(b"broken")
    from segstudio.core.imageio import ImageDecodeError
    with pytest.raises(ImageDecodeError):
        project.load_image(project.store.image_by_path("img1.png"))
    assert "not an image" in project.store.image_by_path("img1.png").error
    assert project.store.errors()[0][0] == "img1.png"


def test_source_images_are_never_written(project, image_folder):
    import hashlib
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in image_folder.rglob("*.png")}
    for rec in project.store.images():
        project.load_image(rec)
    after = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in image_folder.rglob("*.png")}
    assert before == after


def test_non_ascii_names(tmp_path):
    d = tmp_path / "données"
    make_image(d / "チューリップ.png")
    p = Project.open(d)
    rec = p.store.images()[0]
    assert rec.path == "チューリップ.png"
    assert p.load_image(rec).shape == (48, 64, 3)


def test_region_rows_match_the_stored_columns(project):
    from segstudio.core.store import REGION_COLUMNS, encoded_region_row, region_row
    from segstudio.core.store.sqlite import INSERT_REGION
    cols = [r[1] for r in project.store.conn.execute("PRAGMA table_info(regions)")]
    assert list(REGION_COLUMNS) == cols and INSERT_REGION.count("?") == len(cols)
    m = np.zeros((5, 5), bool)
    m[1:3, 2:4] = True
    row = region_row(7, Region(3, 1, m, 10, 20, z=2, extra={"k": 1}))
    assert len(row) == len(cols) and row[:7] == (3, 7, 1, 12, 21, 2, 2) and row[8] == 4
    assert encoded_region_row(3, 7, 1, 12, 21, 2, 2, row[7], 4, 2, extra={"k": 1}) == row
