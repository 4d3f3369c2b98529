"""The export marker is data from disk: hostile. Exports delete only plain files the marker lists,
inside the export folder, never through a link; every rule holds through links in `--out`;
killed exports are recovered by the next one; a full disk leaves the previous export whole."""

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segstudio
from segstudio.core.project import EXPORT_MARKER, Project
from segstudio.io import coco
from segstudio.io import export_target as et
from segstudio.io.export_target import ExportTargetError, atomic_dir
from segstudio.io.registry import run_export
from tests.io.helpers import annotated_project

HEAD = ("written by segstudio; image scans skip this folder. A later export to this folder replaces only "
        "the files listed below.")
REPO = Path(segstudio.__file__).resolve().parents[1]  # the copy under test (a base checkout too)


def tree(folder):
    """Every entry under folder, links not followed: files with bytes, links with targets, folders."""
    out = {}
    folder = str(folder)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            st_ = os.lstat(p)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st_.st_mode):
                if name.endswith(("-wal", "-shm")):  # SQLite's side files change on any read
                    continue
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
            else:
                out[rel] = ("special", stat.S_IFMT(st_.st_mode))
    return out


def leftovers(out):
    return sorted(p.name for p in Path(out).parent.iterdir() if p.name.startswith(f".{Path(out).name}."))


def write_marker(folder, lines, head=HEAD):
    data = head.encode() + b"\n" + b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines)
    (folder / EXPORT_MARKER).write_bytes(data)


@pytest.fixture
def proj(tmp_path):
    p = annotated_project(tmp_path / "images")
    (tmp_path / "images" / "IMG.jpg").write_bytes(b"\xff\xd8 a user's photo")
    (tmp_path / "victim.txt").write_text("the user's file")
    yield p
    p.close()


# ----------------------------------------------------------------------------- hostile lines
def _link_into_images(out, rel):
    p = out / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(out.parent / "images", target_is_directory=True)


