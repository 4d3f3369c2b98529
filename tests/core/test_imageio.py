import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segstudio.core import imageio
from segstudio.core.imageio import ImageDecodeError, decode_image
from tests.conftest import shared


def test_pillow_quirks_decode_or_fail_clearly():
    folder = shared("quirks", "pillow")
    files = [p for p in sorted(folder.iterdir()) if "LICENSE" not in p.name]
    assert len(files) > 20
    for p in files:
        try:
            a = decode_image(p)
        except ImageDecodeError as e:
            assert str(e)  # a clear message, never a crash
            continue
        assert a.ndim in (2, 3) and a.dtype in (np.uint8, np.uint16, np.float32), p.name
        if a.ndim == 3:
            assert a.shape[2] == 3, p.name
        info = imageio.read_image_info(p)
        assert (info.width, info.height) == (a.shape[1], a.shape[0]), p.name


def test_exif_orientations_come_out_upright():
    folder = shared("quirks", "pillow")
    upright = decode_image(folder / "hopper.jpg").astype(np.float32)
    for n in range(2, 9):
        a = decode_image(folder / f"hopper_orientation_{n}.jpg").astype(np.float32)
        assert a.shape == upright.shape
        assert np.abs(a - upright).mean() < 12, n  # JPEG noise only, not a rotated picture


def test_sixteen_bit_kept():
    folder = shared("quirks", "pillow")
    for name in ("hopper_16bit.pgm", "16bit.cropped.tif", "16bit.MM.cropped.tif"):
        a = decode_image(folder / name)
        assert a.dtype == np.uint16, name
    le, be = decode_image(folder / "16bit.cropped.tif"), decode_image(folder / "16bit.MM.cropped.tif")
    assert np.array_equal(le, be)  # byte order handled
    rgb16 = decode_image(folder / "tiff_16bit_RGB.tiff")
    assert rgb16.dtype == np.uint16 and rgb16.shape[2] == 3 and rgb16.max() > 255


def test_cmyk_palette_and_alpha_become_rgb():
    folder = shared("quirks", "pillow")
    assert decode_image(folder / "pil_sample_cmyk.jpg").shape[2] == 3
    assert decode_image(folder / "pil123p.png").shape[2] == 3
    assert decode_image(folder / "rgb_trns.png").shape[2] == 3


def test_modes_synthetic(tmp_path):
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png").shape == (5, 6, 3)
    la = Image.fromarray(np.full((5, 6), 77, np.uint8)).convert("LA")
    la.save(tmp_path / "la.png")
    assert decode_image(tmp_path / "la.png").shape == (5, 6)
    Image.fromarray(np.zeros((5, 6), np.uint8)).convert("1").save(tmp_path / "b.png")
    assert decode_image(tmp_path / "b.png").dtype == np.uint8
    f = Image.fromarray(np.linspace(-1, 1, 30, dtype=np.float32).reshape(5, 6))
    f.save(tmp_path / "f.tif")
    a = decode_image(tmp_path / "f.tif")
    assert a.dtype == np.float32 and a.min() < 0


def test_tiff_orientation_applied(tmp_path):
    import tifffile
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    tifffile.imwrite(tmp_path / "o.tif", a, extratags=[(274, 3, 1, 6, False)])  # rotate 90 CW
    out = decode_image(tmp_path / "o.tif")
    assert np.array_equal(out, np.rot90(a, -1))


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
])
def test_bad_files_give_clear_errors(tmp_path, content, needle):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=needle):
        decode_image(p)


