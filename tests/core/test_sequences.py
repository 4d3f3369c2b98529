"""Sequences in the data model: frame names, numeric order, track ids stored and migrated."""

import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from segstudio.core import sequences
from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.core.region import Region
from segstudio.core.store import ContainerInfo, SqliteStore, default_db_path
from segstudio.core.store.schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, split_sql


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
    assert s._version(s.conn) == SCHEMA_VERSION == 4
    (r,) = s.regions(1)
    assert r.id == 5 and r.track is None and r.object_id == 5 and r.area == 4
    assert s.container_info("x.mp4") is None
    s.set_container_infos([ContainerInfo("x.mp4", 10, 20, 30, "video", 64, 48)])
    assert s.container_info("x.mp4") == ContainerInfo("x.mp4", 10, 20, 30, "video", 64, 48, None)
    with s.transaction() as t:  # our own file read back: a row that is not numbers counts as never probed
        t.execute("UPDATE containers SET frames='many' WHERE path='x.mp4'")
    assert s.container_info("x.mp4") is None
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
    p.store.set_container_infos([ContainerInfo("s.tif", st_.st_size, st_.st_mtime_ns, frames, "stack", 4, 4)])
    p.scan()
    n = len(p.store.images())
    assert (n <= st_.st_size // sequences.MIN_FRAME_BYTES) if frames > 0 else n == 1
    if frames <= 0:
        assert p.store.images()[0].error  # the file is listed with why it holds no frames
    p.close()


def _stack(path, pages, value=0):
    import tifffile
    tifffile.imwrite(path, np.full((pages, 6, 8), value, np.uint8), photometric="minisblack")


def test_a_file_annotated_as_one_image_keeps_its_work_when_it_opens_as_frames(tmp_path):
    """A TIFF annotated before it opened as a stack (an older segstudio, or pages added since):
    its regions and status move to frame 0, which is what was shown, and nothing is left hidden."""
    import os
    import tifffile
    d = tmp_path / "imgs"
    d.mkdir()
    tifffile.imwrite(d / "s.tif", np.zeros((6, 8), np.uint8))
    p = Project.open(d)
    (rec,) = p.store.images()
    assert rec.path == "s.tif"
    p.store.add_class("cell")
    p.store.save_regions(rec.id, [Region(p.store.new_region_id(), 1, np.ones((2, 2), bool), 1, 1)], status=DONE)
    _stack(d / "s.tif", 3)
    os.utime(d / "s.tif", ns=(1, 10**18))  # a changed file (the same second on a coarse clock)
    p.scan()
    first = p.store.image_by_path("s.tif/000000")
    assert first.status == DONE and p.store.region_count(first.id) == 1
    assert p.store.missing_with_regions() == []
    p.close()


def test_a_failed_probe_is_tried_again_and_too_little_memory_is_never_stored(tmp_path, monkeypatch):
    from segstudio.core import frame_sources
    from segstudio.core.imageio import ImageDecodeError, NotEnoughMemory
    d = tmp_path / "imgs"
    d.mkdir()
    _stack(d / "s.tif", 4)
    real = frame_sources.probe

    def short(path):
        raise NotEnoughMemory("not enough memory")
    monkeypatch.setattr(frame_sources, "probe", short)
    p = Project.open(d)
    assert [(r.path, r.error) for r in p.store.images()] == [("s.tif", None)]
    assert p.store.container_info("s.tif") is None
    monkeypatch.setattr(frame_sources, "probe", real)
    p.scan()
    assert len(p.store.images()) == 4 and all(r.width == 8 and r.height == 6 for r in p.store.images())
    # the file changes and cannot be read for a while: the frames it had stay (their work too)
    with open(d / "s.tif", "ab") as f:
        f.write(b"\0" * 16)

    def broken(path):
        raise ImageDecodeError("cannot read file: Permission denied")
    monkeypatch.setattr(frame_sources, "probe", broken)
    p.scan()
    assert len(p.store.images()) == 4
    monkeypatch.setattr(frame_sources, "probe", real)
    p.scan()
    assert len(p.store.images()) == 4 and p.store.container_info("s.tif").size == (d / "s.tif").stat().st_size
    p.close()


def test_a_frames_size_comes_from_its_files_probe_without_decoding(tmp_path, monkeypatch):
    from segstudio.core import frame_sources
    d = tmp_path / "imgs"
    d.mkdir()
    _stack(d / "s.tif", 3)
    p = Project.open(d)
    monkeypatch.setattr(frame_sources, "probe", lambda path: pytest.fail("probed again"))
    monkeypatch.setattr(frame_sources, "read_frame", lambda *a, **k: pytest.fail("decoded"))
    assert [p.image_size(r) for r in p.store.images()] == [(8, 6)] * 3
    p.close()


def test_frames_past_a_million_keep_their_order(tmp_path):
    s = SqliteStore(tmp_path / "p.db", tmp_path)
    s.sync_files([sequences.frame_path("v.mp4", i) for i in (1_000_001, 999_999, 1_000_000, 999_998)])
    p = Project(tmp_path, s, tmp_path)
    assert [sequences.split_frame_path(r.path)[1] for r in p.sequence_frames("v.mp4")] == \
        [999_998, 999_999, 1_000_000, 1_000_001]
    p.close()


@pytest.mark.parametrize("stored", ["seven", 2.5, -3, 0, 2 ** 70, b"x"])
def test_a_track_read_back_that_is_not_a_whole_number_is_no_track(tmp_path, stored):
    _numbered(tmp_path / "imgs", 1)
    p = Project.open(tmp_path / "imgs")
    p.store.add_class("cell")
    rec = p.store.images()[0]
    p.store.save_regions(rec.id, [Region(p.store.new_region_id(), 1, np.ones((2, 2), bool), 1, 1, track=5)])
    with p.store.transaction() as t:
        t.execute("UPDATE regions SET track=?", (str(stored) if isinstance(stored, int) and stored > 2 ** 62
                                                 else stored,))
    (r,) = p.store.regions(rec.id)
    assert r.track is None and r.object_id == r.id
    p.close()


@pytest.mark.parametrize("names, run", [
    (["0.png", "1.png", "10.png", "2.png"], ["0.png", "1.png", "2.png", "10.png"]),
    (["t0005.png", "t0015.png", "t0010.png"], ["t0005.png", "t0010.png", "t0015.png"]),  # every 5th frame
    (["000000397133.jpg", "000000037777.jpg", "000000252219.jpg"], []),  # photos named by sparse ids
    (["cam1_0001.png", "cam1_0002.png", "cam2_0001.png"], ["cam1_0001.png", "cam1_0002.png"]),
    (["1.png", "01.png"], []),  # two names for one number
    (["a.png", "7.png"], []),
])
def test_a_folders_numbered_images_are_frames_when_they_run_evenly(names, run):
    assert sequences.numbered_run(names) == run


def test_a_folder_of_photos_named_by_id_is_no_sequence(tmp_path):
    d = tmp_path / "coco"
    d.mkdir()
    for n in (397133, 37777, 252219, 87038):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / f"{n:012d}.png")
    p = Project.open(d)
    assert p.sequence_frames("") == [] and all(p.sequence_key(r) is None for r in p.store.images())
    p.close()


def test_a_video_that_does_not_open_says_why_when_it_is_decoded(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # a header and nothing else
    p = Project.open(d)
    (rec,) = p.store.images()
    assert rec.path == "clip.mp4" and rec.error
    with pytest.raises(Exception) as e:
        p.load_image(rec)
    assert str(e.value) == rec.error and "not an image" not in str(e.value)
    p.close()