HOSTILE = {
    # id: (lines listed besides the export's own, how the old export folder is prepared, named in the refusal)
    "parent-file": (["../victim.txt"], None, "../victim.txt"),
    "image": (["../images/IMG.jpg"], None, "../images/IMG.jpg"),
    "store": (["../images/.segstudio/project.db"], None, "project.db"),
    "absolute": ([None], None, "absolute"),  # None: the victim's absolute path
    "dot-through-link": (["imgs", "./imgs/IMG.jpg"], lambda out: _link_into_images(out, "imgs"), "./imgs/IMG.jpg"),
    "double-slash-link": (["sub/lnk", "sub//lnk/IMG.jpg"], lambda out: _link_into_images(out, "sub/lnk"),
                          "sub//lnk/IMG.jpg"),
    "plain-through-link": (["sub/lnk", "sub/lnk/IMG.jpg"], lambda out: _link_into_images(out, "sub/lnk"),
                           "sub/lnk/IMG.jpg"),
    "listed-file-link": (["v"], lambda out: (out / "v").symlink_to(out.parent / "victim.txt"), "'v' is a link"),
    "nul": (["a\0b"], None, "NUL"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_marker_is_refused_named_and_nothing_is_deleted(proj, tmp_path, case):
    lines, prepare, named = HOSTILE[case]
    out = tmp_path / "out"
    run_export("labelmap", proj, out)
    own = (out / EXPORT_MARKER).read_text().splitlines()[1:]
    lines = [str(tmp_path / "victim.txt") if ln is None else ln for ln in lines]
    if prepare:
        prepare(out)
    write_marker(out, own + lines)
    before = tree(tmp_path)
    with pytest.raises(ExportTargetError) as e:
        run_export("labelmap", proj, out)
    msg = str(e.value)
    assert named in msg and "\n" not in msg and "\0" not in msg
    assert tree(tmp_path) == before  # nothing inside or outside the export was touched
    assert leftovers(out) == []


def test_a_hand_made_one_line_marker_licenses_nothing(proj, tmp_path):
    docs = tmp_path / "Documents"
    (docs / "data").mkdir(parents=True)
    (docs / "thesis.docx").write_bytes(b"years of work")
    (docs / "data" / "raw.csv").write_text("1,2,3")
    (docs / EXPORT_MARKER).write_text("written by segstudio\n")
    before = tree(docs)
    with pytest.raises(ExportTargetError, match=r"lists no files.*thesis\.docx") as e:
        run_export("labelmap", proj, docs)
    assert "data/raw.csv" in str(e.value)
    assert tree(docs) == before and leftovers(docs) == []


def test_a_marker_over_the_size_limit_is_refused(proj, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_export("yolo", proj, out)
    monkeypatch.setattr("segstudio.io.export_marker.MARKER_LIMIT", 100)
    with pytest.raises(ExportTargetError, match="marker .* is over"):
        run_export("yolo", proj, out)


def test_a_non_utf8_file_name_round_trips_through_the_marker(proj, tmp_path):
    if sys.platform == "darwin" or os.name == "nt":
        pytest.skip("file names there are Unicode")
    out = tmp_path / "out"
    with atomic_dir(out, proj) as tmp:
        (tmp / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"x")
    with atomic_dir(out, proj) as tmp:  # replaces it: the marker listed that name byte for byte
        (tmp / "b.txt").write_bytes(b"y")
    assert sorted(os.listdir(out)) == [EXPORT_MARKER, "b.txt"]


# ----------------------------------------------------------------------------- fuzz
NASTY = ["../victim.txt", "../../images/IMG.jpg", "../../images/.segstudio/project.db", "./imgs/IMG.jpg",
         "imgs", "imgs/IMG.jpg", "sub//lnk/IMG.jpg", "sub/lnk/IMG.jpg", "sub/lnk", "vlink", "a.txt", "sub/b.txt",
         "sub/c.png", "pipe", "..", ".", "/", "sub/../../victim.txt", "a.txt/", "\\..\\victim.txt", "C:/victim.txt",
         "sub/./b.txt", "#a.txt", " a.txt", "a.txt\r", EXPORT_MARKER, f"sub/{EXPORT_MARKER}"]
line_st = st.one_of(
    st.sampled_from(NASTY).map(str.encode),
    st.sampled_from(["VICTIM"]).map(str.encode),  # replaced by the victim's absolute path
    st.text(st.sampled_from("ab./\\\0\r\u2028 ï"), max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),  # not UTF-8
    st.integers(3000, 70_000).map(lambda n: b"a/" * (n // 2)),  # huge lines
)
ENTRIES = ["a.txt", "sub/b.txt", "sub/c.png", "imgs", "sub/lnk", "vlink", "pipe", "deep/x/y.txt"]


def _build(ex, entries):
    (ex / "victim.txt").write_text("victim")
    out = ex / "out"
    out.mkdir()
    for e in entries:
        p = out / e
        p.parent.mkdir(parents=True, exist_ok=True)
        if e in ("imgs", "sub/lnk"):
            p.symlink_to(ex.parent / "images", target_is_directory=True)
        elif e == "vlink":
            p.symlink_to(ex / "victim.txt")
        elif e == "pipe":
            os.mkfifo(p)
        else:
            p.write_text(e)
    return out


def _outside(tmp_path, ex, inside):
    """The project's folder and this example's folder, less the folders under test (`inside`)."""
    t = {("images", k): v for k, v in tree(tmp_path / "images").items()}
    t.update({(ex.name, k): v for k, v in tree(ex).items() if Path(k).parts[0] not in inside})
    return t


@pytest.fixture
def fuzz_proj(tmp_path, monkeypatch):
    monkeypatch.setattr(et, "_fsync_path", lambda *a, **k: None)  # flushing is not what is tested here
    images = tmp_path / "images"
    images.mkdir()
    (images / "IMG.jpg").write_bytes(b"photo")
    p = Project.open(images, scan=False)
    yield p
    p.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.sampled_from(ENTRIES), unique=True, max_size=6),
       head=st.sampled_from([HEAD, "written by segstudio", "written by segstudio" * 2, "", "a user's notes"]),
       lines=st.lists(line_st, max_size=12),
       data=st.data())
def test_fuzz_the_marker_never_reaches_outside_nor_deletes_what_it_does_not_list(fuzz_proj, tmp_path, entries,
                                                                                  head, lines, data):
    if not hasattr(os, "mkfifo"):
        entries = [e for e in entries if e != "pipe"]
    ex = Path(os.path.realpath(tmp_path / f"ex{time.perf_counter_ns()}"))
    ex.mkdir()
    out = _build(ex, entries)
    lines = [str(ex / "victim.txt").encode() if ln == b"VICTIM" else ln for ln in lines]
    if data.draw(st.booleans()):  # often list what is there, so that replacing happens too
        lines += [e.encode() for e in entries]
    write_marker(out, lines, head)
    outside = _outside(tmp_path, ex, ["out"])
    before = tree(out)
    try:
        with atomic_dir(out, fuzz_proj) as tmp:
            (tmp / "new.txt").write_text("new")
        replaced = True
    except ExportTargetError as e:
        replaced = False
        assert "\n" not in str(e) and "\0" not in str(e) and len(str(e)) < 2000
    assert _outside(tmp_path, ex, ["out"]) == outside  # nothing outside the export was touched, no leftover
    if replaced:
        listed = {ln.decode("utf-8", "surrogateescape") for ln in lines}
        gone = [k for k, v in before.items() if v[0] != "dir" and k != EXPORT_MARKER]
        assert head.startswith("written by segstudio")
        assert all(before[k][0] == "file" and k in listed for k in gone), (gone, listed)
        assert sorted(os.listdir(out)) == sorted([EXPORT_MARKER, "new.txt"])
    else:
        assert tree(out) == before  # refused: the folder is exactly as it was


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.sampled_from(ENTRIES), unique=True, max_size=6),
       lines=st.lists(line_st, max_size=10), out_exists=st.booleans(), list_all=st.booleans())
def test_fuzz_a_leftover_with_a_hostile_marker_is_never_trusted(fuzz_proj, tmp_path, dead_pid, entries, lines,
                                                                 out_exists, list_all):
    """A folder named like an interrupted export's previous copy, with hostile content: recovery
    deletes only plain files its marker lists, inside it, and restores only a clean export."""
    if not hasattr(os, "mkfifo"):
        entries = [e for e in entries if e != "pipe"]
    ex = Path(os.path.realpath(tmp_path / f"ex{time.perf_counter_ns()}"))
    ex.mkdir()
    old = _build(ex, entries)
    lines = [str(ex / "victim.txt").encode() if ln == b"VICTIM" else ln for ln in lines]
    if list_all:
        lines += [e.encode() for e in entries]
    write_marker(old, lines)
    old = old.rename(ex / f".out.segstudio-old-{dead_pid}-deadbeef-00000000")
    out = ex / "out"
    if out_exists:
        with atomic_dir(out, fuzz_proj) as tmp:
            (tmp / "prev.txt").write_text("prev")
    outside = _outside(tmp_path, ex, [old.name, "out"])
    before = tree(old)
    try:
        with atomic_dir(out, fuzz_proj) as tmp:
            (tmp / "new.txt").write_text("new")
    except ExportTargetError:
        assert not out_exists  # the old copy was put back, and it is not a clean export? never: only clean ones
        raise
    assert _outside(tmp_path, ex, [old.name, "out"]) == outside
    assert sorted(os.listdir(out)) == [EXPORT_MARKER, "new.txt"]
    if old.exists():  # kept: whatever is left is exactly what it held
        left = tree(old)
        assert all(before.get(k) == v for k, v in left.items())
        gone = [k for k in before if k not in left and before[k][0] != "dir"]
    else:
        gone = [k for k in before if before[k][0] != "dir"]
    listed = {ln.decode("utf-8", "surrogateescape") for ln in lines} | {EXPORT_MARKER}
    assert all(before[k][0] == "file" and k in listed for k in gone), (gone, listed)


@pytest.fixture(scope="module")
def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- --out through a link
def _via(target: Path, how: str, tmp_path: Path) -> Path:
    """`target` reached through a link (`link`) or through a path whose parent is a link (`through`)."""
    if how == "link":
        link = tmp_path / ("L" + target.suffix)
        link.symlink_to(target, target_is_directory=target.is_dir())
        return link
    lp = tmp_path / "LP"
    lp.symlink_to(target.parent, target_is_directory=True)
    return lp / target.name


@pytest.mark.parametrize("how", ["link", "through"])
@pytest.mark.parametrize("rule", ["image folder", "inside images", "store", "users folder", "a file", "marker link",
                                  "coco users file", "coco image folder"])
def test_every_rule_holds_through_a_link(tmp_path, how, rule):
    imgs = tmp_path / "work" / "imgs"
    annotated_project(imgs).close()
    p = Project.open(imgs, tmp_path / "stores" / "p.db")
    try:
        docs = tmp_path / "Documents"
        (docs / "notes").mkdir(parents=True)
        (docs / "thesis.docx").write_bytes(b"years of work")
        (docs / "notes" / "a.txt").write_text("keep me")
        prev = tmp_path / "prev"
        run_export("labelmap", p, prev)
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / EXPORT_MARKER).write_text(HEAD + "\n")
        fmt, target, named = {
            "image folder": ("labelmap", imgs, "image folder"),
            "inside images": ("labelmap", imgs / "sub", "image folder"),
            "store": ("labelmap", tmp_path / "stores", "project store"),
            "users folder": ("yolo", docs, "not a segstudio export"),
            "a file": ("voc", docs / "thesis.docx", "is a file"),
            "marker link": ("labelmap", prev, "is a link"),
            "coco users file": ("coco", docs / "thesis.docx", "not written by segstudio"),
            "coco image folder": ("coco", imgs, "image folder"),
        }[rule]
        if rule == "marker link":
            (prev / EXPORT_MARKER).rename(tmp_path / "elsewhere" / "m")
            (prev / EXPORT_MARKER).symlink_to(tmp_path / "elsewhere" / "m")
        out = _via(target, how, tmp_path)
        before = tree(tmp_path)
        with pytest.raises(ExportTargetError, match=named):
            run_export(fmt, p, out)
        assert tree(tmp_path) == before
    finally:
        p.close()