def test_truncated_and_fuzzed_files_never_crash(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    p = tmp_path / "t.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated|corrupt"):
        decode_image(p)
    rng = np.random.default_rng(1)
    for ext, fmt in ((".jpg", "JPEG"), (".png", "PNG"), (".tif", "TIFF")):
        b = io.BytesIO()
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(b, fmt)
        raw = bytearray(b.getvalue())
        for trial in range(40):
            mutated = bytearray(raw)
            for _ in range(8):
                mutated[rng.integers(0, len(mutated))] = rng.integers(0, 256)
            q = tmp_path / f"fuzz{trial}{ext}"
            q.write_bytes(bytes(mutated))
            try:
                out = decode_image(q)
                assert out.ndim in (2, 3)
            except ImageDecodeError:
                pass


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        decode_image(tmp_path / "nope.png")
    with pytest.raises(ImageDecodeError, match="folder"):
        decode_image(tmp_path)


def test_decompression_bomb_guard_and_override(tmp_path, monkeypatch, caplog):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(imageio, "PILLOW_LIMIT", 1000)
    with pytest.raises(ImageDecodeError, match="decompression-bomb"):
        decode_image(tmp_path / "big.png")
    with caplog.at_level("WARNING"):
        assert decode_image(tmp_path / "big.png", allow_large=True).shape == (40, 50)
    assert "overridden" in caplog.text


def test_non_ascii_path(tmp_path):
    p = tmp_path / "日本語 ünïcode" / "画像 é.png"
    p.parent.mkdir()
    Image.fromarray(np.full((4, 5, 3), 9, np.uint8)).save(p)
    assert decode_image(p).shape == (4, 5, 3)


def test_display_window_for_16_bit():
    a = np.linspace(1000, 3000, 10000).astype(np.uint16).reshape(100, 100)
    lo, hi = imageio.auto_window(a)
    assert 1000 <= lo < 1100 and 2900 < hi <= 3000
    d = imageio.to_display(a, (lo, hi))
    assert d.dtype == np.uint8 and d.min() == 0 and d.max() == 255
    u8 = np.zeros((3, 3), np.uint8)
    assert imageio.to_display(u8) is u8  # 8-bit passes through without a copy


