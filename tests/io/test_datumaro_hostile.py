"""Hostile sources read through the datumaro bridge: every mask goes through segstudio's checked
decoder and the native importers' per-annotation rules, sizes are checked before a pixel is
made, names stay inside the dataset, and nothing but regular files is opened. Then a fuzz target
over generated CVAT XML, SA-1B JSON and datumaro JSON masks."""

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

dm = pytest.importorskip("datumaro")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, event, given, settings, strategies as st  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from segstudio.core import rle  # noqa: E402
from segstudio.core.region import Region  # noqa: E402
from segstudio.io.common import FormatError  # noqa: E402
from segstudio.io.registry import run_export, run_import  # noqa: E402
from tests.conftest import make_image  # noqa: E402
from tests.io.hostile import H, W, assert_inside, make_project, png_bomb, regions_of, status_of, traced_peak  # noqa: E402

PEAK_LIMIT = 32 << 20  # traced peak allowed for one hostile import on 64x48 images
_count = itertools.count()


# ----------------------------------------------------------------------------- makers
def cvat_xml(images) -> str:
    """CVAT for images 1.1 with one label, `thing`; images: (name, width, height, inner XML)."""
    body = "".join(f'<image id="{k}" name="{n}" width="{w}" height="{h}">{inner}</image>'
                   for k, (n, w, h, inner) in enumerate(images))
    return ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task><labels>'
            f'<label><name>thing</name><attributes/></label></labels></task></meta>{body}</annotations>')


def cvat_mask(rle_text, left, top, width, height) -> str:
    return (f'<mask label="thing" source="manual" occluded="0" rle="{rle_text}" left="{left}" top="{top}" '
            f'width="{width}" height="{height}" z_order="0"/>')


def cvat_rle(m: np.ndarray) -> str:
    """CVAT's mask RLE: runs along the rows of the box, starting with background."""
    flat = m.astype(bool).ravel()
    cuts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.r_[0, cuts, flat.size]).tolist()
    return ", ".join(str(v) for v in ([0] + runs if flat[0] else runs))


GOOD = np.zeros((H, W), bool)
GOOD[10:30, 10:30] = True
GOOD_BOX = (10, 10, 20, 20)  # x, y, w, h


def good_cvat_mask() -> str:
    x, y, w, h = GOOD_BOX
    return cvat_mask(cvat_rle(GOOD[y:y + h, x:x + w]), x, y, w, h)


def sa1b_doc(segs, name="a.png", width=W, height=H) -> dict:
    return {"image": {"image_id": 1, "file_name": name, "width": width, "height": height},
            "annotations": [{"id": k + 1, "segmentation": s, "bbox": [0, 0, 1, 1]} for k, s in enumerate(segs)]}


def coco_rle(m: np.ndarray) -> dict:
    return rle.to_coco(m)


def datumaro_doc(items) -> dict:
    """datumaro's own JSON; items: (id, image path, [rle dicts])."""
    return {"dm_format_version": "1.0", "media_type": 2, "infos": {},
            "categories": {"label": {"labels": [{"name": "thing", "parent": "", "attributes": []}],
                                     "label_groups": [], "attributes": []}},
            "items": [{"id": i, "image": {"path": path, "size": [H, W]},
                       "annotations": [{"id": k + 1, "type": "mask", "attributes": {}, "group": 0, "label_id": 0,
                                        "rle": r, "z_order": 0} for k, r in enumerate(rles)]}
                      for i, path, rles in items]}


def write_datumaro(root: Path, doc) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "default.json").write_text(json.dumps(doc))
    return root


@pytest.fixture
def proj(tmp_path):
    return make_project(tmp_path, db=tmp_path / "p.db")


def _mask_of(p, name):
    out = np.zeros((H, W), bool)
    for r in regions_of(p, name):
        out[r.y:r.y + r.mask.shape[0], r.x:r.x + r.mask.shape[1]] |= r.mask
    return out