@pytest.mark.parametrize("how", ["link", "through"])
def test_an_earlier_export_reached_through_a_link_is_replaced_and_the_link_kept(proj, tmp_path, how):
    prev = tmp_path / "exports" / "prev"
    run_export("yolo", proj, prev)
    out = _via(prev, how, tmp_path)
    proj.store.set_status([proj.store.images()[0].id], "skipped")
    run_export("yolo", proj, out, statuses=("done",))
    assert (tmp_path / "L").is_symlink() if how == "link" else (tmp_path / "LP").is_symlink()
    assert len(list((prev / "images").rglob("*.png"))) == 2
    assert leftovers(prev) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    coco_link = tmp_path / "c.json"
    coco.export_coco(proj, tmp_path / "real.json")
    coco_link.symlink_to(tmp_path / "real.json")
    coco.export_coco(proj, coco_link)  # a link to segstudio's own COCO file: the file it leads to is replaced
    assert coco_link.is_symlink()


def test_a_link_loop_is_refused(proj, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ExportTargetError, match="loop"):
        run_export("labelmap", proj, tmp_path / "a" / "out")


# ----------------------------------------------------------------------------- a file written during the swap
def test_a_file_written_into_out_just_before_the_swap_is_kept_and_named(proj, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_export("labelmap", proj, out)
    before = tree(out)
    real_rename, real_replace = os.rename, os.replace

    def sneak(fn):
        def inner(src, dst, *a, **k):
            if os.path.realpath(src) == str(out) and os.path.isdir(src) and not (Path(src) / "late.txt").exists():
                (Path(src) / "late.txt").write_text("written during the export")  # after the last check
            return fn(src, dst, *a, **k)
        return inner
    monkeypatch.setattr(os, "rename", sneak(real_rename))
    monkeypatch.setattr(os, "replace", sneak(real_replace))
    with pytest.raises(ExportTargetError, match="late.txt"):
        run_export("labelmap", proj, out)
    assert (out / "late.txt").read_text() == "written during the export"
    assert {k: v for k, v in tree(out).items() if k != "late.txt"} == before
    assert leftovers(out) == []


# ----------------------------------------------------------------------------- a full disk
def test_a_full_disk_leaves_the_previous_export_and_says_so(proj, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_export("yolo", proj, out)
    before = tree(out)
    import segstudio.io.common as common
    real = common.copy_bytes
    calls = []

    def copy_bytes(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)
    monkeypatch.setattr(common, "copy_bytes", copy_bytes)
    with pytest.raises(OSError) as e:
        run_export("yolo", proj, out)
    assert "disk is full" in str(e.value) and "previous export" in str(e.value) and "unchanged" in str(e.value)
    assert "images/" in str(e.value)  # names the file it was writing, inside the export
    assert tree(out) == before and leftovers(out) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_full_disk_during_a_datumaro_export_leaves_the_previous_export_and_says_so(proj, tmp_path,
                                                                                     monkeypatch, code):
    pytest.importorskip("datumaro")
    from datumaro.plugins.data_formats import camvid
    out = tmp_path / "out"
    run_export("camvid", proj, out)
    before = tree(out)
    real = camvid.save_image
    calls = []

    def save_image(path, *a, **k):  # datumaro's own write of a label PNG, the second one failing
        calls.append(path)
        if len(calls) == 2:
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(camvid, "save_image", save_image)
    with pytest.raises(OSError) as e:
        run_export("camvid", proj, out)
    assert len(calls) == 2
    if code == errno.ENOSPC:
        assert "disk is full" in str(e.value)
    assert "previous export" in str(e.value) and "unchanged" in str(e.value), str(e.value)
    assert tree(out) == before and leftovers(out) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount; skipped where not permitted)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not sys.platform.startswith("linux"):
        pytest.skip("tmpfs is Linux")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_really_full_disk_leaves_the_previous_export(tmp_path, small_disk):
    from tests.conftest import make_image
    imgs = tmp_path / "imgs"
    p = annotated_project(imgs)
    try:
        out = small_disk / "out"
        run_export("labelme", p, out)  # copies the images: small ones fit
        before = tree(out)
        for i in range(6):
            make_image(imgs / f"big{i}.png", 300, 300, seed=i)  # ~270 KB each, incompressible
        p.scan()
        with pytest.raises(OSError, match=r"disk is full \(writing .*\.png\).*unchanged"):
            run_export("labelme", p, out, statuses=None)
        assert tree(out) == before and leftovers(out) == []
    finally:
        p.close()


# ----------------------------------------------------------------------------- killed exports
CHILD = r"""
import os, signal, sys
import PIL.Image
from segstudio.core.project import Project
from segstudio.io.registry import run_export
folder, out, mode = sys.argv[1:4]
real_out = os.path.realpath(out)
state = {"swapped": False, "saves": 0}

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

def wrap(fn):
    def inner(src, dst, *a, **k):
        moving_out = os.path.realpath(src) == real_out
        r = fn(src, dst, *a, **k)
        if mode == "between" and moving_out:
            kill()  # the previous export is aside, the new one not yet in place
        if os.path.realpath(dst) == real_out:
            state["swapped"] = True
        return r
    return inner
os.rename, os.replace = wrap(os.rename), wrap(os.replace)
if mode == "deleting":
    real_unlink = os.unlink
    def unlink(*a, **k):
        if state["swapped"]:
            kill()
        return real_unlink(*a, **k)
    os.unlink = os.remove = unlink
if mode == "writing":
    real_save = PIL.Image.Image.save
    def save(*a, **k):
        state["saves"] += 1
        if state["saves"] == 2:
            kill()
        return real_save(*a, **k)
    PIL.Image.Image.save = save
if mode == "sealed":
    os.fsync = lambda fd: kill()
if mode == "recovering":  # killed while it deletes what an earlier killed export left
    real_unlink = os.unlink
    def unlink(*a, **k):
        state["saves"] += 1
        if state["saves"] == 2:
            kill()
        return real_unlink(*a, **k)
    os.unlink = os.remove = unlink
p = Project.open(folder)
if mode == "loop":
    print("ready", flush=True)
    while True:
        run_export("labelme", p, out)
run_export("labelme", p, out)
print("finished")
"""


posix_kill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")


def _child(folder, out, mode):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(out), mode], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def kill_setup(tmp_path):
    p = annotated_project(tmp_path / "imgs", n_images=4)
    ref = tmp_path / "ref"
    run_export("labelme", p, ref)
    yield p, tmp_path / "exports" / "out", tree(ref)
    p.close()


