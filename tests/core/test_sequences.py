"""Sequences in the data model: frame names, numeric order, track ids stored and migrated."""

import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from segstudio.core import sequences
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.store import SqliteStore, default_db_path
from segstudio.core.store.sqlite_schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, split_sql


def test_frame_paths_round_trip_and_sort_in_frame_order():
    numbers = (10, 2, 0, 999_999, 1_000_000)
    paths = [sequences.frame_path("clips/a.mp4", i) for i in numbers]
    assert [sequences.split_frame_path(p) for p in paths] == [("clips/a.mp4", i) for i in numbers]
    assert sorted(paths[:4]) == [sequences.frame_path("clips/a.mp4", i) for i in (0, 2, 10, 999_999)]
    with pytest.raises(ValueError):
        sequences.frame_path("a.mp4", -1)


@pytest.mark.parametrize("path", ["a.png", "x/000012.png", "a.png/000012", "a.mp4/12", "a.mp4/00001x", "000012",
                                  "a.tif/", "/000001"])
def test_ordinary_paths_are_not_frames(path):
    assert sequences.split_frame_path(path) is None


@given(st.text(min_size=1, max_size=30))
def test_no_scanned_image_name_is_taken_for_a_frame(name):
    """A scanned file has an image extension; a frame's last part is digits only."""
    assert sequences.split_frame_path(f"stack.tif/{name}.png") is None


def test_numbered_files_go_in_numeric_order():
    names = ["s/f10.png", "s/f2.png", "s/f1.png", "s/f100.png"]
    assert sequences.order_frames(names) == ["s/f1.png", "s/f2.png", "s/f10.png", "s/f100.png"]
    groups = sequences.group_sequences(["s/10.png", "s/2.png", "v.mp4/000001", "v.mp4/000000", "cat.png", "t/1.png"])
    # t/ holds one numbered file: no sequence
    assert groups == {"s": ["s/2.png", "s/10.png"], "v.mp4": ["v.mp4/000000", "v.mp4/000001"]}


def test_parse_frame_takes_a_number_or_a_name():
    frames = ["d/1.png", "d/2.png", "d/10.png"]
    assert sequences.parse_frame("2", frames) == 2
    assert sequences.parse_frame("10.png", frames) == 2
    assert sequences.parse_frame("d/1.png", frames) == 0
    with pytest.raises(ValueError, match="past the last"):
        sequences.parse_frame("3", frames)
    with pytest.raises(ValueError, match="no frame"):
        sequences.parse_frame("x.png", frames)


def _numbered(folder, n=12):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 10), i * 10, np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(folder / "cover.png")


def test_a_numbered_folder_is_a_sequence_in_numeric_order(tmp_path):
    _numbered(tmp_path / "imgs")
    p = Project.open(tmp_path / "imgs")
    frames = p.sequence_frames("")
    assert [r.path for r in frames] == [f"{i}.png" for i in range(12)]  # cover.png has no number
    assert p.sequence_key(frames[3]) == ""
    assert p.sequence_key(p.store.image_by_path("cover.png")) is None
    assert p.load_image(frames[10])[0, 0] == 100
    p.close()


def test_track_ids_are_stored_and_default_to_the_region_itself(tmp_path):
    _numbered(tmp_path / "imgs", 2)
    p = Project.open(tmp_path / "imgs")
    a, b = p.store.images()[:2]
    m = np.ones((3, 4), bool)
    first = Region(p.store.new_region_id(), 1, m, 1, 1)
    p.store.add_class("cell")
    p.store.save_regions(a.id, [first])
    p.store.save_regions(b.id, [Region(p.store.new_region_id(), 1, m, 2, 2, track=first.id)])
    ra, rb = p.store.regions(a.id)[0], p.store.regions(b.id)[0]
    assert ra.track is None and ra.object_id == first.id
    assert rb.track == first.id and rb.object_id == ra.object_id and rb.id != ra.id
    assert rb.copy().track == first.id
    p.close()


def test_a_version_2_project_gains_track_ids_and_keeps_its_regions(tmp_path):
    d = tmp_path / "imgs"
    _numbered(d, 1)
    db = default_db_path(d)
    db.parent.mkdir()
    c = sqlite3.connect(str(db))
    c.executescript(SCHEMA_V1)
    for stmt in split_sql(MIGRATIONS[1]):
        c.execute(stmt)
    c.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    c.execute("INSERT INTO images(path, status) VALUES ('0.png', 'done')")
    c.execute("INSERT INTO classes VALUES (1, 'cell', '#ff0000', '', 0, 0)")
    from segstudio.core import rle
    counts = rle.encode(np.ones((2, 2), bool))
    c.execute("INSERT INTO regions(id, image_id, class_id, x, y, w, h, rle, area) VALUES (5, 1, 1, 0, 0, 2, 2, ?, 4)",
              (counts,))
    c.commit()
    c.close()
    s = SqliteStore(db, d)
    assert s._version(s.conn) == SCHEMA_VERSION == 3
    (r,) = s.regions(1)
    assert r.id == 5 and r.track is None and r.object_id == 5 and r.area == 4
    assert s.container_info("x.mp4") is None
    s.set_container_info("x.mp4", 10, 20, 30, "video")
    assert s.container_info("x.mp4") == (10, 20, 30, "video", None)
    s.close()


def test_a_sequence_follows_the_folder_after_a_scan(tmp_path):
    d = tmp_path / "imgs"
    _numbered(d, 3)
    p = Project.open(d)
    assert [r.path for r in p.sequence_frames("")] == ["0.png", "1.png", "2.png"]
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(d / "10.png")
    (d / "1.png").unlink()
    p.scan()
    assert [r.path for r in p.sequence_frames("")] == ["0.png", "2.png", "10.png"]
    assert p.sequence_ids("") == [r.id for r in p.sequence_frames("")]
    p.close()


@pytest.mark.parametrize("frames", [10**9, -5, 0])
def test_a_frame_count_read_back_from_the_store_is_bounded_by_the_file(tmp_path, frames):
    """The store's record of a stack is our own file read back, and hostile too: a count no file of
    that size can hold registers no more frames than its bytes allow; none or less is no frames."""
    import os

    import tifffile
    d = tmp_path / "imgs"
    d.mkdir()
    tifffile.imwrite(d / "s.tif", np.zeros((3, 4, 4), np.uint8), photometric="minisblack")
    p = Project.open(d)
    assert len(p.store.images()) == 3
    st_ = os.stat(d / "s.tif")
    p.store.set_container_info("s.tif", st_.st_size, st_.st_mtime_ns, frames, "stack")
    p.scan()
    n = len(p.store.images())
    assert (n <= st_.st_size // sequences.MIN_FRAME_BYTES) if frames > 0 else n == 1
    if frames <= 0:
        assert p.store.images()[0].error  # the file is listed with why it holds no frames
    p.close()