# ----------------------------------------------------------------------------- CVAT masks
def test_cvat_rle_summing_short_is_refused_not_read_from_uninitialised_memory(tmp_path):
    """rle="5" on a 300x300 mask imported 8 regions of uninitialised memory and marked the
    image done: now the mask is refused by name and the image keeps its status."""
    make_image(tmp_path / "imgs" / "big.png", 300, 300)
    p = make_project(tmp_path, names=("a.png",), db=tmp_path / "p.db")
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(cvat_xml([("big.png", 300, 300, cvat_mask("5", 0, 0, 300, 300))]))
    rep = run_import("cvat", p, src)
    assert regions_of(p, "big.png") == []
    assert status_of(p, "big.png") != "done"
    assert rep.rejected == 1 and "sum to 5" in rep.errors[0][1] and "90000" in rep.errors[0][1]


@pytest.mark.parametrize("rle_text,box,why", [
    ("100, 400", (10, 10, 20, 20), "sum to 500"),  # long
    ("0", (10, 10, 20, 20), "sum to 0"),
    ("200, 200", (50, 10, 20, 20), "outside"),  # the box reaches past the right edge
    ("200, 200", (10, 40, 20, 20), "outside"),
    ("0, 0", (10, 10, 0, 0), "empty"),
    ("400", (-5, 10, 20, 20), "outside"),
])
def test_cvat_bad_masks_are_refused_beside_a_good_one(proj, tmp_path, rle_text, box, why):
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(cvat_xml([("a.png", W, H, good_cvat_mask() + cvat_mask(rle_text, *box))]))
    rep = run_import("cvat", proj, src)
    assert rep.rejected == 1 and why in rep.errors[0][1], rep.errors
    assert np.array_equal(_mask_of(proj, "a.png"), GOOD)  # the good mask, exactly
    assert status_of(proj, "a.png") == "in_progress"


@pytest.mark.parametrize("given", ["folder", "xml"])
def test_cvat_masks_decode_exactly_as_cvat_wrote_them(proj, tmp_path, given):
    """The checked decoder reads CVAT's row-wise runs as datumaro does: an exported project
    comes back pixel for pixel, and an irregular mask written by hand too."""
    rng = np.random.default_rng(3)
    m = rng.random((17, 23)) < 0.4
    m[0, 0] = True
    m[-1, -1] = True
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(cvat_xml([("a.png", W, H, cvat_mask(cvat_rle(m), 5, 7, 23, 17))]))
    (src / "images").symlink_to(proj.folder, target_is_directory=True)  # as CVAT exports: images/ beside
    rep = run_import("cvat", proj, src if given == "folder" else src / "annotations.xml")
    assert not rep.errors
    want = np.zeros((H, W), bool)
    want[7:24, 5:28] = m
    assert np.array_equal(_mask_of(proj, "a.png"), want)


def test_cvat_mask_declaring_50000_square_is_refused_at_once_in_bounded_memory(proj, tmp_path):
    """A mask box of 50000x50000 on a 64x48 image: refused before a pixel is made (it took
    11.5 s and 2.5 GB, then failed)."""
    src = tmp_path / "cvat"
    src.mkdir()
    giant = cvat_mask("5", 0, 0, 20000, 20000)
    (src / "annotations.xml").write_text(cvat_xml([("a.png", W, H, good_cvat_mask() + giant)]))
    t = time.monotonic()
    with traced_peak() as mem:
        rep = run_import("cvat", proj, src)
    assert mem["peak"] < PEAK_LIMIT, mem
    assert time.monotonic() - t < 5
    assert rep.rejected == 1 and "20000x20000" in rep.errors[0][1]
    assert np.array_equal(_mask_of(proj, "a.png"), GOOD) and status_of(proj, "a.png") == "in_progress"


# ----------------------------------------------------------------------------- SA-1B and datumaro JSON
SHORT_AND_TRUNCATED = {
    "list summing short": {"size": [H, W], "counts": [5]},
    "list summing long": {"size": [H, W], "counts": [H * W, 5]},
    "string summing short": {"size": [H, W], "counts": "5"},
    "truncated string": {"size": [H, W], "counts": coco_rle(GOOD)["counts"][:-1] + "o"},
    "cut string": {"size": [H, W], "counts": coco_rle(GOOD)["counts"][:4]},
    "negative count": {"size": [H, W], "counts": [-5, H * W + 5]},
    "size of another image": {"size": [W, H], "counts": coco_rle(GOOD.T.copy())["counts"]},
    "huge size": {"size": [50000, 50000], "counts": "5"},
}


