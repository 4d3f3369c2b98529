"""`check` bounds its memory by bytes (pixels x samples x bytes per sample, plus the file) shared
by its workers, not by a count of files; a failure for want of memory is never stored as the
file's error; and the cost each decode reserves is an upper bound of what it really holds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segstudio.cli import main
from segstudio.core import imageio
from segstudio.core.check import check_images
from segstudio.core.project import Project
from tests.conftest import make_image

REPO = Path(__file__).resolve().parents[2]


def heavy_tiff(path: Path, w: int = 400, h: int = 300, samples: int = 8) -> Path:
    """Light on pixels, heavy per pixel: 8 samples of 16 bits (16 bytes a pixel), zlib."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(0).integers(0, 65535, (h, w, samples), np.uint16)
    tifffile.imwrite(path, a, photometric="minisblack", planarconfig="contig", compression="zlib")
    return path


def test_the_header_counts_bytes_per_pixel_not_pixels(tmp_path):
    p = heavy_tiff(tmp_path / "s8.tif")
    head = imageio.read_header(p)
    assert (head.width, head.height, head.samples, head.bits) == (400, 300, 8, 16)
    assert head.decoded_bytes == 400 * 300 * 16
    make_image(tmp_path / "rgb.png", 400, 300)
    rgb = imageio.read_header(tmp_path / "rgb.png")
    assert rgb.pixels == head.pixels
    # the same pixel count costs far more with 8 x 16-bit samples than with 8-bit RGB
    size = p.stat().st_size
    assert imageio.decode_cost(head, size) > 4 * imageio.decode_cost(rgb, (tmp_path / "rgb.png").stat().st_size) - size