def _exported_whole(out, ref_tree):
    assert tree(out) == ref_tree
    assert leftovers(out) == []


@posix_kill
@pytest.mark.parametrize("mode", ["between", "deleting", "writing", "sealed"])
def test_an_export_killed_at_each_step_is_recovered_by_the_next(kill_setup, mode):
    p, out, ref = kill_setup
    run_export("labelme", p, out)
    c = _child(p.folder, out, mode)
    _, err = c.communicate(timeout=120)
    assert c.returncode == -signal.SIGKILL, err
    if mode in ("writing", "sealed"):
        assert tree(out) == ref  # killed before the swap: the previous export is untouched
    run_export("labelme", p, out)
    _exported_whole(out, ref)


@posix_kill
def test_an_export_killed_while_it_cleans_up_after_a_killed_one_is_recovered_too(kill_setup):
    p, out, ref = kill_setup
    run_export("labelme", p, out)
    for mode in ("writing", "recovering"):
        c = _child(p.folder, out, mode)
        _, err = c.communicate(timeout=120)
        assert c.returncode == -signal.SIGKILL, err
        assert leftovers(out)  # a temporary folder, partly deleted the second time
    run_export("labelme", p, out)
    _exported_whole(out, ref)


@posix_kill
def test_an_export_killed_between_the_renames_gets_the_previous_one_back(kill_setup, monkeypatch):
    """The next export restores the previous one first: when that next export fails too (a full
    disk), the previous export is back in place, whole."""
    p, out, ref = kill_setup
    run_export("labelme", p, out)
    c = _child(p.folder, out, "between")
    c.communicate(timeout=120)
    assert c.returncode == -signal.SIGKILL
    import segstudio.io.frame_images as fi  # labelme writes each image through it (a frame is decoded)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fi, "copy_image", full)
    with pytest.raises(OSError, match="disk is full"):
        run_export("labelme", p, out)
    _exported_whole(out, ref)