@pytest.mark.parametrize("case", list(SHORT_AND_TRUNCATED))
def test_sa1b_bad_rle_is_refused_beside_a_good_one(proj, tmp_path, case):
    src = tmp_path / "sa1b"
    src.mkdir()
    (src / "a.json").write_text(json.dumps(sa1b_doc([coco_rle(GOOD), SHORT_AND_TRUNCATED[case]])))
    (src / "b.json").write_text(json.dumps(sa1b_doc([coco_rle(GOOD)], name="b.png")))
    with traced_peak() as mem:
        rep = run_import("segment_anything", proj, src)
    assert mem["peak"] < PEAK_LIMIT
    assert rep.rejected == 1 and rep.errors[0][0] == "a.json" and "annotation 1" in rep.errors[0][1], rep.errors
    assert np.array_equal(_mask_of(proj, "a.png"), GOOD) and status_of(proj, "a.png") == "in_progress"
    assert np.array_equal(_mask_of(proj, "b.png"), GOOD) and status_of(proj, "b.png") == "done"


def test_sa1b_only_bad_rle_leaves_the_image_as_it_was(proj, tmp_path):
    src = tmp_path / "sa1b"
    src.mkdir()
    (src / "a.json").write_text(json.dumps(sa1b_doc([{"size": [H, W], "counts": "5"}])))
    rep = run_import("segment_anything", proj, src)
    assert rep.rejected == 1 and regions_of(proj, "a.png") == [] and status_of(proj, "a.png") == "new"


def test_sa1b_hostile_files_are_one_error_each(proj, tmp_path):
    src = tmp_path / "sa1b"
    src.mkdir()
    (src / "a.json").write_text('{"image": {"file_name": "a.png", "width": NaN}, "annotations": [')  # cut short
    (src / "b.json").write_text(json.dumps(sa1b_doc([coco_rle(GOOD)], name="b.png", width=float("nan"))))
    (src / "c.json").write_text(json.dumps(sa1b_doc([coco_rle(GOOD)], name="../../etc/c.png")))
    (src / "d.json").write_text("[" * 50000 + "]" * 50000)
    rep = run_import("segment_anything", proj, src)
    by_file = dict(rep.errors)
    assert set(by_file) == {"a.json", "b.json", "c.json", "d.json"}, rep.errors
    assert "outside the dataset folder" in by_file["c.json"]
    assert proj.store.region_count() == 0


@pytest.mark.parametrize("case", list(SHORT_AND_TRUNCATED))
def test_datumaro_json_bad_rle_is_refused_beside_a_good_one(proj, tmp_path, case):
    bad = dict(SHORT_AND_TRUNCATED[case])
    if not isinstance(bad["counts"], str):  # datumaro's reader takes strings only; lists fail the file
        bad["counts"] = "5"
    src = write_datumaro(tmp_path / "dm", datumaro_doc([("a", "a.png", [coco_rle(GOOD), bad]),
                                                         ("b", "b.png", [coco_rle(GOOD)])]))
    with traced_peak() as mem:
        rep = run_import("datumaro", proj, src)
    assert mem["peak"] < PEAK_LIMIT
    assert rep.rejected == 1 and "annotation 1" in rep.errors[0][1], rep.errors
    assert np.array_equal(_mask_of(proj, "a.png"), GOOD) and status_of(proj, "a.png") == "in_progress"
    assert np.array_equal(_mask_of(proj, "b.png"), GOOD) and status_of(proj, "b.png") == "done"


def test_datumaro_json_image_path_outside_the_dataset_is_refused(proj, tmp_path):
    src = write_datumaro(tmp_path / "dm", datumaro_doc([("a", "../../../../imgs/a.png", [coco_rle(GOOD)])]))
    try:
        rep = run_import("datumaro", proj, src)
    except FormatError as e:  # datumaro refused the whole file: one line, naming the path
        assert ".." in str(e)
    else:
        assert any("outside the dataset folder" in m for _, m in rep.errors), rep.errors
    assert proj.store.region_count() == 0


