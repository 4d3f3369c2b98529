"""An export reads project images that may have been replaced since they were registered: a
FIFO (reading it waits for a writer that never comes) or a link to /dev/zero (endless zeros).

Each such image is left out, named in the report with what it is; the other images are
exported; the export finishes at once. The export runs in a child process with a time limit
and a file-size limit, so a regression fails the test instead of hanging it or filling the disk.
"""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="FIFOs and /dev/zero are POSIX")

CHILD = r"""
import json, os, sys
import numpy as np
from pathlib import Path
from segstudio.core.region import Region
from segstudio.io.registry import run_export
from tests.io.hostile import make_project

root, fmt = Path(sys.argv[1]), sys.argv[2]
if sys.argv[3:] == ["late"]:  # the file becomes a FIFO after the bridge checked it
    import segstudio.io.datumaro_bridge as bridge
    bridge.is_regular = lambda *a: True
p = make_project(root, names=("a.png", "fifo.png", "zero.png"))
cls = p.store.add_class("thing")
for rec in p.store.images():
    p.image_size(rec)  # sizes stored, as after the image was shown: the export reads no header first
    m = np.ones((8, 8), bool)
    r = Region(0, cls.id, m, 4, 4)
    r.id = p.store.reserve_region_ids(1)[0]
    p.store.save_regions(rec.id, [r], status="done")
os.remove(p.folder / "fifo.png")
os.mkfifo(p.folder / "fifo.png")
os.remove(p.folder / "zero.png")
os.symlink("/dev/zero", p.folder / "zero.png")
rep = run_export(fmt, p, root / "out")
files = sorted(str(f.relative_to(root / "out")) for f in (root / "out").rglob("*") if f.is_file())
print(json.dumps({"left_out": rep.left_out, "images": rep.images, "files": files}))
"""

LIMIT = 64 << 20  # bytes any one file of the export may reach


def _limits():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _run(tmp_path, fmt, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    try:
        return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), fmt, *extra], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, preexec_fn=_limits)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{fmt} export hung on a FIFO or /dev/zero image")


def _export(tmp_path, fmt):
    done = _run(tmp_path, fmt)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check(got):
    left = dict((path, why) for path, why in got["left_out"])
    assert set(left) == {"fifo.png", "zero.png"}, got
    assert "FIFO" in left["fifo.png"] and "regular file" in left["fifo.png"]
    assert "device" in left["zero.png"] and "regular file" in left["zero.png"]
    assert got["images"] == 1  # a.png, whole
    names = [Path(f).name for f in got["files"]]
    assert "a.png" in names or "a.jpg" in names
    assert not any(Path(f).stem in ("fifo", "zero") for f in got["files"]), got["files"]


@pytest.mark.parametrize("fmt", ["yolo", "labelme"])
def test_native_export_leaves_out_a_fifo_and_a_device_naming_them(tmp_path, fmt):
    _check(_export(tmp_path, fmt))


@pytest.mark.parametrize("fmt", ["camvid", "cvat"])
def test_datumaro_export_leaves_out_a_fifo_and_a_device_naming_them(tmp_path, fmt):
    pytest.importorskip("datumaro")
    _check(_export(tmp_path, fmt))


def test_a_fifo_swapped_in_after_the_bridge_checked_it_fails_the_export_at_once(tmp_path):
    pytest.importorskip("datumaro")
    done = _run(tmp_path, "camvid", "late")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "FormatError" in last and "fifo.png" in last and "FIFO" in last, last
    assert not (tmp_path / "out").exists()
