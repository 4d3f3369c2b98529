"""core.frame_sources: stacks and videos read frame by frame, frame-exact, bounded, safely.

The videos are made here (PyAV's encoders) and show their own frame number as 8 bars, so every
read is checked to be the frame asked for.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core import frame_sources as fs
from segstudio.core.image_files import ImageDecodeError

W, H, BITS = 64, 48, 8


@pytest.fixture(autouse=True)
def _fresh_cache():
    fs.clear()
    yield
    fs.set_cache_limit(fs.CACHE_BYTES)
    fs.clear()


# ---------------------------------------------------------------------------- test videos
def _luma(k: int) -> np.ndarray:
    y = np.full((H, W), 16, np.uint8)
    sw = W // BITS
    for b in range(BITS):
        if (k >> b) & 1:
            y[:, b * sw:(b + 1) * sw] = 235
    return y


def number(rgb: np.ndarray) -> int:
    g = rgb.mean(axis=2)
    sw = W // BITS
    return sum(1 << b for b in range(BITS) if g[8:-8, b * sw + 2:(b + 1) * sw - 2].mean() > 128)


VIDEOS = {  # name: (container format, codec, options)
    "h264.mp4": ("mp4", "libx264", {"bf": "3", "g": "10", "crf": "12"}),
    "h264.mkv": ("matroska", "libx264", {"bf": "2", "g": "8", "crf": "12"}),
    "h264.mov": ("mov", "libx264", {"bf": "2", "g": "12", "crf": "12"}),
    "mjpeg.avi": ("avi", "mjpeg", {"q:v": "2"}),
}


def make_video(path: Path, n: int = 30, offset: int = 0, kind: str = "h264.mp4", muxer: dict | None = None,
               **extra) -> Path:
    av = pytest.importorskip("av")
    fmt, codec, opts = VIDEOS[kind]
    with av.open(str(path), "w", format=fmt, options=muxer or {}) as c:
        s = c.add_stream(codec, rate=25, options={**opts, **extra})
        s.width, s.height = W, H
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for k in range(n):
            yuv = np.concatenate([_luma(k + offset), np.full((H // 2, W), 128, np.uint8)])
            for p in s.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("kind", list(VIDEOS))
def test_video_frames_are_exact_forward_backward_and_at_random(tmp_path, kind):
    v = make_video(tmp_path / f"clip.{kind.split('.')[1]}", 30, kind=kind)
    info = fs.probe(v)
    assert info == fs.SequenceInfo("video", 30, W, H, "TYXC", 25.0)
    order = list(range(30)) + list(range(29, -1, -1))
    rng = random.Random(kind)
    order += [rng.randrange(30) for _ in range(30)]
    for k in order:
        if rng.random() < 0.3:
            fs.forget(v)  # uncached: a real seek
        a = fs.read_frame(v, k)
        assert a.shape == (H, W, 3) and a.dtype == np.uint8
        assert number(a) == k, f"asked for frame {k}"


def test_a_decoded_frame_is_read_only_and_cached(tmp_path):
    v = make_video(tmp_path / "a.mp4", 12)
    a = fs.read_frame(v, 5)
    assert not a.flags.writeable
    assert fs.read_frame(v, 5) is a


def test_stepping_back_in_a_long_group_of_pictures_decodes_it_once(tmp_path):
    v = make_video(tmp_path / "long_gop.mp4", 40, g="40", **{"x264-params": "scenecut=0"})
    fs.read_frame(v, 39)
    fs.read_frame(v, 38)  # one seek to the keyframe, the frames before 38 kept on the way
    before = fs.cache_info()["frames"]
    assert before >= 10
    for k in range(37, 27, -1):
        assert number(fs.read_frame(v, k)) == k
    assert fs.cache_info()["frames"] == before  # all hits


def test_frame_numbers_out_of_range(tmp_path):
    v = make_video(tmp_path / "a.mp4", 10)
    with pytest.raises(ImageDecodeError, match="past the end"):
        fs.read_frame(v, 10)
    with pytest.raises(ImageDecodeError, match="start at 0"):
        fs.read_frame(v, -1)
    with pytest.raises(TypeError):
        fs.read_frame(v, 1.5)  # type: ignore[arg-type]
    assert number(fs.read_frame(v, 9)) == 9


@pytest.mark.timeout(60)
@pytest.mark.parametrize("faststart", [False, True])
def test_a_truncated_video_is_an_error_not_a_crash_or_a_hang(tmp_path, faststart):
    full = make_video(tmp_path / "full.mp4", 30, muxer={"movflags": "faststart"} if faststart else None)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 85 // 100])
    try:
        info = fs.probe(cut)
    except ImageDecodeError:
        assert not faststart  # the index (moov) was at the end and is gone
        with pytest.raises(ImageDecodeError):
            fs.read_frame(cut, 0)
        return
    assert info is not None and info.frames == 30  # the header still says 30
    good = 0
    for k in range(30):
        try:
            good += number(fs.read_frame(cut, k)) == k
        except ImageDecodeError as e:
            assert "frame" in str(e)
    assert 0 < good < 30
    with pytest.raises(ImageDecodeError, match="truncated"):
        fs.read_frame(cut, 29)


@pytest.mark.parametrize("content", [b"", b"\x00" * 1000, bytes(random.Random(1).randbytes(5000)),
                                     b"\x1aE\xdf\xa3" + bytes(100), b"RIFF\xff\xff\xff\xffAVI LIST",
                                     b"\x00\x00\x00\x18ftypmp42" + bytes(64)])
def test_garbage_with_a_video_name_is_refused(tmp_path, content):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(ImageDecodeError):
        fs.probe(p)
    with pytest.raises(ImageDecodeError):
        fs.read_frame(p, 0)


def test_a_video_that_names_other_files_reads_none_of_them(tmp_path, monkeypatch):
    make_video(tmp_path / "inner.mp4", 5)
    monkeypatch.chdir(tmp_path)  # where FFmpeg, unguarded, finds the file the list names
    lst = tmp_path / "list.mp4"  # an FFmpeg concat list: without the gate it would play inner.mp4
    lst.write_text("ffconcat version 1.0\nfile inner.mp4\n")
    with pytest.raises(ImageDecodeError, match="not a video"):
        fs.probe(lst)
    with pytest.raises(ImageDecodeError, match="not a video"):
        fs.read_frame(lst, 0)
    hls = tmp_path / "playlist.mkv"
    hls.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ninner.mp4\n#EXT-X-ENDLIST\n")
    with pytest.raises(ImageDecodeError):
        fs.read_frame(hls, 0)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["x.mp4", "x.tif"])
def test_a_fifo_with_a_video_or_stack_name_is_refused_at_once(tmp_path, name):
    p = tmp_path / name
    os.mkfifo(p)
    with pytest.raises(ImageDecodeError, match="FIFO"):
        fs.probe(p)
    with pytest.raises(ImageDecodeError, match="FIFO"):
        fs.read_frame(p, 0)


def test_the_cache_stays_under_its_limit(tmp_path):
    v = make_video(tmp_path / "long.mp4", 200, g="25")
    limit = 20 * W * H * 3
    fs.set_cache_limit(limit)
    for k in list(range(200)) + list(range(199, 150, -1)):
        assert number(fs.read_frame(v, k)) == k
        info = fs.cache_info()
        assert info["bytes"] <= limit and info["frames"] <= 20
    assert fs.cache_info()["frames"] > 0


def test_open_files_are_bounded(tmp_path):
    for i in range(fs.OPEN_FILES + 3):
        v = make_video(tmp_path / f"v{i}.mp4", 3, offset=i)
        assert number(fs.read_frame(v, 1)) == i + 1
        assert fs.cache_info()["open_files"] <= fs.OPEN_FILES


def test_a_video_replaced_on_disk_is_read_again(tmp_path):
    v = make_video(tmp_path / "clip.mp4", 10)
    assert number(fs.read_frame(v, 3)) == 3
    new = make_video(tmp_path / "other.mp4", 12, offset=100)
    os.replace(new, v)
    assert fs.probe(v).frames == 12
    assert number(fs.read_frame(v, 3)) == 103
    assert number(fs.read_frame(v, 11)) == 111


def test_a_stack_rewritten_in_place_is_read_again(tmp_path):
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, np.zeros((5, 8, 8), np.uint8), photometric="minisblack")
    assert fs.read_frame(p, 2).max() == 0
    # the same size: the mtime tells the files apart
    tifffile.imwrite(p, np.full((5, 8, 8), 7, np.uint8), photometric="minisblack")
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fs.read_frame(p, 2).max() == 7


def test_threads_stepping_the_same_video_get_exact_frames(tmp_path):
    v = make_video(tmp_path / "clip.mp4", 40)
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            k = rng.randrange(40)
            try:
                got = number(fs.read_frame(v, k))
            except Exception as e:  # noqa: BLE001  (reported by the assertion below)
                errors.append(f"{k}: {e!r}")
                continue
            if got != k:
                errors.append(f"{k} -> {got}")
            if rng.random() < 0.2:
                fs.forget(v)  # another thread may be decoding from the handle this retires

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------------------- TIFF stacks
def _planes(n: int, dtype=np.uint16, size=(12, 10)) -> np.ndarray:
    step = 1000 if dtype == np.uint16 else 20
    a = np.zeros((n, *size), dtype)
    for i in range(n):
        a[i] = i * step + np.arange(size[1], dtype=dtype)[None, :]
    return a


def test_a_multi_page_tiff_of_2d_pages(tmp_path):
    p = tmp_path / "pages.tif"
    planes = _planes(5, np.uint8, (12, 10))
    with tifffile.TiffWriter(p) as tw:
        for plane in planes:
            tw.write(plane, metadata=None)  # five separate pages, no shape metadata
    info = fs.probe(p)
    assert info is not None and (info.kind, info.frames, info.width, info.height) == ("stack", 5, 10, 12)
    for k in (4, 0, 2):
        np.testing.assert_array_equal(fs.read_frame(p, k), planes[k])
    with pytest.raises(ImageDecodeError, match="past the end"):
        fs.read_frame(p, 5)


def test_a_3d_zyx_tiff_keeps_16_bits(tmp_path):
    p = tmp_path / "z.tif"
    planes = _planes(7)
    tifffile.imwrite(p, planes, metadata={"axes": "ZYX"})
    info = fs.probe(p)
    assert info == fs.SequenceInfo("stack", 7, 10, 12, "ZYX", None)
    a = fs.read_frame(p, 6)
    assert a.dtype == np.uint16 and a.max() > 255
    np.testing.assert_array_equal(a, planes[6])


def test_an_ome_tiff_flattens_t_then_z(tmp_path):
    p = tmp_path / "tz.ome.tif"
    t, z = 3, 4
    data = _planes(t * z).reshape(t, z, 12, 10)
    tifffile.imwrite(p, data, ome=True, metadata={"axes": "TZYX"})
    info = fs.probe(p)
    assert info is not None and info.frames == 12 and "T" in info.axes and "Z" in info.axes
    for ti, zi in ((0, 0), (2, 1), (1, 3), (2, 3)):
        np.testing.assert_array_equal(fs.read_frame(p, ti * z + zi), data[ti, zi])


def test_an_imagej_hyperstack_with_three_channels_gives_rgb_frames(tmp_path):
    p = tmp_path / "tzc.tif"
    data = np.random.default_rng(0).integers(0, 255, (2, 3, 3, 12, 10), dtype=np.uint8)
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TZCYX"})
    info = fs.probe(p)
    assert info is not None and info.frames == 6 and info.axes == "TZCYX"
    a = fs.read_frame(p, 1 * 3 + 2)
    np.testing.assert_array_equal(a, np.moveaxis(data[1, 2], 0, -1))


def test_a_stack_of_rgb_pages(tmp_path):
    p = tmp_path / "rgbs.tif"
    data = np.random.default_rng(1).integers(0, 255, (4, 12, 10, 3), dtype=np.uint8)
    tifffile.imwrite(p, data, photometric="rgb")
    assert fs.probe(p).frames == 4
    np.testing.assert_array_equal(fs.read_frame(p, 3), data[3])


def test_single_image_tiffs_are_not_sequences(tmp_path):
    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((12, 10), np.uint16))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((12, 10, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((1, 12, 10), np.uint8), metadata={"axes": "ZYX"})
    (tmp_path / "png.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    for name in ("gray.tif", "rgb.tif", "one.tif", "png.tif"):
        assert fs.probe(tmp_path / name) is None, name
    with pytest.raises(ImageDecodeError, match="single image"):
        fs.read_frame(tmp_path / "gray.tif", 0)
    assert fs.probe(tmp_path / "photo.jpg") is None  # no container by its name: not even opened


def _small_stack() -> bytes:
    import io
    buf = io.BytesIO()
    tifffile.imwrite(buf, _planes(3, np.uint16, (6, 5)), photometric="minisblack", metadata={"axes": "ZYX"})
    return buf.getvalue()


_STACK = _small_stack()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(_STACK) - 1), st.integers(0, 255)), max_size=8),
       cut=st.integers(0, len(_STACK)))
def test_hostile_tiff_headers_raise_only_decode_errors(tmp_path, edits, cut):
    data = bytearray(_STACK)
    for at, value in edits:
        data[at] = value
    p = tmp_path / "hostile.tif"
    p.write_bytes(bytes(data[:cut]))
    fs.forget(p)
    try:
        info = fs.probe(p)
    except ImageDecodeError:
        info = None
    for k in range(min(info.frames, 4) if info else 1):
        try:
            a = fs.read_frame(p, k)
            assert a.ndim in (2, 3)
        except ImageDecodeError:
            pass


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("v") / "s.mp4", 8, muxer={"movflags": "faststart"}).read_bytes()


@pytest.mark.timeout(120)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_videos_raise_only_decode_errors(tmp_path, small_mp4, data):
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(small_mp4) - 1), st.integers(0, 255)), max_size=12))
    cut = data.draw(st.integers(0, len(small_mp4)))
    raw = bytearray(small_mp4)
    for at, value in edits:
        raw[at] = value
    p = tmp_path / "damaged.mp4"
    p.write_bytes(bytes(raw[:cut]))
    fs.forget(p)
    try:
        info = fs.probe(p)
    except ImageDecodeError:
        return
    assert info is not None and 1 <= info.frames
    for k in (0, min(info.frames, 8) - 1, 1):
        try:
            a = fs.read_frame(p, k)
            assert a.ndim == 3 and a.shape[2] == 3
        except ImageDecodeError:
            pass


def test_a_stack_written_page_by_page_is_a_stack(tmp_path):
    """tifffile's writer makes each write() a series of its own: five one-page series are five frames."""
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as w:
        for i in range(5):
            w.write(np.full((6, 7), i * 10, np.uint8))
    info = fs.probe(path)
    assert info is not None and info.frames == 5 and (info.width, info.height) == (7, 6)
    assert [int(fs.read_frame(path, i)[0, 0]) for i in range(5)] == [0, 10, 20, 30, 40]