# ----------------------------------------------------------------------------- label PNGs
def _exported(tmp_path, fmt):
    p = make_project(tmp_path / "src", db=tmp_path / "src.db")
    c = p.store.add_class("cat")
    for rec in p.store.images():
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), c.id, np.ones((5, 6), bool), 3, 4)],
                             status="done")
    run_export(fmt, p, tmp_path / fmt)
    p.close()
    return tmp_path / fmt


@pytest.mark.parametrize("fmt,png", [("cityscapes", "gtFine/default/a_gtFine_instanceIds.png"),
                                     ("cityscapes", "gtFine/default/a_gtFine_labelIds.png"),
                                     ("camvid", "defaultannot/a.png")])
def test_giant_label_png_is_refused_from_its_header(tmp_path, fmt, png):
    """A 6000x6000 label PNG (a few KB) beside 64x48 images: refused from its header, never
    decoded (25000x25000 files were decoded to GBs before they were refused)."""
    src = _exported(tmp_path, fmt)
    (src / png).write_bytes(png_bomb(6000, 6000))
    p = make_project(tmp_path / "src", db=tmp_path / "dst.db")
    with traced_peak() as mem:
        try:
            rep = run_import(fmt, p, src)
            text = " ".join(m for _, m in rep.errors)
        except FormatError as e:
            text = str(e)
    assert mem["peak"] < PEAK_LIMIT, mem
    assert "6000x6000" in text and "not decoded" in text and png.rsplit("/", 1)[-1] in text, text
    assert status_of(p, "a.png") != "done" and regions_of(p, "a.png") == []
    if fmt == "cityscapes":  # read by segstudio, file by file: the other images import
        assert all(status_of(p, n) == "done" and len(regions_of(p, n)) == 1 for n in ("b.png", "c.png"))


# ----------------------------------------------------------------------------- names and special files
def _unblock_later(fifo: Path, used: list, done: threading.Event, after=5.0):
    """Open the FIFO's other end after a while unless `done` is set first, so a reader stuck on
    it returns (and the test fails instead of hanging)."""
    def run():
        if done.wait(after):
            return
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # nobody is reading it: nothing was stuck
        used.append(True)
        os.close(fd)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


@needs_fifo
@pytest.mark.parametrize("declared", [True, False])
def test_cvat_image_that_is_a_fifo_is_refused_without_hanging(proj, tmp_path, declared):
    src = tmp_path / "cvat"
    (src / "images").mkdir(parents=True)
    fifo = src / "images" / "a.png"
    os.mkfifo(fifo)
    size = (W, H) if declared else ("", "")
    xml = cvat_xml([("a.png", *size, good_cvat_mask())])
    if not declared:
        xml = xml.replace(' width="" height=""', "")
    (src / "annotations.xml").write_text(xml)
    stuck: list = []
    done = threading.Event()
    t = _unblock_later(fifo, stuck, done)
    with pytest.raises(FormatError, match="a.png is a FIFO"):
        run_import("cvat", proj, src)
    done.set()
    t.join()
    assert not stuck
    assert proj.store.region_count() == 0


@needs_fifo
def test_fifo_among_cityscapes_label_files_is_refused_without_hanging(tmp_path):
    src = _exported(tmp_path, "cityscapes")
    fifo = src / "gtFine" / "default" / "a_gtFine_instanceIds.png"
    fifo.unlink()
    os.mkfifo(fifo)
    p = make_project(tmp_path / "src", db=tmp_path / "dst.db")
    stuck: list = []
    done = threading.Event()
    t = _unblock_later(fifo, stuck, done)
    with pytest.raises(FormatError, match="a_gtFine_instanceIds.png is a FIFO"):
        run_import("cityscapes", p, src)
    done.set()
    t.join()
    assert not stuck and p.store.region_count() == 0


@pytest.mark.parametrize("name", ["../../etc/hostname", "/etc/hostname", "../imgs/a.png"])
def test_cvat_image_names_outside_the_dataset_are_refused(proj, tmp_path, name):
    src = tmp_path / "cvat"
    (src / "images").mkdir(parents=True)
    (src / "annotations.xml").write_text(cvat_xml([(name, W, H, good_cvat_mask())]))
    try:
        rep = run_import("cvat", proj, src)
    except FormatError as e:
        assert name.lstrip("./") in str(e) or "must not" in str(e), str(e)
    else:
        assert any("outside the dataset folder" in m for _, m in rep.errors), rep.errors
    assert proj.store.region_count() == 0


