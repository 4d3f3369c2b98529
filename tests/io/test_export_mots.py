"""The video-aware export, MOTS PNG, checked with its consumer: datumaro's own `mots` importer
reads the export and gives every object the same track on every frame of its sequence, with the
masks and the frames' pixels exact. Hostile identities (huge, negative, none), gaps in a
numbered folder, frames of different sizes and regions outside a frame are in the project."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.core.region import Region
from segstudio.io.common import FormatError
from segstudio.io.registry import offered_export_formats, run_export, run_import
from tests.conftest import make_image

dm = pytest.importorskip("datumaro")

HUGE, NEG = 2 ** 62, -5


def stack_pixels():
    return (np.arange(3 * 40 * 50).reshape(3, 40, 50) * 91 % 65535).astype(np.uint16)


def mots_project(root):
    """clips/stack.tif: 3 frames; object HUGE (class cell) moves right on every frame, object NEG
    (class cell) on frames 0 and 2, an untracked region on frame 1 (its own id), one far outside
    frame 2 (dropped), one half outside frame 0 (clipped). shots/: a numbered folder with a gap
    (1, 2, 5) and frames of different sizes, one object (track 3, class nucleus) on each. photo.png
    alone with one region."""
    (root / "clips").mkdir(parents=True)
    tifffile.imwrite(root / "clips" / "stack.tif", stack_pixels(), photometric="minisblack", metadata={"axes": "ZYX"})
    for n, (w, h) in {1: (40, 30), 2: (44, 30), 5: (36, 28)}.items():
        make_image(root / "shots" / f"{n}.png", w, h, seed=n)
    make_image(root / "photo.png", 30, 20, seed=9)
    p = Project.open(root)
    s = p.store
    cell, nucleus = s.ensure_class("cell"), s.ensure_class("nucleus")
    recs = {r.path: r for r in s.images()}

    def reg(cls, x, y, w, h, track=None):
        return Region(s.new_region_id(), cls.id, np.ones((h, w), bool), x, y, track=track)
    for k in range(3):
        regs = [reg(cell, 2 + 10 * k, 3, 8, 6, HUGE)]
        if k != 1:
            regs.append(reg(cell, 30, 25, 5, 5, NEG))
        if k == 1:
            regs.append(reg(cell, 20, 15, 4, 4))
        if k == 2:
            regs.append(reg(nucleus, 500, 500, 4, 4, 11))  # outside the frame
        if k == 0:
            regs.append(reg(nucleus, 46, 36, 8, 8, 12))  # half outside: 4x4 inside
        s.save_regions(recs[f"clips/stack.tif/{k:06d}"].id, regs, status=DONE)
    for n in (1, 2, 5):
        s.save_regions(recs[f"shots/{n}.png"].id, [reg(nucleus, n, 4, 6, 5, 3)], status=DONE)
    s.save_regions(recs["photo.png"].id, [reg(cell, 1, 1, 5, 5, HUGE)], status=DONE)  # another sequence
    return p


@pytest.fixture
def proj(tmp_path):
    p = mots_project(tmp_path / "imgs")
    yield p
    p.close()


def read_with_datumaro(out):
    ds = dm.Dataset.import_from(str(out), "mots")
    labels = [c.name for c in ds.categories()[dm.AnnotationType.label]]
    items = {}
    for item in ds:
        items[item.id] = [(labels[a.label], int(a.attributes["track_id"]), np.asarray(a.image, bool))
                          for a in item.annotations]
    return items, ds


def test_mots_is_offered_where_datumaro_is():
    assert "mots" in offered_export_formats()


def test_datumaro_reads_the_mots_export_with_tracks_kept(proj, tmp_path):
    out = tmp_path / "mots"
    rep = run_export("mots", proj, out)
    assert rep.images == 7 and not rep.left_out
    items, ds = read_with_datumaro(out)
    assert set(items) == {"clips/stack.tif/000000", "clips/stack.tif/000001", "clips/stack.tif/000002",
                          "shots/1", "shots/2", "shots/5", "photo"}
    # the same object: the same (class, track) on every frame of its sequence; others differ
    moving = [next(t for c, t, m in items[f"clips/stack.tif/{k:06d}"] if m[3, 2 + 10 * k]) for k in range(3)]
    assert len(set(moving)) == 1 and 1 <= moving[0] <= 999
    # a track below 1 is no track when the store reads it back: each of those regions is its own object
    neg = [next(t for c, t, m in items[f"clips/stack.tif/{k:06d}"] if m[25, 30]) for k in (0, 2)]
    assert len(set(neg)) == 2 and moving[0] not in neg
    untracked = [t for c, t, m in items["clips/stack.tif/000001"] if m[15, 20]]
    assert untracked and untracked[0] not in (moving[0], neg[0])
    # masks exact: the half-outside region clipped to 4x4, the one outside the frame gone
    f0 = {(c, t): m for c, t, m in items["clips/stack.tif/000000"]}
    assert f0[("cell", moving[0])].sum() == 48 and f0[("cell", moving[0])].shape == (40, 50)
    assert [m.sum() for (c, _), m in f0.items() if c == "nucleus"] == [16]
    assert [c for c, _, _ in items["clips/stack.tif/000002"]].count("nucleus") == 0
    # a numbered folder with a gap and frames of different sizes: one track, each frame its size
    shots = {n: items[f"shots/{n}"] for n in (1, 2, 5)}
    assert len({t for v in shots.values() for _, t, _ in v}) == 1
    assert [v[0][2].shape for v in shots.values()] == [(30, 40), (30, 44), (28, 36)]
    # the frames' pixels: a lossless 16-bit PNG per frame, as datumaro finds it
    by_id = {it.id: it for it in ds}
    for k in range(3):
        img = by_id[f"clips/stack.tif/{k:06d}"].media
        assert img.path.endswith(f"clips/stack.tif/{k:06d}.png")
        assert np.array_equal(np.asarray(Image.open(img.path)).astype(np.uint16), stack_pixels()[k])
    assert by_id["shots/5"].media.path.endswith("shots/5.png")


def test_mots_export_reimports_into_segstudio(proj, tmp_path):
    out = tmp_path / "mots"
    run_export("mots", proj, out)
    q = Project.open(proj.folder, tmp_path / "q.db")
    back = run_import("mots", q, out)
    assert back.images == 7 and not back.errors and not back.unmatched
    rec = q.store.image_by_path("clips/stack.tif/000001")
    assert sorted(r.area for r in q.store.regions(rec.id)) == [16, 48]


def test_more_tracks_than_mots_holds_is_refused_and_nothing_written(proj, tmp_path):
    s = proj.store
    cell = s.ensure_class("cell")
    rec = s.image_by_path("shots/2.png")
    many = [Region(s.new_region_id(), cell.id, np.ones((1, 1), bool), i % 44, i // 44, track=10 ** 12 + i)
            for i in range(1000)]
    s.save_regions(rec.id, many, status=DONE)
    with pytest.raises(FormatError, match="999"):
        run_export("mots", proj, tmp_path / "m")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.*"))


def test_more_classes_than_16_bit_ids_hold_is_refused(proj, tmp_path):
    for i in range(70):
        proj.store.ensure_class(f"c{i}")
    with pytest.raises(FormatError, match="64 classes"):
        run_export("mots", proj, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_a_track_that_is_not_an_int_is_not_believed():
    from segstudio.io.bridge_mots import Tracks, object_key
    r = Region(4, 1, np.ones((1, 1), bool), track=None)
    assert object_key(r) == 4
    for bad in (True, 1.5, float("nan"), "7"):
        r.track = bad
        assert object_key(r) == 4
    t = Tracks()
    a = Region(1, 1, np.ones((1, 1), bool), track=HUGE)
    b = Region(2, 1, np.ones((1, 1), bool), track=NEG)
    assert [t.number("s", 1, a), t.number("s", 1, b), t.number("s", 1, a), t.number("s", 2, a),
            t.number("other", 1, b)] == [1, 2, 1, 1, 1]