def test_workers_wait_for_room_in_a_shared_budget(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(6):
        heavy_tiff(folder / f"s{i}.tif")
    one = imageio.decode_cost(imageio.read_header(folder / "s0.tif"), (folder / "s0.tif").stat().st_size)
    p = Project.open(folder)
    try:
        rep = check_images(p, workers=8, memory=int(one * 1.5))  # room for one decode at a time
        assert rep.readable == 6 and not rep.unreadable and not rep.not_checked
        assert rep.most_at_once == 1 and rep.peak_reserved <= rep.budget
        rep = check_images(p, workers=8, memory=int(one * 3.5))
        assert rep.most_at_once <= 3 and rep.peak_reserved <= rep.budget
    finally:
        p.close()


def test_budget_is_first_come_first_served_and_never_overdrawn():
    from segstudio.core.memory import MemoryBudget
    b = MemoryBudget(100)
    order: list[str] = []
    with b.reserve(60):
        def take(name, n):
            with b.reserve(n):
                order.append(name)
                time.sleep(0.05)
        big = threading.Thread(target=take, args=("big", 90))
        big.start()
        time.sleep(0.05)
        small = threading.Thread(target=take, args=("small", 10))  # would fit now, but waits its turn
        small.start()
        time.sleep(0.1)
        assert order == []
    big.join(5)
    small.join(5)
    assert order == ["big", "small"] and b.peak <= 100 and b.used == 0
    with pytest.raises(ValueError):
        with b.reserve(101):
            pass


def test_an_image_larger_than_the_whole_budget_is_not_checked_and_nothing_is_stored(tmp_path, capsys):
    folder = tmp_path / "imgs"
    heavy_tiff(folder / "big.tif", 1000, 800)
    make_image(folder / "ok.png")
    code = main(["check", str(folder), "--memory", "2M"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 not checked" in out and "big.tif" in out and "needs about" in out and "8 x 16-bit" in out
    code = main(["info", str(folder), "--json"])
    assert json.loads(capsys.readouterr().out)["errors"] == []  # not stored as the file's error
    code = main(["check", str(folder), "--json"])  # with the default budget it is checked, and readable
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["readable"] == 2 and d["not_checked"] == []


def test_running_out_of_memory_is_never_stored_as_the_files_error(tmp_path, monkeypatch):
    """A valid PNG whose decode hits MemoryError (other work held the memory) is reported as not
    checked, keeps no error, and is still exported; one that fails only once is checked again."""
    import cv2
    from segstudio.io.registry import run_export
    folder = tmp_path / "imgs"
    for i in range(3):
        make_image(folder / f"p{i}.png", seed=i)
    real = cv2.imdecode
    fails = {"left": 10**9}

    def short_of_memory(buf, flags):
        if fails["left"] > 0:
            fails["left"] -= 1
            raise MemoryError
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", short_of_memory)
    p = Project.open(folder)
    try:
        rep = check_images(p, workers=2)
        assert not rep.unreadable and sorted(x for x, _ in rep.not_checked) == ["p0.png", "p1.png", "p2.png"]
        assert all("not enough memory" in why for _, why in rep.not_checked)
        assert all(r.error is None for r in p.store.images())
        fails["left"] = 3  # the first pass fails for want of memory; the retry alone succeeds
        rep = check_images(p, workers=2)
        assert rep.readable == 3 and not rep.not_checked and not rep.unreadable
        monkeypatch.setattr(cv2, "imdecode", real)
        exported = run_export("voc", p, tmp_path / "voc")  # decodes every image
        assert exported.images == 3 and not exported.left_out
    finally:
        p.close()


def test_parse_memory_sizes():
    from segstudio.core.memory import parse_bytes
    assert parse_bytes("2G") == 2 << 30 and parse_bytes("500M") == 500 << 20
    assert parse_bytes("1.5GB") == int(1.5 * (1 << 30)) and parse_bytes("800000") == 800000
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


MEASURE = r"""
import json, sys
import numpy as np, cv2, tifffile  # noqa: F401  loaded before the baseline
from segstudio.core import imageio
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
out = {}
for p in sys.argv[1:]:
    data = open(p, "rb").read()
    cost = imageio.decode_cost(imageio.read_header(data), len(data)) - len(data)  # data is held already
    imageio.decode_image(p, data=data)  # first use loads codecs: not the decode's memory
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
    base = status("VmRSS")
    a = imageio.decode_image(p, data=data)
    out[p] = [status("VmHWM") - base, cost]
    del a
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc")
def test_decode_cost_bounds_what_decoding_really_holds(tmp_path):
    rng = np.random.default_rng(0)
    w, h = 1500, 1000
    rgb = rng.integers(0, 255, (h, w, 3), np.uint8)
    files = {"rgb.jpg": lambda p: Image.fromarray(rgb).save(p, quality=90),
             "rgba.png": lambda p: Image.fromarray(rgb).convert("RGBA").save(p),
             "p.png": lambda p: Image.fromarray(rgb).convert("P").save(p),
             "cmyk.jpg": lambda p: Image.fromarray(rgb).convert("CMYK").save(p),
             "rgb.webp": lambda p: Image.fromarray(rgb).save(p),
             "rgb.bmp": lambda p: Image.fromarray(rgb).save(p),
             "f64.tif": lambda p: tifffile.imwrite(p, rng.random((h, w))),
             "s8.tif": lambda p: heavy_tiff(p, w, h)}
    for name, write in files.items():
        write(tmp_path / name)
    r = subprocess.run([sys.executable, "-c", MEASURE, *(str(tmp_path / n) for n in files)], capture_output=True,
                       text=True, timeout=120, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    for path, (peak, cost) in json.loads(r.stdout).items():
        assert peak <= cost, f"{Path(path).name}: decoding held {peak / 1e6:.1f} MB, estimated {cost / 1e6:.1f} MB"


def test_the_shared_budget_grows_when_memory_comes_free(monkeypatch):
    from segstudio.core import memory
    monkeypatch.setattr(memory, "_default", None)
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 30)
    b = memory.default_budget()
    assert b.total == 512 << 20
    monkeypatch.setattr(memory, "available_memory", lambda: 4 << 30)
    assert memory.default_budget() is b and b.total == 2 << 30
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)
    assert memory.default_budget().total == 2 << 30  # never lowered under what may be held


_REAL_OOM = r"""
import json, os, resource, sys
import numpy as np
from PIL import Image
from segstudio.core import imageio
from segstudio.core.check import check_images
from segstudio.core.project import Project
folder = sys.argv[1]
# a valid PNG, small on disk, 72 MB decoded (OpenCV's fast path)
ramp = np.broadcast_to(np.arange(6000, dtype=np.uint8)[None, :, None], (4000, 6000, 3))
os.makedirs(folder, exist_ok=True)
Image.fromarray(np.ascontiguousarray(ramp)).save(os.path.join(folder, "big.png"))
del ramp
p = Project.open(folder)
data = open(os.path.join(folder, "big.png"), "rb").read()
pages = int(open(f"/proc/{os.getpid()}/statm").read().split()[0])
resource.setrlimit(resource.RLIMIT_AS, (pages * os.sysconf("SC_PAGE_SIZE") + 40 * 2**20, resource.RLIM_INFINITY))
try:
    imageio.decode_image(os.path.join(folder, "big.png"), data=data)
    direct = "decoded"
except imageio.ImageDecodeError as e:
    direct = [type(e).__name__, imageio.is_transient(e)]
rep = check_images(p, workers=1)
errors = [r.error for r in p.store.images()]
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps({"direct": direct, "unreadable": [x for x, _ in rep.unreadable],
                  "not_checked": [x for x, _ in rep.not_checked], "errors": errors}))
p.close()
"""


def test_opencv_running_out_of_memory_is_not_a_corrupt_file(tmp_path):
    """Real OpenCV, really short of memory (an address-space cap): it raises cv2.error
    'Insufficient memory', not MemoryError; that must read as not enough memory, never 'corrupt'."""
    out = subprocess.run([sys.executable, "-c", _REAL_OOM, str(tmp_path / "imgs")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["direct"] == ["NotEnoughMemory", True]
    assert got["unreadable"] == [] and got["not_checked"] == ["big.png"] and got["errors"] == [None]