def test_opencv_fast_path_gives_the_same_pixels_as_pillow(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    ex = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6
    ex.save(tmp_path / "rot.jpg", quality=90, exif=exif)
    monkeypatch.setattr(imageio, "FAST_PATH", False)  # Pillow for everything
    small = {n: decode_image(tmp_path / n) for n in ("a.jpg", "a.png", "g16.png", "rot.jpg")}
    monkeypatch.setattr(imageio, "FAST_PATH", True)
    for n, a in small.items():
        b = decode_image(tmp_path / n)
        assert b.shape == a.shape and b.dtype == a.dtype, n
        assert np.array_equal(a, b), n


def test_pillows_own_guard_stays_on_and_a_real_bomb_is_refused_from_its_header(tmp_path, caplog):
    """Pillow's process-wide limit is not switched off: a plain Image.open elsewhere still
    refuses a bomb, while the decoder reads its size and refuses it with a clear message."""
    from tests.io.hostile import png_bomb
    assert Image.MAX_IMAGE_PIXELS is not None
    data = png_bomb(20000, 20000)  # 400 Mpx, about 60 KB on disk
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    (tmp_path / "bomb.png").write_bytes(data)
    assert imageio.read_image_info(tmp_path / "bomb.png") == imageio.ImageInfo(20000, 20000)
    with pytest.raises(ImageDecodeError, match="decompression-bomb"):
        decode_image(tmp_path / "bomb.png")
    with caplog.at_level("WARNING"):
        im = imageio.open_guarded(data, allow_large=True)  # the explicit override, logged
        assert im.size == (20000, 20000)
        im.close()
    assert "overridden" in caplog.text
    assert Image.MAX_IMAGE_PIXELS is not None


def test_headers_are_read_without_lifting_pillows_guard_for_anyone(tmp_path, monkeypatch):
    """Reading an oversized header never switches Pillow's process-wide limit off: every size
    check Pillow makes meanwhile still sees its limit, and plain Image.open calls on other
    threads keep refusing the bomb while the decoder reads its header again and again."""
    import threading
    from tests.io.hostile import png_bomb
    data = png_bomb(20000, 20000)
    (tmp_path / "bomb.png").write_bytes(data)
    limits_seen = []
    real_check = Image._decompression_bomb_check

    def spy(size):
        limits_seen.append(Image.MAX_IMAGE_PIXELS)
        return real_check(size)

    monkeypatch.setattr(Image, "_decompression_bomb_check", spy)
    assert imageio.read_image_info(tmp_path / "bomb.png") == imageio.ImageInfo(20000, 20000)
    with pytest.raises(ImageDecodeError, match="decompression-bomb"):
        decode_image(tmp_path / "bomb.png")
    imageio.open_guarded(data, allow_large=True).close()
    assert None not in limits_seen

    stop = threading.Event()
    opened = []

    def plain_opens():
        while not stop.is_set():
            try:
                Image.open(io.BytesIO(data)).close()
                opened.append(1)  # the guard was off for this thread
            except Image.DecompressionBombError:
                pass

    threads = [threading.Thread(target=plain_opens) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(300):
            imageio.read_image_info(tmp_path / "bomb.png")
            imageio.open_guarded(data, allow_large=True).close()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert opened == [], f"{len(opened)} plain Image.open calls got past Pillow's guard"


def test_declared_size_reads_only_the_header(tmp_path, monkeypatch):
    """declared_size: (width, height) as stored, from a path, bytes or an open file, without
    decoding (ImageFile.load is never called) and whatever the size."""
    from PIL import ImageFile
    from tests.io.hostile import png_bomb
    data = png_bomb(25000, 25000)
    (tmp_path / "mask.png").write_bytes(data)
    Image.fromarray(np.zeros((30, 40), np.uint16)).save(tmp_path / "m16.png")
    import tifffile
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((20, 10, 8), np.uint16), photometric="minisblack",
                     planarconfig="contig")

    def no_decoding(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert imageio.declared_size(tmp_path / "mask.png") == (25000, 25000)
    assert imageio.declared_size(data) == (25000, 25000)
    with open(tmp_path / "m16.png", "rb") as f:
        assert imageio.declared_size(f) == (40, 30)
    head = imageio.read_header(tmp_path / "t.tif")
    assert (head.width, head.height, head.samples, head.bits) == (10, 20, 8, 16)


def test_a_late_exif_orientation_is_read_without_decoding_a_png(tmp_path):
    """A PNG's eXIf chunk after its pixels: the orientation is found by walking the chunks, so
    the header and the fast decoder agree with Pillow without decoding the image twice."""
    import struct
    import zlib
    a = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    png = buf.getvalue()
    ex = Image.Exif()
    ex[0x0112] = 6
    raw = ex.tobytes()
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    iend = png.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(png[:iend] + chunk + png[iend:])
    assert imageio.read_image_info(tmp_path / "late.png") == imageio.ImageInfo(12, 20)
    assert np.array_equal(decode_image(tmp_path / "late.png"), np.rot90(a, -1))


def _small_files() -> list[bytes]:
    out = []
    a = np.random.default_rng(5).integers(0, 255, (12, 10, 3), np.uint8)
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, fmt)
        out.append(buf.getvalue())
    return out


_SMALL = _small_files()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(_SMALL) - 1), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                             max_size=8), cut=st.integers(0, 10**6))
def test_hostile_headers_give_an_image_decode_error_or_a_size(which, edits, cut):
    """Mutated and cut files of every supported format: read_header answers with a size or
    ImageDecodeError, never another exception, and open_guarded / decode_image agree in kind."""
    data = bytearray(_SMALL[which])
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, cut % (len(data) + 1))])
    try:
        head = imageio.read_header(data)
        assert head.width > 0 and head.height > 0 and head.bytes_per_pixel > 0
    except ImageDecodeError:
        pass
    try:
        imageio.open_guarded(data).close()
    except ImageDecodeError:
        pass
    try:
        decode_image("x.bin", data=data)
    except ImageDecodeError:
        pass