# ----------------------------------------------------------------------------- peak memory, fresh process
PROBE = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.io.hostile import make_project
from tests.io.test_datumaro_hostile import cvat_xml, cvat_mask, good_cvat_mask
from segstudio.io.registry import run_import
import datumaro  # loaded before the baseline: its own size is not the import's
root = Path(sys.argv[2])
p = make_project(root)
src = root / "cvat"; src.mkdir()
giant = cvat_mask("5", 0, 0, 50000, 50000)
(src / "annotations.xml").write_text(cvat_xml([("a.png", 64, 48, good_cvat_mask() + giant)]))
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
base = rss()
t = time.time()
try:
    rep = run_import("cvat", p, src)
    out = rep.summary()
except MemoryError:
    out = "MemoryError"
print(json.dumps({"base_mb": base, "peak_mb": rss(), "seconds": round(time.time() - t, 2), "report": out}))
"""


def test_peak_rss_of_the_50000_square_cvat_mask_in_a_fresh_process(tmp_path):
    """The worst case of the issue, in a process capped at 8 GiB of address space: the peak
    resident size stays near the interpreter's own (it was 2.5 GB)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cap = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        exec(sys.stdin.read())
    """)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    r = subprocess.run([sys.executable, "-c", cap, repo, str(tmp_path)], input=PROBE, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    print(figures)
    assert "1 annotation rejected" in figures["report"], figures
    assert figures["peak_mb"] - figures["base_mb"] < 100 and figures["seconds"] < 5, figures


# ----------------------------------------------------------------------------- fuzz
FUZZ = settings(max_examples=40, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
hostile_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                           st.sampled_from([0, -1, 1, 2**31, 2**32, 2**32 + 5, 50000, H * W, H * W + 1]))


def _valid_runs(total: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    n = min(int(rng.integers(0, 9)) * 2, (total - 1) // 2 * 2)
    cuts = np.sort(rng.choice(np.arange(1, total), size=n, replace=False))
    return np.diff(np.r_[0, cuts, total]).tolist()


@st.composite
def run_list(draw, total):
    """Counts for `total` pixels: valid, then sometimes cut, extended or with a value changed."""
    runs = _valid_runs(total, draw(st.integers(0, 50))) if total > 1 else [max(total, 0)]
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["cut", "add", "set", "zero"]))
        k = draw(st.integers(0, max(0, len(runs) - 1)))
        if op == "cut":
            runs = runs[:k]
        elif op == "add":
            runs.insert(k, draw(st.one_of(st.integers(0, 50), hostile_number)))
        elif op == "set" and runs:
            runs[k] = draw(st.one_of(st.integers(-3, total + 3), hostile_number))
        elif runs:
            runs[k] = 0
    return runs


def _reference_runs(runs, total):
    """What a correct reader accepts: whole, non-negative numbers covering `total` exactly."""
    def whole(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return (isinstance(v, int) or (math.isfinite(v) and v.is_integer())) and 0 <= v < 2**32
    if not all(whole(v) for v in runs):
        return None
    runs = [int(v) for v in runs]
    return runs if sum(runs) == total else None


def _decode_runs(runs, rows, cols, order):
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return flat.reshape(rows, cols) if order == "C" else flat.reshape(cols, rows).T


def _fresh(tmp_root):
    d = tmp_root / f"f{next(_count)}"
    d.mkdir()
    return make_project(d), d


def _check(p, bad_expected, rep, raised):
    """The properties: no region but the reference masks, every region inside its image,
    bad annotations refused by message, the image not done when one was refused."""
    assert_inside(p)
    got = _mask_of(p, "a.png")
    event(f"raised: {raised}, bad valid: {bad_expected is not None}")
    if raised:
        assert p.store.region_count() == 0
        return
    if bad_expected is not None:
        want = GOOD | bad_expected
        assert np.array_equal(got, want)
    else:
        assert not (got & ~GOOD).any(), "a region from nowhere"
        assert rep.rejected >= 1 and any("annotation" in m or "refused" in m for _, m in rep.errors), rep.errors
        assert status_of(p, "a.png") != "done"
    assert np.array_equal(_mask_of(p, "b.png"), GOOD) and status_of(p, "b.png") == "done"


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dmfuzz")
    p = make_project(root)  # warm datumaro's plugins up outside the traced imports
    src = root / "warm"
    src.mkdir()
    (src / "annotations.xml").write_text(cvat_xml([("a.png", W, H, good_cvat_mask())]))
    run_import("cvat", p, src)
    p.close()
    return root


box_number = st.one_of(st.integers(-3, 70), st.sampled_from([50000, 2**31, -2**31, 10**12]))


@st.composite
def inside_box(draw):
    x, y = draw(st.integers(0, W - 1)), draw(st.integers(0, H - 1))
    return x, y, draw(st.integers(1, W - x)), draw(st.integers(1, H - y))


any_box = st.one_of(inside_box(), inside_box(), st.tuples(box_number, box_number, box_number, box_number))


@pytest.mark.slow
@FUZZ
@given(box=any_box, data=st.data(),
       token_noise=st.sampled_from([None] * 6 + ["nan", "5.0", "-1", "1e9", "", " ", "99999999999999999999"]))
def test_fuzz_cvat_masks(fuzz_root, box, data, token_noise):
    x, y, w, h = box
    total = w * h if w > 0 and h > 0 and w * h < 10**7 else 400
    runs = data.draw(run_list(total))
    tokens = [str(v) for v in runs]
    if token_noise is not None and tokens:
        tokens[data.draw(st.integers(0, len(tokens) - 1))] = token_noise
    p, d = _fresh(fuzz_root)
    src = d / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(cvat_xml([
        ("a.png", W, H, good_cvat_mask() + cvat_mask(", ".join(tokens), x, y, w, h)),
        ("b.png", W, H, good_cvat_mask())]))
    ok = _reference_runs(runs, w * h) if token_noise is None else None
    inside = 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= W and y + h <= H
    expected = None
    if ok is not None and inside:
        expected = np.zeros((H, W), bool)
        expected[y:y + h, x:x + w] = _decode_runs(ok, h, w, "C")
    raised = False
    with traced_peak() as mem:
        try:
            rep = run_import("cvat", p, src)
        except FormatError:
            raised, rep = True, None  # datumaro itself cannot parse a number: the file, one line
    assert mem["peak"] < PEAK_LIMIT, mem
    _check(p, expected, rep, raised)
    p.close()


def _rle_value(draw, total):
    kind = draw(st.sampled_from(["list", "string", "mutated", "junk"]))
    if kind == "list":
        return draw(run_list(total))
    if kind == "string":
        runs = _valid_runs(total, draw(st.integers(0, 50)))
        return mask_utils.frPyObjects({"size": [H, W], "counts": runs}, H, W)["counts"].decode()
    if kind == "mutated":
        s = list(coco_rle(GOOD ^ (np.random.default_rng(draw(st.integers(0, 9))).random((H, W)) < 0.2))["counts"])
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.integers(0, max(0, len(s) - 1)))
            op = draw(st.sampled_from(["cut", "add", "set"]))
            if op == "cut":
                s = s[:k]
            elif op == "add":
                s.insert(k, chr(draw(st.integers(32, 130))))
            elif s:
                s[k] = chr(draw(st.integers(32, 130)))
        return "".join(s)
    return draw(st.one_of(hostile_number, st.text(max_size=5), st.none(), st.lists(hostile_number, max_size=3)))


def _reference_coco(seg):
    """The mask a correct reader makes of `seg` on the 64x48 image, or None if it must refuse."""
    if not isinstance(seg, dict) or seg.get("size") != [H, W] or any(isinstance(v, bool) for v in seg["size"]):
        return None
    c = seg.get("counts")
    if isinstance(c, list):
        ok = _reference_runs(c, H * W)
        return None if ok is None else _decode_runs(ok, H, W, "F")
    if isinstance(c, str):
        try:  # the checked decoder, itself fuzzed against pycocotools (test_fuzz_imports.py)
            runs = rle.string_to_counts(c).tolist()
        except ValueError:
            return None
        ok = _reference_runs(runs, H * W)
        return None if ok is None else _decode_runs(ok, H, W, "F")
    return None


size_value = st.tuples(st.integers(0, 4), st.lists(hostile_number, max_size=3)).map(
    lambda t: [[H, W], [H, W], [H, W], [W, H], t[1]][t[0]])


@pytest.mark.slow
@FUZZ
@given(data=st.data(), size=size_value,
       cut=st.tuples(st.integers(0, 5), st.integers(0, 200)).map(lambda t: t[1] if t[0] == 0 else None))
def test_fuzz_sa1b_masks(fuzz_root, data, size, cut):
    seg = {"size": size, "counts": _rle_value(data.draw, H * W)}
    p, d = _fresh(fuzz_root)
    src = d / "sa1b"
    src.mkdir()
    text = json.dumps(sa1b_doc([coco_rle(GOOD), seg]), allow_nan=True)
    cut_short = cut is not None and cut < len(text)
    (src / "a.json").write_text(text[:cut] if cut_short else text)  # a file cut short: that file's error
    (src / "b.json").write_text(json.dumps(sa1b_doc([coco_rle(GOOD)], name="b.png")))
    with traced_peak() as mem:
        rep = run_import("segment_anything", p, src)
    assert mem["peak"] < PEAK_LIMIT, mem
    if cut_short:
        event("file cut short")
        assert any(f == "a.json" for f, _ in rep.errors) and regions_of(p, "a.png") == []
        return
    _check(p, _reference_coco(seg), rep, False)
    p.close()


@pytest.mark.slow
@FUZZ
@given(data=st.data(), size=size_value)
def test_fuzz_datumaro_json_masks(fuzz_root, data, size):
    seg = {"size": size, "counts": _rle_value(data.draw, H * W)}
    p, d = _fresh(fuzz_root)
    src = write_datumaro(d / "dm", datumaro_doc([("a", "a.png", [coco_rle(GOOD), seg]),
                                                 ("b", "b.png", [coco_rle(GOOD)])]))
    raised = False
    with traced_peak() as mem:
        try:
            rep = run_import("datumaro", p, src)
        except FormatError:  # datumaro's reader takes string counts only: anything else fails the file
            raised, rep = True, None
    assert mem["peak"] < PEAK_LIMIT, mem
    if raised:
        assert not isinstance(seg["counts"], str) or not seg["counts"].isascii() or _reference_coco(seg) is None
    _check(p, _reference_coco(seg), rep, raised)
    p.close()


def test_the_decode_guard_holds_only_inside_the_import_thread():
    """datumaro's decoder is checked only inside guarded_decoding in the importing thread:
    another thread, and the same thread afterwards, decode as datumaro always did."""
    from datumaro.util import image as dm_image

    from segstudio.io import bridge_source
    from tests.io.hostile import png_bytes
    data = png_bytes(np.zeros((100, 120), np.uint8))
    other: list = []
    with bridge_source.guarded_decoding(bridge_source.Limit(side=64, area=64 * 48)):
        with pytest.raises(bridge_source.ImageRefused, match="120x100"):
            dm_image.decode_image(data)
        backend, channel = dm_image.IMAGE_BACKEND.get(), dm_image.IMAGE_COLOR_CHANNEL.get()

        def decode_elsewhere():  # a new thread starts with datumaro's context variables unset
            dm_image.IMAGE_BACKEND.set(backend)
            dm_image.IMAGE_COLOR_CHANNEL.set(channel)
            other.append(dm_image.decode_image(data).shape)
        t = threading.Thread(target=decode_elsewhere)
        t.start()
        t.join()
    assert other == [(100, 120)]
    assert dm_image.decode_image(data).shape == (100, 120)


@pytest.mark.parametrize("fmt", ["camvid", "cityscapes"])
def test_label_png_formats_import_in_a_worker_thread(tmp_path, fmt):
    """The window imports in a worker thread, where datumaro's image backend (a context
    variable set only in the thread that imported datumaro) was unset: every label PNG failed."""
    src = _exported(tmp_path, fmt)
    p = make_project(tmp_path / "src", db=tmp_path / "dst.db")
    out: list = []

    def work():
        try:
            out.append(run_import(fmt, p, src))
        except Exception as e:  # noqa: BLE001  (handed to the test thread)
            out.append(e)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not isinstance(out[0], Exception), out[0]
    assert out[0].regions == 3 and not out[0].errors
