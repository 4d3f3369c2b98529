"""Every export format on a project holding a multi-page TIFF's frames beside an ordinary image:
a frame has no file, so its pixels are written as a lossless PNG named REL/NNNNNN.png, and the
export reads back (through segstudio's importers where the format has one)."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from segstudio.core.project import Project
from segstudio.core.records import DONE
from segstudio.core.region import Region
from segstudio.io.common import ImageMatcher, image_name
from segstudio.io.frame_images import frame_png
from segstudio.io.registry import run_export, run_import
from tests.conftest import make_image

W, H, N = 50, 40, 3


def stack_pixels(n=N, w=W, h=H):
    return (np.arange(n * h * w, dtype=np.int64).reshape(n, h, w) * 37 % 65535).astype(np.uint16)


def frames_project(root, db=None):
    """clips/stack.tif (3 frames, 16-bit) and photo.png; frame k holds one object (track 7)
    moving right, frame 1 a second object too; the photo one region."""
    (root / "clips").mkdir(parents=True)
    tifffile.imwrite(root / "clips" / "stack.tif", stack_pixels(), photometric="minisblack", metadata={"axes": "ZYX"})
    make_image(root / "photo.png", 30, 20, seed=3)
    p = Project.open(root, db)
    s = p.store
    cell = s.ensure_class("cell")
    recs = {r.path: r for r in s.images()}
    assert set(recs) == {"clips/stack.tif/000000", "clips/stack.tif/000001", "clips/stack.tif/000002", "photo.png"}
    for k in range(N):
        regs = [Region(s.new_region_id(), cell.id, np.ones((8, 10), bool), 5 + 10 * k, 6, z=1, track=7)]
        if k == 1:
            regs.append(Region(s.new_region_id(), cell.id, np.ones((6, 6), bool), 30, 30, z=2))
        s.save_regions(recs[f"clips/stack.tif/{k:06d}"].id, regs, status=DONE)
    s.save_regions(recs["photo.png"].id, [Region(s.new_region_id(), cell.id, np.ones((5, 5), bool), 2, 2)],
                   status=DONE)
    return p


def masks(project):
    out = {}
    for rec in project.store.images():
        w, h = project.image_size(rec)
        out[rec.path] = sorted((int(m.sum()), tuple(np.argwhere(m)[0])) for m in
                               (r.full_mask(w, h) for r in project.store.regions(rec.id)))
    return out


@pytest.fixture
def proj(tmp_path):
    p = frames_project(tmp_path / "imgs")
    yield p
    p.close()


def fresh(p, tmp_path, name):
    return Project.open(p.folder, tmp_path / f"{name}.db")


def check_frame_pngs(out, prefix=""):
    """The frames' PNGs in an export hold the stack's pixels exactly (16-bit kept)."""
    want = stack_pixels()
    for k in range(N):
        f = out / prefix / "clips" / "stack.tif" / f"{k:06d}.png"
        got = np.asarray(Image.open(f))
        assert got.dtype == np.uint16 or Image.open(f).mode.startswith("I"), f
        assert np.array_equal(got.astype(np.uint16), want[k]), f


def test_image_names():
    assert image_name("clips/run.mp4/000012") == "clips/run.mp4/000012.png"
    assert image_name("clips/run.mp4") == "clips/run.mp4"  # a video that failed to open stays one record
    assert image_name("shots/12.png") == "shots/12.png"  # a numbered folder's frame is its own file
    assert image_name("a/000012") == "a/000012"  # not a container's frame


def test_matcher_finds_a_frame_by_its_export_name(proj):
    m = ImageMatcher(proj)
    assert m.match("clips/stack.tif/000001.png").path == "clips/stack.tif/000001"
    assert m.match("export/images/clips/stack.tif/000002.png").path == "clips/stack.tif/000002"
    assert m.match_stem("clips/stack.tif/000000").path == "clips/stack.tif/000000"
    assert m.match("photo.png").path == "photo.png"


@pytest.mark.parametrize("fmt", ["coco", "labelme", "labelmap", "yolo"])
def test_native_round_trip(proj, tmp_path, fmt):
    out = tmp_path / f"x-{fmt}"
    rep = run_export(fmt, proj, out)
    assert rep.images == N + 1 and not rep.left_out
    if fmt in ("labelme",):
        check_frame_pngs(out)
        doc = json.loads((out / "clips" / "stack.tif" / "000001.json").read_text())
        assert doc["imagePath"] == "000001.png" and doc["imageWidth"] == W
        assert (out / "photo.png").read_bytes() == (proj.folder / "photo.png").read_bytes()  # a file: copied
    if fmt == "yolo":
        check_frame_pngs(out, "images")
        assert (out / "labels" / "clips" / "stack.tif" / "000001.txt").read_text().count("\n") == 2
    if fmt == "coco":
        names = [im["file_name"] for im in json.loads(out.read_text() if out.is_file() else
                                                     (out / "annotations.json").read_text())["images"]]
        assert "clips/stack.tif/000000.png" in names and "photo.png" in names
        assert any("frame" in n for n in rep.notes)
    if fmt == "labelmap":
        assert (out / "clips" / "stack.tif" / "000002.png").is_file()
    q = fresh(proj, tmp_path, fmt)
    src = out / "annotations.json" if fmt == "coco" else out
    back = run_import(fmt, q, src)
    assert not back.unmatched and not back.errors, (back.unmatched, back.errors)
    got, want = masks(q), masks(proj)
    if fmt == "labelmap":  # one class per pixel: a frame's two objects of one class are one region
        two = want["clips/stack.tif/000001"]
        want["clips/stack.tif/000001"] = [(sum(a for a, _ in two), min(at for _, at in two))]
    assert got == want


def test_instancemap_and_voc_name_frames(proj, tmp_path):
    run_export("instancemap", proj, tmp_path / "im")
    ins = np.asarray(Image.open(tmp_path / "im" / "clips" / "stack.tif" / "000001.png"))
    assert ins.shape == (H, W) and set(np.unique(ins)) == {0, 1, 2}
    rep = run_export("voc", proj, tmp_path / "voc")
    assert rep.images == N + 1
    base = tmp_path / "voc"
    for k in range(N):
        name = f"clips__stack.tif__{k:06d}"
        assert Image.open(base / "JPEGImages" / f"{name}.jpg").size == (W, H)
        cls = np.asarray(Image.open(base / "SegmentationClass" / f"{name}.png"))
        assert cls[6, 5 + 10 * k] == 1 and cls.sum() == (80 + (36 if k == 1 else 0))
    listed = (base / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    assert sorted(listed) == sorted([f"clips__stack.tif__{k:06d}" for k in range(N)] + ["photo"])


def test_a_frame_that_fails_to_decode_is_left_out_with_its_error(proj, tmp_path, monkeypatch):
    from segstudio.core import frame_sources
    from segstudio.core.imageio import ImageDecodeError
    real = frame_sources.read_frame

    def broken(path, index, **kw):
        if index == 1:
            raise ImageDecodeError("frame 1 is corrupt")
        return real(path, index, **kw)
    frame_sources.clear()
    monkeypatch.setattr(frame_sources, "read_frame", broken)
    rep = run_export("yolo", proj, tmp_path / "y")
    assert rep.images == N and [p for p, _ in rep.left_out] == ["clips/stack.tif/000001"]
    assert not (tmp_path / "y" / "images" / "clips" / "stack.tif" / "000001.png").exists()
    assert not (tmp_path / "y" / "labels" / "clips" / "stack.tif" / "000001.txt").exists()
    assert proj.store.image_by_path("clips/stack.tif/000001").error == "frame 1 is corrupt"


def test_frame_png_is_lossless_and_refuses_what_png_cannot_hold(tmp_path):
    rng = np.random.default_rng(0)
    for a in (rng.integers(0, 65535, (7, 9, 3), dtype=np.uint16), rng.integers(0, 255, (7, 9, 3), dtype=np.uint8),
              rng.integers(0, 65535, (7, 9), dtype=np.uint16), rng.integers(0, 255, (7, 9, 4), dtype=np.uint8)):
        f = tmp_path / "f.png"
        f.write_bytes(frame_png(a))
        import cv2
        back = cv2.imdecode(np.fromfile(f, np.uint8), cv2.IMREAD_UNCHANGED)
        if back.ndim == 3:
            back = back[:, :, [2, 1, 0, 3][:back.shape[2]]]
        assert back.dtype == a.dtype and np.array_equal(back, a)
    for bad in (np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8),
                np.zeros(5, np.uint8)):
        with pytest.raises(ValueError):
            frame_png(bad)


def test_every_datumaro_format_writes_frames(proj, tmp_path):
    pytest.importorskip("datumaro")
    from segstudio.io.bridge_formats import BRIDGE_EXPORT, BRIDGE_IMPORT
    for fmt in BRIDGE_EXPORT:
        out = tmp_path / f"dm-{fmt}"
        rep = run_export(fmt, proj, out)
        assert rep.images == N + 1 and not rep.left_out, fmt
        assert not any(".segstudio-frames" in str(f) for f in out.rglob("*")), fmt  # staging gone
        if fmt in BRIDGE_IMPORT:
            back = run_import(fmt, fresh(proj, tmp_path, f"dm-{fmt}"), out)
            assert back.images == N + 1 and not back.errors and not back.unmatched, (fmt, back.errors, back.unmatched)


def test_a_video_s_frames_export_as_their_decoded_pixels(tmp_path):
    av = pytest.importorskip("av")
    root = tmp_path / "imgs"
    root.mkdir()
    with av.open(str(root / "run.mp4"), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "18"})
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for k in range(4):
            rgb = np.zeros((24, 32, 3), np.uint8)
            rgb[:, 4 * k:4 * k + 8] = 200
            for pkt in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    make_image(root / "photo.png", 30, 20, seed=1)
    p = Project.open(root)
    cls = p.store.ensure_class("car")
    frames = p.sequence_frames("run.mp4")
    assert [r.path for r in frames] == [f"run.mp4/{k:06d}" for k in range(4)]
    for k, rec in enumerate(frames):
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, np.ones((24, 8), bool), 4 * k, 0,
                                             track=1)], status=DONE)
    rep = run_export("labelme", p, tmp_path / "lm")
    assert rep.images == 5 and not rep.left_out
    for rec in frames:
        got = np.asarray(Image.open(tmp_path / "lm" / (rec.path + ".png")))
        assert np.array_equal(got, p.load_image(rec))  # the decoded frame, lossless
    back = run_import("labelme", Project.open(root, tmp_path / "q.db"), tmp_path / "lm")
    assert back.images == 5 and not back.unmatched
    p.close()


def test_a_file_named_like_a_flattened_frame_is_a_clash_not_an_overwrite(proj, tmp_path):
    from segstudio.io.common import FormatError
    make_image(proj.folder / "clips__stack.tif__000001.png", 10, 10)
    proj.scan()
    with pytest.raises(FormatError, match="clips__stack.tif__000001"):
        run_export("voc", proj, tmp_path / "voc")
    assert not (tmp_path / "voc").exists()
    rep = run_export("yolo", proj, tmp_path / "y")  # nested names: the two never meet
    assert rep.images == N + 2
