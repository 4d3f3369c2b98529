"""Only regular files are read as images: a FIFO, a device or a link to one never reaches a
decoder (the folder scan does not list them, and every read checks the opened file), and a
PostScript file named .png is refused without Pillow handing it to Ghostscript.

A test that would hang on the old code runs its read in a daemon thread with a timeout (or in a
subprocess with a timeout and a memory cap), so it fails instead of hanging or eating memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from segstudio.core import imageio
from segstudio.core.check import check_images
from segstudio.core.imageio import ImageDecodeError
from segstudio.core.project import Project, scan_folder
from tests.conftest import make_image

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")

REPO = Path(__file__).resolve().parents[2]


def within(seconds: float, fn, *args):
    """fn(*args) on a daemon thread: its result or exception, or a test failure if it hangs."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} still blocked after {seconds} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def release(fifo: Path) -> None:
    """Unblock a reader left waiting on a FIFO by the old code (open the write end, close it)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.fixture
def special(tmp_path):
    """An image folder with a good image, a FIFO and links to a device, a FIFO, nothing, and the image."""
    d = tmp_path / "imgs"
    make_image(d / "a.png", seed=1)
    os.mkfifo(d / "x.png")
    os.symlink("/dev/zero", d / "zero.png")
    os.symlink(d / "x.png", d / "pipe_link.jpg")
    os.symlink(d / "gone.png", d / "dangling.png")
    os.symlink(d / "a.png", d / "good_link.png")
    yield d
    release(d / "x.png")


def test_the_scan_lists_regular_files_and_links_to_them_only(special, caplog):
    with caplog.at_level("WARNING"):
        found = scan_folder(special)
    assert sorted(found) == ["a.png", "good_link.png"]
    assert "x.png is not a regular file" in caplog.text and "zero.png" in caplog.text


@pytest.mark.parametrize("name", ["x.png", "pipe_link.jpg"])
def test_reads_refuse_a_fifo_at_once(special, name):
    for read in ("read_bytes", "decode_image", "read_image_info", "read_header"):
        with pytest.raises(ImageDecodeError, match="not a regular file: it is a named pipe"):
            within(10, getattr(imageio, read), special / name)


def _cap_memory():  # the old code reads /dev/zero until it runs out: keep that to 3 GB
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def run_capped(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """A segstudio process with at most 3 GB of address space and `timeout` seconds."""
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              preexec_fn=_cap_memory, env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} hung")


def test_reads_refuse_a_device_at_once(special):
    code = ("import sys; from segstudio.core import imageio\n"
            "for read in ('read_bytes', 'decode_image', 'read_image_info', 'read_header'):\n"
            "    try:\n"
            "        getattr(imageio, read)(sys.argv[1])\n"
            "    except imageio.ImageDecodeError as e:\n"
            "        print(read, e)\n")
    r = run_capped(["-c", code, str(special / "zero.png")], timeout=30)
    assert r.returncode == 0 and "MemoryError" not in r.stderr, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all("not a regular file: it is a character device" in x for x in lines), r.stdout


def test_a_file_swapped_for_a_fifo_after_the_scan_is_refused_and_stored(special):
    p = Project.open(special)
    try:
        rec = p.store.image_by_path("a.png")
        (special / "a.png").unlink()
        os.mkfifo(special / "a.png")  # between the scan and the read
        try:
            with pytest.raises(ImageDecodeError, match="named pipe"):
                within(10, p.load_image, rec)
        finally:
            release(special / "a.png")
        assert "named pipe" in p.store.image_by_path("a.png").error
    finally:
        p.close()


def test_check_neither_hangs_on_a_fifo_nor_runs_out_on_dev_zero(special, tmp_path):
    r = run_capped(["-m", "segstudio.cli", "check", str(special), "--project", str(tmp_path / "p.db")])
    assert "MemoryError" not in r.stderr + r.stdout
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checked: 2 images, 2 readable, 0 unreadable" in r.stdout


# ----------------------------------------------------------------------------- PostScript
EPS_TEXT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n{} loop\n%%EOF\n"


def eps_binary() -> bytes:
    """A DOS-binary EPS (the C5D0D3C6 header Pillow also hands to Ghostscript)."""
    import struct
    ps = EPS_TEXT
    return struct.pack("<4sIIIIIIH", b"\xc5\xd0\xd3\xc6", 30, len(ps), 0, 0, 0, 0, 0xFFFF) + ps


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Ghostscript looks installed, and any way to it fails the test: Pillow's EPS loader and
    every subprocess entry point record the call and raise."""
    calls: list[str] = []

    def refuse(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} was called: PostScript reached an outside program")
        return f

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs", raising=False)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse("EpsImagePlugin.Ghostscript"))
    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse(f"subprocess.{name}"))
    monkeypatch.setattr(os, "system", refuse("os.system"))
    return calls


@pytest.mark.parametrize("content", [EPS_TEXT, eps_binary()], ids=["eps", "dos-eps"])
def test_postscript_named_png_is_refused_without_ghostscript(tmp_path, no_ghostscript, content):
    p = tmp_path / "x.png"
    p.write_bytes(content)
    for read in ("decode_image", "read_image_info", "read_header"):
        with pytest.raises(ImageDecodeError, match="not an image format segstudio can read: .*PostScript"):
            within(20, getattr(imageio, read), p)
    with pytest.raises(ImageDecodeError, match="PostScript"):
        imageio.open_guarded(content)
    assert no_ghostscript == []


def test_check_refuses_postscript_and_stores_why(tmp_path, no_ghostscript):
    d = tmp_path / "imgs"
    make_image(d / "a.png")
    (d / "ps.png").write_bytes(EPS_TEXT)
    p = Project.open(d)
    try:
        rep = within(60, check_images, p, None, 2)
        assert [path for path, _ in rep.unreadable] == ["ps.png"]
        assert "PostScript" in p.store.image_by_path("ps.png").error
    finally:
        p.close()
    assert no_ghostscript == []


def test_only_the_supported_plugins_are_asked(tmp_path):
    """Formats Pillow knows but segstudio does not list are refused too (an ICO named .png),
    while each supported one still opens."""
    rgb = np.zeros((32, 32, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "icon.ico", format="ICO", sizes=[(32, 32)])
    (tmp_path / "icon.png").write_bytes((tmp_path / "icon.ico").read_bytes())
    with pytest.raises(ImageDecodeError, match="not an image format segstudio can read"):
        imageio.decode_image(tmp_path / "icon.png")
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif"), ("BMP", "bmp"), ("GIF", "gif"),
                     ("WEBP", "webp"), ("PPM", "ppm")):
        Image.fromarray(rgb).save(tmp_path / f"ok.{ext}", format=fmt)
        assert imageio.decode_image(tmp_path / f"ok.{ext}").shape[:2] == (32, 32), fmt
        assert imageio.read_header(tmp_path / f"ok.{ext}").format == ("TIFF" if fmt == "TIFF" else fmt)


def test_no_image_open_in_the_process_reaches_ghostscript(tmp_path, monkeypatch):
    """Even a plain Image.open elsewhere in segstudio's process (a library's) cannot identify
    EPS, and Pillow's EPS plugin believes there is no Ghostscript."""
    import io
    called = []
    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, lambda *a, _n=name, **k: called.append(_n))
    from PIL import UnidentifiedImageError
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(EPS_TEXT))
    Image.init()  # loading every plugin does not bring it back
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(eps_binary()))
    assert not EpsImagePlugin.has_ghostscript() and called == []