@posix_kill
@pytest.mark.slow
def test_exports_killed_at_random_moments_leave_nothing_behind(kill_setup):
    p, out, ref = kill_setup
    run_export("labelme", p, out)
    rng = random.Random(23)
    for _ in range(8):
        c = _child(p.folder, out, "loop")
        assert c.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        c.send_signal(signal.SIGKILL)
        c.communicate(timeout=60)
    run_export("labelme", p, out)
    _exported_whole(out, ref)


def test_an_older_segstudios_leftovers_are_cleaned_when_provably_its_own(kill_setup, dead_pid):
    """Names of the previous version: `.out.old-PID-HEX` (a finished export moved aside) is removed
    when its marker lists all it holds; an unfinished `.out.tmp-XXXXXXXX` without a marker is kept."""
    p, out, ref = kill_setup
    run_export("labelme", p, out)
    old = out.parent / f".out.old-{dead_pid}-0123abcd"
    run_export("labelme", p, old.parent / "x")
    (old.parent / "x").rename(old)
    sealed = out.parent / ".out.tmp-abc_1234"
    run_export("labelme", p, out.parent / "y")
    (out.parent / "y").rename(sealed)
    unsealed = out.parent / ".out.tmp-zzzz9999"
    unsealed.mkdir()
    (unsealed / "half.png").write_bytes(b"half")
    for d in (sealed, unsealed):
        os.utime(d, (time.time() - 3600, time.time() - 3600))
    run_export("labelme", p, out)
    assert tree(out) == ref
    assert leftovers(out) == [unsealed.name]  # not provably ours: kept (and named in a warning)
