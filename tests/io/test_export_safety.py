"""Export never deletes or replaces what segstudio did not write, and what it writes is whole,
flushed and readable by others."""

import json
import os
import stat

import pytest

from segstudio.cli import main
from segstudio.core.project import EXPORT_MARKER, Project
from segstudio.io import coco
from segstudio.io.export_target import ExportTargetError, audit_folder
from segstudio.io.registry import EXPORT_FORMATS, run_export
from tests.io.helpers import annotated_project

FOLDER_FORMATS = [f for f in EXPORT_FORMATS if f != "coco"]


def snapshot(folder):
    """Every file under folder with its bytes (the store included)."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            if f.endswith(("-wal", "-shm")):  # SQLite's own side files change on any read
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


@pytest.fixture
def proj(tmp_path):
    p = annotated_project(tmp_path / "work" / "imgs")
    yield p
    p.close()


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.docx").write_bytes(b"years of work")
    (path / "notes").mkdir()
    (path / "notes" / "a.txt").write_text("keep me")
    return path


@pytest.mark.parametrize("fmt", FOLDER_FORMATS)
def test_a_users_folder_is_refused_and_left_untouched(proj, tmp_path, fmt):
    docs = user_folder(tmp_path / "Documents")
    before = snapshot(docs)
    with pytest.raises(ExportTargetError, match="not a segstudio export"):
        run_export(fmt, proj, docs)
    assert snapshot(docs) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".Documents")]  # no temp left


@pytest.mark.parametrize("fmt", FOLDER_FORMATS + ["coco"])
def test_cli_refuses_with_one_line_and_exit_2(proj, tmp_path, capsys, fmt):
    docs = user_folder(tmp_path / "Documents")
    target = docs / "thesis.docx" if fmt == "coco" else docs
    before = snapshot(docs)
    code = main(["export", str(proj.folder), "--format", fmt, "--out", str(target)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("segstudio: error: ")
    assert snapshot(docs) == before


@pytest.mark.parametrize("where", ["parent", "grandparent", "itself", "inside"])
@pytest.mark.parametrize("fmt", ["labelmap", "yolo", "coco"])
def test_the_image_folder_its_parents_and_inside_are_refused(proj, tmp_path, where, fmt):
    imgs = proj.folder
    out = {"parent": imgs.parent, "grandparent": imgs.parent.parent, "itself": imgs,
           "inside": imgs / "export"}[where]
    if fmt == "coco" and where == "inside":
        out = imgs / "coco.json"
    before = snapshot(tmp_path)
    with pytest.raises(ExportTargetError, match="image folder"):
        run_export(fmt, proj, out)
    assert snapshot(tmp_path) == before
    assert proj.store.integrity_check() == "ok" and proj.store.region_count() == 15


def test_a_store_kept_elsewhere_is_never_replaced(tmp_path):
    src = annotated_project(tmp_path / "imgs")
    src.close()
    p = Project.open(tmp_path / "imgs", tmp_path / "stores" / "p.db")
    try:
        with pytest.raises(ExportTargetError, match="project store"):
            run_export("labelmap", p, tmp_path / "stores")
        with pytest.raises(ExportTargetError):
            run_export("coco", p, tmp_path / "stores" / "p.db")
        assert p.store.integrity_check() == "ok"
        # a sibling of the store is an ordinary place to export to
        run_export("labelmap", p, tmp_path / "stores" / "labels")
    finally:
        p.close()


@pytest.mark.parametrize("fmt", FOLDER_FORMATS)
def test_re_export_to_the_same_folder_replaces_the_previous_export(proj, tmp_path, fmt):
    out = tmp_path / "out"
    r1 = run_export(fmt, proj, out)
    manifest = audit_folder(out).files
    assert manifest and all((out / f).is_file() for f in manifest)
    # fewer images the second time: files of the first export that are not written again go
    proj.store.set_status([proj.store.images()[0].id], "skipped")
    r2 = run_export(fmt, proj, out, statuses=("done",))
    assert r2.images == r1.images - 1
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == audit_folder(out).files | {EXPORT_MARKER}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # old copy removed


def test_an_export_with_a_users_file_added_is_refused(proj, tmp_path):
    out = tmp_path / "out"
    run_export("yolo", proj, out)
    (out / "my_training_log.txt").write_text("mine")
    with pytest.raises(ExportTargetError, match="my_training_log.txt"):
        run_export("yolo", proj, out)
    assert (out / "my_training_log.txt").read_text() == "mine"


def test_a_marker_without_a_file_list_licenses_nothing(proj, tmp_path):
    """An older or hand-made marker (its head line alone) does not claim the folder's files: the
    export is refused and names them; a folder holding that marker alone is replaced."""
    out = tmp_path / "out"
    out.mkdir()
    (out / EXPORT_MARKER).write_text("written by segstudio; image scans skip this folder\n")
    (out / "old.png").write_bytes(b"x")
    with pytest.raises(ExportTargetError, match="lists no files.*old.png"):
        run_export("labelmap", proj, out)
    assert (out / "old.png").read_bytes() == b"x"
    (out / "old.png").unlink()
    run_export("labelmap", proj, out)
    assert (out / "class_names.txt").exists()


def test_a_marker_that_is_a_folder_or_foreign_text_does_not_count(proj, tmp_path):
    out = user_folder(tmp_path / "out")
    (out / EXPORT_MARKER).mkdir()
    with pytest.raises(ExportTargetError):
        run_export("labelmap", proj, out)
    (out / EXPORT_MARKER).rmdir()
    (out / EXPORT_MARKER).write_text("something else\n")
    with pytest.raises(ExportTargetError):
        run_export("labelmap", proj, out)
    assert (out / "thesis.docx").exists()


def test_an_empty_folder_is_used(proj, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    rep = run_export("labelmap", proj, out)
    assert rep.images == 3 and (out / "class_names.txt").exists()


def test_coco_file_rules(proj, tmp_path):
    mine = tmp_path / "instances.json"
    mine.write_text('{"images": [], "annotations": []}')  # the user's own COCO file
    with pytest.raises(ExportTargetError, match="not written by segstudio"):
        coco.export_coco(proj, mine)
    assert json.loads(mine.read_text()) == {"images": [], "annotations": []}
    ours = tmp_path / "ours.json"
    coco.export_coco(proj, ours)
    coco.export_coco(proj, ours)  # replacing its own file is fine
    assert len(json.loads(ours.read_text())["annotations"]) == 12
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    coco.export_coco(proj, empty)
    assert empty.stat().st_size > 0
    folder = tmp_path / "a_folder.json"
    folder.mkdir()
    with pytest.raises(ExportTargetError, match="is a folder"):
        coco.export_coco(proj, folder)
    # a folder without the .json suffix receives annotations.json inside it
    d = user_folder(tmp_path / "dir")
    rep = coco.export_coco(proj, d)
    assert rep.out == str(d / "annotations.json") and (d / "thesis.docx").exists()


def test_exported_files_get_normal_permissions(proj, tmp_path):
    old = os.umask(0o022)
    try:
        run_export("yolo", proj, tmp_path / "y")
        coco.export_coco(proj, tmp_path / "c.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "y").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "y" / "classes.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o644


@pytest.mark.parametrize("fmt", ["labelme", "coco"])
def test_everything_is_flushed_before_the_final_rename(proj, tmp_path, monkeypatch, fmt):
    synced, events = set(), []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        synced.add(os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b):
        if os.path.basename(b) == EXPORT_MARKER:  # the marker put in place inside the temporary folder
            return real_replace(a, b)
        a = os.path.realpath(a)
        if os.path.isdir(a):
            files = [os.path.join(r, f) for r, _d, fs in os.walk(a) for f in fs]
            dirs = [r for r, _d, _f in os.walk(a)]
            events.append(("replace", a, [f for f in files + dirs if f not in synced]))
        else:
            events.append(("replace", a, [] if a in synced else [a]))
        return (real_replace if os.path.isfile(a) else real_rename)(a, b)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name a file descriptor")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", replace)
    out = tmp_path / ("c.json" if fmt == "coco" else "out")
    run_export(fmt, proj, out)
    assert events and all(not unsynced for _, _, unsynced in events), events
    assert str(tmp_path) in synced  # the folder that received the rename


def test_a_failed_export_leaves_the_previous_one(proj, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_export("labelmap", proj, out)
    before = snapshot(out)
    import segstudio.io.labelmap as lm

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(lm, "write_png", boom)
    with pytest.raises(OSError, match="disk is full.*previous export in .*out is unchanged"):
        run_export("labelmap", proj, out)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["work", "out"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["out", "work"]
